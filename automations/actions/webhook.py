"""The "Trigger webhook" action kind: a signed webhook (Standard Webhooks), delivered at least
once with backoff. Its settings (URL, method in `config`; custom headers encrypted in
`Action.secrets_encrypted`; the signing secret in its own encrypted columns), its builder card,
its payload (shared by the builder's preview and the sender), its engine steps and insights.

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

import dataclasses
import email.utils
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.forms import formset_factory
from django.utils import timezone
from standardwebhooks import Webhook

from assetsonar import net
from automations.actions.base import ActionKind, Target, register
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

logger = logging.getLogger(__name__)

USER_AGENT = "AssetSonar-Webhooks/1.0"
RESPONSE_EXCERPT_BYTES = 1024
# The rest of an answer longer than the excerpt is read on and dropped, up to this much and
# within the delivery's deadline, so that its connection serves the next delivery to the same
# receiver (kept connections, assetsonar/net.py); a longer one is cut off with its connection.
RESPONSE_DRAIN_BYTES = 64 * 1024
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
NO_SECRET_INSIGHT = "This webhook has no signing secret: open the automation and rotate the secret."  # noqa: S105 - an insight text


def _target_label(url: str) -> str:
    return (urlsplit(url).netloc or url)[:300]


def headers_of(action: Action) -> dict[str, str]:
    """The action's custom headers (decrypted)."""
    return dict(action.get_secret_config().get("headers") or {})


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
    targets = {id(item): webhook_target(item.action) for item in items}
    by_key = {
        log_key(
            item.event.pk, item.execution.automation_id, item.action.pk, targets[id(item)].key
        ): item
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
                "target_label": targets[id(item)].label,
                "detail": {
                    "webhook_id": webhook_id_for(key),
                    "url": item.action.config.get("url", ""),
                },
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
    if action is not None and decrypted is None and not action.disabled_at:
        decrypted = _decrypt(action)
    blocked = webhook_blocked(action, decrypted)
    if blocked is not None:
        status, insight, unmet = blocked
        log_finish(log, status, insight, unmet=unmet)
        return None
    secrets, custom_headers = decrypted

    body = json.dumps(event_payload(event, execution.automation), separators=(",", ":"))
    msg_id = log.detail.get("webhook_id") or webhook_id_for(log.key)
    # Custom headers cannot replace the ones the signature and the transport depend on.
    headers = {
        name: str(value)
        for name, value in custom_headers.items()
        if name.lower() not in RESERVED_HEADERS
    }
    headers.update({"Content-Type": "application/json", "User-Agent": USER_AGENT})
    url, method = action.config.get("url", ""), action.config.get("method", "POST")

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


def webhook_blocked(action: Action | None, decrypted) -> tuple[str, str, bool] | None:
    """Why a delivery cannot be sent, as (log status, insight, unmet); None when it can. Decided
    at every attempt (`webhook_job`) and by the preview (`webhook_plan`). `decrypted`: the
    action's (secrets, headers) or the ValueError decrypting them gave."""
    if action is None:
        return ActionLog.Status.FAILED, "The webhook was removed from the automation.", False
    if action.disabled_at:
        # Not sent, so not done: the execution is partially failed (unmet), with the reason.
        return ActionLog.Status.SKIPPED, disabled_insight(action.disabled_at), True
    if isinstance(decrypted, ValueError):
        return (
            ActionLog.Status.FAILED,
            f"{decrypted} Set the webhook's secret and headers again.",
            False,
        )
    if not decrypted[0]:
        return ActionLog.Status.FAILED, NO_SECRET_INSIGHT, False
    return None


def webhook_target(action: Action) -> Target:
    """The one target of a webhook action: its receiver (the target part of the log key and
    the log's label), shared by the claim (`webhook_prepare_many`) and the preview."""
    return Target("webhook", _target_label(action.config.get("url", "")))


def webhook_plan(items: list[Prep]) -> list[list[Target]]:
    """The preview of `webhook_prepare_many`: the receiver, or why nothing would be sent (a
    webhook switched off after a 410, no signing secret). No query; the secrets are decrypted
    in memory only to know they are there. What the receiver answers is known only once sent."""
    plans = []
    for item in items:
        target = webhook_target(item.action)
        decrypted = None if item.action.disabled_at else _decrypt(item.action)
        blocked = webhook_blocked(item.action, decrypted)
        if blocked is not None:
            _, insight, unmet = blocked
            target = dataclasses.replace(target, skip_reason=insight, unmet=unmet)
        plans.append([target])
    return plans


def disabled_insight(when) -> str:
    """Why a webhook switched off after a 410 was not sent, and what to do."""
    when = timezone.localtime(when)
    return (
        f"Webhook disabled on {when.day} {when:%b %H:%M} after the receiver answered 410 Gone; "
        "re-enable it in the automation."
    )


def _decrypt(action: Action) -> tuple[list[str], dict] | ValueError:
    """The action's signing secrets (the current one, and the previous one during the grace
    period after a rotation) and custom headers, or the error decrypting them."""
    try:
        return action.signing_secrets(), headers_of(action)
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
    try:
        with net.reused_session(url, addresses[0]) as session:
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
                _drain(response, deadline)
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
    """At most RESPONSE_EXCERPT_BYTES of the body (decoded, as requests would), stopping at the
    deadline. `read1` returns as soon as anything arrived, up to what is asked, so the deadline
    is checked between arrivals. (It used to be one byte per read: 1 KB cost ~10 ms of CPU,
    seven times the rest of the delivery, measured against a local receiver.)"""
    data = bytearray()
    try:
        while len(data) < RESPONSE_EXCERPT_BYTES and time.monotonic() <= deadline:
            chunk = response.raw.read1(RESPONSE_EXCERPT_BYTES - len(data), decode_content=True)
            if not chunk:
                break
            data += chunk
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
        pass  # the status code is what counts; a body cut off is still an answer
    return bytes(data[:RESPONSE_EXCERPT_BYTES]).decode("utf-8", errors="replace")


def _drain(response: requests.Response, deadline: float) -> None:
    """Read what is left of the body and drop it, when the answer said how long it is and the
    rest is at most RESPONSE_DRAIN_BYTES, until the deadline. Read to its end, the body gives
    its connection back to the pool for the next request; otherwise the connection is closed
    with the response (a chunked answer of unknown length is never read on)."""
    try:
        length = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return
    if length - RESPONSE_EXCERPT_BYTES > RESPONSE_DRAIN_BYTES:
        return
    dropped = 0
    try:
        while dropped <= RESPONSE_DRAIN_BYTES and time.monotonic() <= deadline:
            chunk = response.raw.read1(16 * 1024, decode_content=True)
            if not chunk:
                return
            dropped += len(chunk)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
        pass  # the answer is already recorded; the connection is closed with it


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
        url=action.config.get("url", "")[:500],
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


# --- The payload (the builder's preview and the sender) ---------------------------------------
# Shape follows the Standard Webhooks recommendation: {"type", "timestamp", "data"}.

SAMPLE_SNAPSHOT = {
    "id": 1042,
    "full_name": "Jordan Rivera",
    "email": "jordan.rivera@example.com",
    "employee_id": "E01042",
    "department": "Engineering",
    "location": "Berlin",
    "title": "Senior Engineer",
    "employment_type": "full_time",
    "manager": "alex.chen@example.com",
    "status": "deactivated",
    "deactivation_reason": "Last working day",
    "assets_in_custody": 2,
    "live_entitlements": 5,
}

MEMBER_FIELDS = [
    "id",
    "full_name",
    "email",
    "employee_id",
    "department",
    "location",
    "title",
    "employment_type",
    "status",
    "deactivation_reason",
]


def build_payload(
    *,
    event_type: str,
    event_id: str,
    occurred_at: datetime | str,
    snapshot: dict[str, Any],
    automation_id: int | None,
    automation_name: str,
) -> dict[str, Any]:
    occurred = occurred_at.isoformat() if isinstance(occurred_at, datetime) else occurred_at
    member = {key: snapshot.get(key, "") for key in MEMBER_FIELDS}
    member["manager_email"] = snapshot.get("manager", "")
    data = {
        "event_id": str(event_id),
        "occurred_at": occurred,
        "member": member,
        "automation": {"id": automation_id, "name": automation_name},
    }
    if trigger := snapshot.get("trigger"):
        # A timed trigger (member.last_working_day): the day, zone, offset and due time.
        data["trigger"] = {
            key: trigger.get(key)
            for key in ("last_working_day", "time_zone", "offset_days", "at", "due_at")
        }
    return {"type": event_type, "timestamp": occurred, "data": data}


def event_payload(event, automation) -> dict[str, Any]:
    """The payload for a real event (the member as recorded at the event)."""
    return build_payload(
        event_type=event.kind,
        event_id=str(event.pk),
        occurred_at=event.occurred_at,
        snapshot=event.member_snapshot,
        automation_id=automation.pk if automation else None,
        automation_name=automation.name if automation else "",
    )


def preview_payload(*, event_type: str, automation_id: int | None, automation_name: str) -> dict:
    """What the builder shows: the same shape with a sample member."""
    return build_payload(
        event_type=event_type,
        event_id="3f2b8c1e-0000-4000-8000-00000000demo",
        occurred_at="2026-11-28T09:30:00+00:00",
        snapshot=SAMPLE_SNAPSHOT,
        automation_id=automation_id,
        automation_name=automation_name or "Untitled automation",
    )


# --- Settings: the builder card -----------------------------------------------------------------

MAX_HEADERS = 20
# Headers the sender sets itself (Standard Webhooks signature, body framing, routing).
BUILDER_RESERVED_HEADERS = RESERVED_HEADERS | {"transfer-encoding", "connection"}
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
METHODS = [("POST", "POST"), ("PUT", "PUT")]


class HeaderForm(forms.Form):
    """One custom header. On edit a saved header shows its name only; a blank value keeps the
    saved value (values are often credentials and are never sent back to the browser)."""

    name = forms.CharField(
        label="Header name",
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": "Authorization", "autocomplete": "off"}),
    )
    value = forms.CharField(
        label="Header value",
        required=False,
        max_length=2000,
        strip=False,
        widget=forms.PasswordInput(
            render_value=True, attrs={"autocomplete": "new-password", "placeholder": "Value"}
        ),
    )

    def __init__(self, *args: Any, existing: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.existing = {k.lower(): v for k, v in (existing or {}).items()}
        if self.initial.get("name", "").lower() in self.existing:
            self.fields["value"].widget.attrs["placeholder"] = "•••••• saved (blank keeps it)"
            self.is_saved = True
        else:
            self.is_saved = False

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        name = (cleaned.get("name") or "").strip()
        value = cleaned.get("value") or ""
        cleaned["name"] = name
        if not name and not value:
            return cleaned
        if not name:
            self.add_error("name", "Enter the header name.")
            return cleaned
        if not HEADER_NAME_RE.match(name):
            self.add_error("name", "Use letters, digits and - only (e.g. X-Api-Key).")
        elif name.lower() in BUILDER_RESERVED_HEADERS:
            self.add_error("name", f"{name} is set by AssetSonar; choose another header.")
        if not value.strip():
            saved = self.existing.get(name.lower())
            if saved is None:
                self.add_error("value", "Enter a value (saved values are kept only on edit).")
            else:
                cleaned["value"] = saved
        elif CONTROL_RE.search(value):
            self.add_error("value", "A header value cannot contain line breaks.")
        else:
            cleaned["value"] = value.strip()
        return cleaned


class BaseHeaderFormSet(forms.BaseFormSet):
    default_error_messages = {
        **forms.BaseFormSet.default_error_messages,
        "too_many_forms": f"A webhook can have at most {MAX_HEADERS} custom headers.",
    }

    def clean(self) -> None:
        seen: set[str] = set()
        for form in self.forms:
            if self._should_delete_form(form) or not hasattr(form, "cleaned_data"):
                continue
            name = form.cleaned_data.get("name", "").lower()
            if not name:
                continue
            if name in seen:
                form.add_error("name", "This header is already in the list.")
            seen.add(name)

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for form in self.forms:
            if self._should_delete_form(form) or not getattr(form, "cleaned_data", None):
                continue
            if form.cleaned_data.get("name"):
                out[form.cleaned_data["name"]] = form.cleaned_data["value"]
        return out


HeaderFormSet = formset_factory(
    HeaderForm,
    formset=BaseHeaderFormSet,
    extra=1,
    can_delete=True,
    max_num=MAX_HEADERS,
    validate_max=True,
    absolute_max=MAX_HEADERS + 10,
)


class WebhookForm(forms.Form):
    """URL and method, and the formset of custom headers (prefix `<card>-headers`)."""

    url = forms.URLField(
        label="URL",
        required=False,
        max_length=500,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"placeholder": "https://hr.example.com/hooks/offboard"}),
    )
    method = forms.ChoiceField(choices=METHODS, initial="POST", widget=forms.RadioSelect)

    def __init__(
        self,
        *args: Any,
        existing_headers: dict[str, str] | None = None,
        check_network: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.check_network = check_network
        existing = existing_headers or {}
        self.headers = HeaderFormSet(
            self.data if self.is_bound else None,
            prefix=self.add_prefix("headers"),
            initial=[{"name": name, "value": ""} for name in existing],
            form_kwargs={"existing": existing},
        )

    def is_valid(self) -> bool:
        valid = super().is_valid()
        return self.headers.is_valid() and valid

    @property
    def has_errors(self) -> bool:
        return bool(self.errors or any(self.headers.errors) or self.headers.non_form_errors())

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        url = cleaned.get("url")
        if not url:
            if "url" not in self.errors:
                self.add_error("url", "Enter the URL the webhook is sent to.")
            return cleaned
        if self.check_network:
            try:
                net.check_destination(url)
            except ValidationError as exc:
                self.add_error("url", exc)
        return cleaned


@register
class WebhookKind(ActionKind):
    key = "webhook"
    label = "Trigger webhook"
    description = "Tell another system (HR, ticketing, identity) with a signed JSON request."
    log_label = "Trigger webhook"
    chip = "Webhook"
    icon = "icon-webhook"
    target_noun = ("webhook", "webhooks")
    form_class = WebhookForm
    builder_template = "automations/actions/webhook/builder.html"
    detail_template = "automations/actions/webhook/detail.html"
    log_template = "automations/actions/webhook/log.html"
    insights = {"lost_attempt": LOST_ATTEMPT, "no_secret": NO_SECRET_INSIGHT}
    retry_setting = "WEBHOOK_RETRY_DELAYS"
    signs_requests = True

    def default_config(self) -> dict[str, Any]:
        return {"url": "", "method": "POST", "headers": {}}

    def clean_config(self, config, *, previous):
        errors: dict[str, list[str]] = {}
        if config.get("method") not in dict(METHODS):
            errors["method"] = ["Choose POST or PUT."]
        # The destination is checked whenever it is saved (the sender checks it again).
        if config.get("url") != (previous or {}).get("url"):
            try:
                net.check_destination(config.get("url", ""))
            except ValidationError as exc:
                errors["url"] = [" ".join(exc.messages)]
        return errors

    def form_initial(self, config):
        return {"url": config.get("url", ""), "method": config.get("method", "POST")}

    def form_kwargs(self, *, config, options):
        return {
            "existing_headers": config.get("headers") or {},
            "check_network": options.get("check_network", True),
        }

    def lenient_config(self, form):
        return {"url": (form.data.get(form.add_prefix("url")) or "").strip()}

    def config_from_form(self, form):
        return {
            "url": form.cleaned_data["url"],
            "method": form.cleaned_data["method"],
            "headers": form.headers.headers(),
        }

    def read(self, action):
        return {
            "url": action.config.get("url", ""),
            "method": action.config.get("method", "POST"),
            "headers": headers_of(action),
        }

    def write(self, action, config):
        if action.pk and action.config.get("url") != config["url"]:
            # A new address gets a new chance after a 410 Gone from the old one.
            action.disabled_at = None
        action.config = {"url": config["url"], "method": config.get("method", "POST")}
        headers = dict(config.get("headers") or {})
        action.set_secret_config({"headers": headers} if headers else {})
        if not action.secret_encrypted:
            secret = generate_signing_secret()
            action.set_secret(secret)
            return secret
        return None

    def summary(self, config):
        url = config.get("url")
        return f"call {url}" if url else "call a webhook (URL not set yet)"

    def snapshot(self, config):
        return {
            "Webhook": f"{config.get('method', 'POST')} {config.get('url', '')}",
            "Webhook headers": ", ".join(config.get("headers") or {}),
        }

    def admin_text(self, action):
        names = ", ".join(headers_of(action)) or "none"
        stopped = (
            f" · stopped {action.disabled_at:%Y-%m-%d} (410 Gone)" if action.disabled_at else ""
        )
        previous = (
            f" (the previous one also signs until {action.previous_secret_until:%Y-%m-%d %H:%M})"
            if action.previous_secret_signs()
            else ""
        )
        return (
            f"{action.config.get('method', 'POST')} {action.config.get('url', '')} · headers: "
            f"{names} (values hidden) · signing secret set{previous}{stopped}"
        )

    def plan(self, *, items, context):
        return webhook_plan(items)

    def prepare(self, *, items, context):
        return webhook_prepare_many(items=items, context=context)

    def resume(self, log, interrupted):
        return webhook_job(log, interrupted)


def generate_signing_secret() -> str:
    """A Standard Webhooks secret: "whsec_" + base64 of 24 random bytes."""
    import base64
    import secrets as _secrets

    return "whsec_" + base64.b64encode(_secrets.token_bytes(24)).decode()
