"""Send one email to one recipient, and say what became of it.

Through Django's email framework (the SMTP backend when EMAIL_HOST is set, the console backend
otherwise), as a plain-text part with an HTML alternative. The caller gives an idempotency key
(one per execution, action and recipient): it travels as `X-AssetSonar-Key`, and the Message-ID
is derived from it, so a retry after an ambiguous failure (the connection dropped after the data
was sent) carries the same Message-ID as the first try and a receiving system can tell them apart.
Not sending twice is the caller's part: it records the result against that key.

The outcome is classified for the caller's retry policy (`MailResult.outcome`):
- sent;
- temporary: a 4xx reply (421, 450, 451, 452, ...) or a network failure (refused, reset, timed
  out, dropped mid-transaction): try again later;
- permanent: a 5xx reply (550 no such user, 535 bad credentials, ...), a TLS or configuration
  problem, or an address that is not one: retrying cannot help.
Each with `insight`, one sentence for the log. Credentials never appear in it nor in the logs.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import logging
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import parseaddr

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.validators import validate_email

logger = logging.getLogger("assetsonar.mail")

KEY_HEADER = "X-AssetSonar-Key"
# Printable ASCII without spaces: it goes into a header as it is.
_KEY = re.compile(r"[!-~]{1,200}")
# How much of a server's reply an insight quotes.
REPLY_EXCERPT = 300


class Outcome(enum.StrEnum):
    SENT = "sent"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class MailResult:
    """What became of one message.

    `smtp_code`/`smtp_reply` are the server's answer when it gave one (None/"" for a network
    failure or a success, whose final reply Django does not pass on); `duration_ms` is the
    whole attempt, connection included.
    """

    outcome: Outcome
    insight: str
    to: str
    key: str
    message_id: str
    smtp_code: int | None = None
    smtp_reply: str = ""
    duration_ms: int = 0

    @property
    def sent(self) -> bool:
        return self.outcome is Outcome.SENT

    @property
    def retry(self) -> bool:
        """Worth another attempt later (a temporary failure)."""
        return self.outcome is Outcome.TEMPORARY


def message_id_for(key: str, from_email: str | None = None) -> str:
    """The Message-ID of every attempt with this key: `<hash@domain of the sender>`."""
    domain = parseaddr(from_email or settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2]
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"<assetsonar.{digest}@{domain or 'localhost'}>"


def send_message(
    *,
    to: str,
    subject: str,
    text: str,
    html: str | None,
    key: str,
    from_email: str | None = None,
    reply_to: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
) -> MailResult:
    """Send `text` (and `html` as its alternative) to the one address `to`.

    Never raises for what the network or the server does; raises ValueError for a key that
    cannot be a header (a programming error). The subject is made one line.
    """
    if not _KEY.fullmatch(key):
        raise ValueError(
            "The idempotency key must be 1 to 200 printable ASCII characters without spaces."
        )
    from_email = from_email or settings.DEFAULT_FROM_EMAIL
    message_id = message_id_for(key, from_email)
    to = to.strip()
    started = time.monotonic()

    def result(outcome: Outcome, insight: str, code: int | None = None, reply: str = ""):
        done = MailResult(
            outcome=outcome,
            insight=insight,
            to=to,
            key=key,
            message_id=message_id,
            smtp_code=code,
            smtp_reply=reply,
            duration_ms=round((time.monotonic() - started) * 1000),
        )
        level = logging.INFO if outcome is Outcome.SENT else logging.WARNING
        logger.log(level, "Mail %s (key %s, %s): %s", outcome, key, message_id, insight)
        return done

    problem = _address_problem(to)
    if problem:
        return result(Outcome.PERMANENT, problem)

    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
        body=text,
        from_email=from_email,
        to=[to],
        reply_to=list(reply_to),
        headers={
            **(headers or {}),
            "Message-ID": message_id,
            KEY_HEADER: key,
            # RFC 3834: an automatic message, so out-of-office replies are not sent back.
            "Auto-Submitted": "auto-generated",
        },
    )
    if html is not None:
        message.attach_alternative(html, "text/html")

    connection = get_connection(fail_silently=False)
    try:
        connection.open()
        delivered = connection.send_messages([message])
    except Exception as error:  # every failure becomes a classified result
        outcome, insight, code, reply = classify(error)
        return result(outcome, insight, code, reply)
    finally:
        # The message is handed over (or not) by now; a failing QUIT changes nothing.
        with contextlib.suppress(Exception):
            connection.close()
    if not delivered:
        return result(Outcome.PERMANENT, "The mail backend did not take the message.")
    return result(Outcome.SENT, _sent_insight(to))


def _address_problem(to: str) -> str:
    if not to:
        return "No email address to send to."
    try:
        validate_email(to)
        Address(addr_spec=to)
    except (ValidationError, ValueError, IndexError):
        return f"“{to[:254]}” is not a valid email address: not sent."
    return ""


def _server() -> str:
    return f"{settings.EMAIL_HOST}:{settings.EMAIL_PORT}"


def _sent_insight(to: str) -> str:
    backend = settings.EMAIL_BACKEND
    if backend == "django.core.mail.backends.smtp.EmailBackend":
        return f"Sent to {to} through the mail server at {_server()}."
    if backend == "django.core.mail.backends.console.EmailBackend":
        return (
            f"Printed to the worker's log for {to}, not sent: EMAIL_HOST is not set "
            "(console backend)."
        )
    return f"Handed to the mail backend {backend.rsplit('.', 2)[-2]} for {to}."


def _reply_text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", errors="replace")
    return " ".join(reply.split())[:REPLY_EXCERPT]


def _by_code(code: int, reply: str, *, what: str = "it") -> tuple[Outcome, str, int, str]:
    answer = f"{code} {reply}".strip()
    if 400 <= code < 500:
        return (
            Outcome.TEMPORARY,
            f"The mail server answered {answer} (temporary): will retry.",
            code,
            reply,
        )
    if 500 <= code < 600:
        return (
            Outcome.PERMANENT,
            f"The mail server refused {what} permanently: {answer}.",
            code,
            reply,
        )
    return (
        Outcome.TEMPORARY,
        f"The mail server gave an unexpected answer ({answer}): will retry.",
        code,
        reply,
    )


def classify(error: BaseException) -> tuple[Outcome, str, int | None, str]:
    """(outcome, insight, SMTP code, server reply) for an exception from sending."""
    server = _server()
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(error.recipients.values()), (-1, b""))
        return _by_code(code, _reply_text(reply), what="the recipient")
    if isinstance(error, smtplib.SMTPAuthenticationError):
        reply = _reply_text(error.smtp_error)
        if 400 <= error.smtp_code < 500:
            return _by_code(error.smtp_code, reply)
        return (
            Outcome.PERMANENT,
            f"The mail server refused the sign-in ({error.smtp_code} {reply}): check "
            "EMAIL_HOST_USER and EMAIL_HOST_PASSWORD.",
            error.smtp_code,
            reply,
        )
    if isinstance(error, smtplib.SMTPSenderRefused):
        return _by_code(error.smtp_code, _reply_text(error.smtp_error), what="the sender address")
    if isinstance(error, smtplib.SMTPResponseException):
        return _by_code(error.smtp_code, _reply_text(error.smtp_error))
    if isinstance(error, smtplib.SMTPServerDisconnected):
        # smtplib turns every socket error while it waits for a reply into this one.
        if isinstance(error.__context__, TimeoutError):
            return classify(error.__context__)
        cause = error.__context__ if isinstance(error.__context__, OSError) else None
        how = f" ({cause.strerror or cause})" if cause else ""
        return (
            Outcome.TEMPORARY,
            f"The mail server at {server} closed the connection mid-transaction{how}: will retry.",
            None,
            "",
        )
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return (
            Outcome.PERMANENT,
            f"The mail server at {server} does not offer what the settings ask ({error}): "
            "check EMAIL_USE_TLS, EMAIL_PORT and EMAIL_HOST_USER.",
            None,
            "",
        )
    if isinstance(error, smtplib.SMTPException):
        return (
            Outcome.PERMANENT,
            f"Sending through {server} failed: {error}. Check the EMAIL_ settings.",
            None,
            "",
        )
    if isinstance(error, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return (
            Outcome.TEMPORARY,
            f"The mail server at {server} closed the TLS connection: will retry.",
            None,
            "",
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            Outcome.PERMANENT,
            f"The mail server at {server} has a certificate that cannot be trusted "
            f"({error.verify_message}): check EMAIL_HOST.",
            None,
            "",
        )
    if isinstance(error, ssl.SSLError):
        return (
            Outcome.PERMANENT,
            f"TLS with the mail server at {server} failed ({error.reason or error}): check "
            "EMAIL_PORT, EMAIL_USE_TLS and EMAIL_USE_SSL.",
            None,
            "",
        )
    if isinstance(error, TimeoutError):
        return (
            Outcome.TEMPORARY,
            f"The mail server at {server} did not answer within {settings.EMAIL_TIMEOUT} s: "
            "will retry.",
            None,
            "",
        )
    if isinstance(error, ConnectionRefusedError):
        return (
            Outcome.TEMPORARY,
            f"Could not connect to the mail server at {server} (connection refused): will retry.",
            None,
            "",
        )
    if isinstance(error, ConnectionError):  # reset, aborted, broken pipe
        return (
            Outcome.TEMPORARY,
            f"The connection to the mail server at {server} was cut ({error.strerror or error}): "
            "will retry.",
            None,
            "",
        )
    if isinstance(error, socket.gaierror):
        return (
            Outcome.TEMPORARY,
            f"Could not look up the mail server {settings.EMAIL_HOST} ({error.strerror}): will "
            "retry; check EMAIL_HOST if this lasts.",
            None,
            "",
        )
    if isinstance(error, OSError):
        return (
            Outcome.TEMPORARY,
            f"Could not reach the mail server at {server} ({error.strerror or error}): will retry.",
            None,
            "",
        )
    return (
        Outcome.PERMANENT,
        f"The message could not be sent: {type(error).__name__}: {error}"[:REPLY_EXCERPT],
        None,
        "",
    )
