"""Action 1: a signed webhook (Standard Webhooks), delivered at least once with backoff.

The ActionLog is the delivery (outbox row); each HTTP try is a WebhookAttempt. The webhook-id is
derived from the log's key, so every retry of a delivery carries the same id and a receiver can
drop duplicates. Retried: timeouts, connection errors, 408, 429 (Retry-After honoured up to an
hour) and 5xx; any other 4xx is final; 410 Gone also switches the webhook off.

Time limits: connect 3 s and read 10 s per socket read (WEBHOOK_CONNECT_TIMEOUT /
WEBHOOK_READ_TIMEOUT), and a total deadline (WEBHOOK_TOTAL_TIMEOUT, 30 s) checked while the
response is read. A receiver trickling its headers byte by byte is stopped by the worker timeout
(the attempt is then taken over once its lease ends).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from standardwebhooks import Webhook

from automations import net
from automations.engine.common import (
    Job,
    Prep,
    RunContext,
    attempts_in_round,
    human_duration,
    log_begin,
    log_claim_many,
    log_finish,
    log_key,
    max_attempts,
    next_retry_at,
    schedule_retry,
    write_create,
)
from automations.models import Action, ActionLog, WebhookAttempt
from automations.payloads import event_payload

logger = logging.getLogger(__name__)

USER_AGENT = "AssetSonar-Webhooks/1.0"
RESPONSE_EXCERPT_BYTES = 1024
# Header names whose values are never stored (matched as substrings, lower case).
SECRET_HEADER_PARTS = (
    "authorization",
    "cookie",
    "signature",
    "secret",
    "token",
    "api-key",
    "apikey",
)
REDACTED = "[redacted]"
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
LOST_ATTEMPT = "No answer recorded: the worker stopped during this attempt."


def webhook_id_for(key: str) -> str:
    """The Standard Webhooks message id of a delivery: stable for the log's key."""
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def webhook_prepare(*, execution, action: Action, event, context: RunContext) -> list[Job]:
    """Claim the event's delivery for this webhook and start its first attempt (or take over an
    interrupted one)."""
    return webhook_prepare_many(items=[Prep(execution, action, event)], context=context)


def webhook_prepare_many(*, items: list[Prep], context: RunContext) -> list[Job]:
    """`webhook_prepare` for many executions at once: one claim INSERT, one SELECT and one
    attempt UPDATE for all of them."""
    by_key = {
        log_key(item.event.pk, item.execution.automation_id, item.action.pk, "webhook"): item
        for item in items
    }
    logs = log_claim_many(
        [
            {
                "key": key,
                "execution": item.execution,
                "action": item.action,
                "action_kind": item.action.kind,
                "target_type": ActionLog.TargetType.WEBHOOK,
                "target_label": (urlsplit(item.action.url).netloc or item.action.url)[:300],
                "detail": {"webhook_id": webhook_id_for(key), "url": item.action.url},
            }
            for key, item in by_key.items()
        ]
    )
    jobs = []
    # Each action's secret and headers are decrypted once for the whole batch.
    decrypted: dict[int, tuple[list[str], dict] | ValueError] = {}
    for log, interrupted in log_begin(logs, context.now):
        item = by_key[log.key]
        if item.action.pk not in decrypted:
            decrypted[item.action.pk] = _decrypt(item.action)
        job = webhook_job(
            log,
            interrupted,
            action=item.action,
            execution=item.execution,
            event=item.event,
            decrypted=decrypted[item.action.pk],
        )
        if job is not None:
            jobs.append(job)
    return jobs


def webhook_job(
    log: ActionLog, interrupted: bool, *, action=None, execution=None, event=None, decrypted=None
):
    """The HTTP attempt of a started delivery, or None when it cannot be sent (the log is then
    closed with the reason). Without action/execution/event they are read (a retry).
    `decrypted`: the action's (secrets, headers) or the ValueError decrypting them gave, when
    the caller decrypted them already."""
    if execution is None:
        execution = log.execution
        event, action = execution.event, log.action
    if interrupted:
        WebhookAttempt.objects.get_or_create(
            log=log,
            number=log.attempts - 1,
            defaults={"url": log.detail.get("url", "")[:500], "error": LOST_ATTEMPT},
        )
    if action is None:
        log_finish(log, ActionLog.Status.FAILED, "The webhook was removed from the automation.")
        return None
    if action.disabled_at:
        log_finish(
            log,
            ActionLog.Status.SKIPPED,
            f"Not sent: this webhook was switched off on {action.disabled_at:%Y-%m-%d %H:%M} "
            "after its endpoint answered 410 Gone. Update the URL in the automation and switch "
            "the webhook on again.",
        )
        return None
    if decrypted is None:
        decrypted = _decrypt(action)
    if isinstance(decrypted, ValueError):
        log_finish(
            log, ActionLog.Status.FAILED, f"{decrypted} Set the webhook's secret and headers again."
        )
        return None
    secrets, custom_headers = decrypted
    if not secrets:
        log_finish(
            log,
            ActionLog.Status.FAILED,
            "This webhook has no signing secret: open the automation and rotate the secret.",
        )
        return None

    body = json.dumps(event_payload(event, execution.automation), separators=(",", ":"))
    msg_id = log.detail.get("webhook_id") or webhook_id_for(log.key)
    # Custom headers cannot replace the ones the signature and the transport depend on.
    headers = {
        name: str(value)
        for name, value in custom_headers.items()
        if name.lower() not in RESERVED_HEADERS
    }
    headers.update({"Content-Type": "application/json", "User-Agent": USER_AGENT})
    url, method = action.url, action.method

    def perform() -> SendResult:
        # Signed when sent: the timestamp is the attempt's, the id the delivery's.
        now = datetime.now(tz=UTC).replace(microsecond=0)
        signed = {
            **headers,
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            # During the grace period after a rotation, one signature per secret, separated by
            # a space (Standard Webhooks): a receiver with either secret accepts the delivery.
            "webhook-signature": " ".join(
                Webhook(secret).sign(msg_id, now, body) for secret in secrets
            ),
        }
        return send(url=url, method=method, body=body.encode(), headers=signed)

    return Job(log=log, perform=perform, record=lambda result: _record(log, action, result))


def _decrypt(action: Action) -> tuple[list[str], dict] | ValueError:
    """The action's signing secrets (the current one, and the previous one during the grace
    period after a rotation) and custom headers, or the error decrypting them."""
    try:
        return action.signing_secrets(), action.get_headers()
    except ValueError as exc:
        return exc


@dataclass
class SendResult:
    """What one HTTP attempt gave: a status code, or an error that may be retried."""

    status_code: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    excerpt: str = ""
    error: str = ""
    retryable: bool = False
    duration_ms: int = 0
    request_headers: dict[str, str] = field(default_factory=dict)


def send(*, url: str, method: str, body: bytes, headers: dict[str, str]) -> SendResult:
    """POST/PUT `body` to `url`: destination checked now, connection pinned to the checked
    address, no redirects, bounded time, at most 1 KB of the answer kept."""
    connect = getattr(settings, "WEBHOOK_CONNECT_TIMEOUT", 3)
    read = getattr(settings, "WEBHOOK_READ_TIMEOUT", 10)
    started = time.monotonic()
    deadline = started + getattr(settings, "WEBHOOK_TOTAL_TIMEOUT", 30)
    result = SendResult(request_headers=redact(headers))

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        addresses = net.check_destination(url)
    except ValidationError as exc:
        result.error = "The URL was refused: " + " ".join(exc.messages)
        # A name that does not resolve may be a DNS hiccup; a private address is a decision.
        result.retryable = exc.code == "dns"
        return result
    session = net.pinned_session(url, addresses[0])
    try:
        with session:
            response = session.request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=(connect, read),
                allow_redirects=False,
                stream=True,
            )
            with response:
                result.status_code = response.status_code
                result.response_headers = redact(dict(response.headers))
                result.excerpt = _read_excerpt(response, deadline)
    except requests.ConnectTimeout:
        result.error, result.retryable = f"Could not connect within {connect} s.", True
    except requests.Timeout:
        result.error, result.retryable = f"The endpoint did not answer within {read} s.", True
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        result.error, result.retryable = _connection_error(exc), True
    except requests.RequestException as exc:
        result.error = f"The request failed ({type(exc).__name__})."
    result.duration_ms = elapsed()
    return result


def _read_excerpt(response: requests.Response, deadline: float) -> str:
    """At most RESPONSE_EXCERPT_BYTES of the body, stopping at the deadline. One byte per
    read returns as soon as anything arrived, so the deadline is checked between arrivals."""
    data = bytearray()
    try:
        for chunk in response.iter_content(chunk_size=1):
            data += chunk
            if len(data) >= RESPONSE_EXCERPT_BYTES or time.monotonic() > deadline:
                break
    except (requests.RequestException, OSError):
        pass  # the status code is what counts; a body cut off is still an answer
    return bytes(data[:RESPONSE_EXCERPT_BYTES]).decode("utf-8", errors="replace")


def _connection_error(exc: BaseException) -> str:
    text = repr(exc)
    if "RemoteDisconnected" in text or "ConnectionResetError" in text:
        return "The endpoint closed the connection without answering."
    if "ConnectionRefusedError" in text or "Connection refused" in text:
        return "The endpoint refused the connection (nothing listening)."
    return "Could not reach the endpoint (connection error)."


def redact(headers: dict[str, str]) -> dict[str, str]:
    """A copy with authentication, signature and cookie values replaced."""
    return {
        name: REDACTED if any(part in name.lower() for part in SECRET_HEADER_PARTS) else value
        for name, value in headers.items()
    }


def _header(headers: dict[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name), "")


def _retry_after(headers: dict[str, str]) -> int | None:
    value = _header(headers, "retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0, int((when - timezone.now()).total_seconds()))


def _record(log: ActionLog, action: Action, result: SendResult) -> None:
    """Store the attempt and move the log on: delivered, retry later, or failed for good."""
    code = result.status_code
    attempt = WebhookAttempt(
        log=log,
        number=log.attempts,
        url=action.url[:500],
        status_code=code,
        duration_ms=result.duration_ms,
        error=result.error[:500],
        request_headers=result.request_headers,
        response_headers=result.response_headers,
        response_excerpt=result.excerpt,
    )
    if code is not None and 200 <= code < 300:
        write_create(attempt)
        log_finish(log, ActionLog.Status.SUCCEEDED, f"Delivered: the endpoint answered {code}.")
        return
    # Saved now: the insight of a delivery that gave up counts the attempts stored.
    attempt.save(force_insert=True)
    if code == 410:
        Action.objects.filter(pk=action.pk, disabled_at__isnull=True).update(
            disabled_at=timezone.now()
        )
        log_finish(
            log,
            ActionLog.Status.FAILED,
            "The endpoint answered 410 Gone, so this webhook was switched off: update the "
            "URL in the automation and switch the webhook on again.",
        )
        return
    retryable = result.retryable or code in (408, 429) or (code is not None and code >= 500)
    if not retryable:
        log_finish(log, ActionLog.Status.FAILED, _final_insight(result))
        return
    problem = f"The endpoint answered {code}." if code else result.error
    when = next_retry_at(log, retry_after=_retry_after(result.response_headers))
    if when is None:
        log_finish(log, ActionLog.Status.FAILED, _exhausted_insight(log))
        return
    log.status = ActionLog.Status.RETRYING
    log.next_attempt_at = when
    log.insight = (
        f"{problem} Attempt {attempts_in_round(log)} of {max_attempts(log.action_kind)}; "
        f"next try at {timezone.localtime(when):%H:%M:%S}."
    )[:500]
    log.save(update_fields=["status", "next_attempt_at", "insight"])
    schedule_retry(log, when)


def _final_insight(result: SendResult) -> str:
    code = result.status_code
    if code is None:
        return f"{result.error} Fix the webhook URL in the automation."
    if code in (401, 403):
        return (
            f"The endpoint refused the request (HTTP {code}): check the authorization header "
            "of this webhook in the automation."
        )
    if code == 404:
        return "The endpoint answered 404 Not Found: check the webhook URL in the automation."
    if 300 <= code < 400:
        location = _header(result.response_headers, "location")
        target = f" to {location}" if location else ""
        return (
            f"The endpoint answered {code} (a redirect{target}); webhooks do not follow "
            "redirects: put the final URL in the automation."
        )
    detail = result.excerpt.strip()[:150]
    return (
        f"The endpoint rejected the request (HTTP {code}){': ' + detail if detail else ''}. "
        "Requests it rejects are not retried: check what the receiver expects."
    )


def _exhausted_insight(log: ActionLog) -> str:
    base = int(log.detail.get("retry_base", 0))
    attempts = list(log.webhook_attempts.filter(number__gt=base).order_by("number"))
    span = human_duration((attempts[-1].at - attempts[0].at).total_seconds()) if attempts else ""
    outcomes = {a.status_code or a.error for a in attempts}
    last = attempts[-1] if attempts else None
    if len(outcomes) == 1 and last and last.status_code:
        what = f"answered {last.status_code}"
    elif len(outcomes) == 1 and last:
        what = f"failed ({last.error.rstrip('.')})"
    else:
        final = f"answered {last.status_code}" if last and last.status_code else "no answer"
        what = f"kept failing (last: {final})"
    count = len(attempts)
    return (
        f"Webhook endpoint {what} on {count} attempt{'s' if count != 1 else ''}"
        f"{' over ' + span if span else ''}. Check that the receiver is up, then use "
        "“Retry failed actions”."
    )[:500]
