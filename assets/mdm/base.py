"""What every MDM connector shares: the result and error types, and one careful HTTP call.

Every request goes through `Connector.http`: the URL is checked with
`assetsonar.net.check_destination` right before use and the connection goes to the address that
was checked (no DNS rebinding between check and connect), redirects are never followed, timeouts
are short (connect 3 s, read MDM_READ_TIMEOUT, a total deadline), and the vendor's answer is
turned into an `MDMError` whose `kind` tells the engine whether to retry. Credentials and tokens
are never logged and never part of an error message.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.views.decorators.debug import sensitive_variables

from assets.mdm import throttle
from assetsonar.net import check_destination, reused_session

# The longest Retry-After we honour; a vendor asking for more gets retried after an hour anyway.
MAX_RETRY_AFTER = 3600
# Responses of these APIs are small JSON documents; anything bigger is cut (and not trusted).
MAX_BODY_BYTES = 64 * 1024
RAW_EXCERPT_CHARS = 1024
# A cached OAuth token is dropped this long before it expires, so it never expires in flight.
TOKEN_EXPIRY_MARGIN = 60


class MDMError(Exception):
    """A failed MDM call, with a message for people and a `kind` for the engine.

    kind: "auth" (401/403, bad or missing credentials: do not retry, fix the connection),
    "not_found" (the device id is unknown to the MDM), "retryable" (429, 408, 5xx, timeout,
    connection error: retry with backoff, honouring `retry_after` seconds when set) or
    "permanent" (any other refusal: do not retry).
    """

    KINDS: ClassVar[frozenset[str]] = frozenset({"auth", "retryable", "not_found", "permanent"})

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        status_code: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"Unknown MDMError kind {kind!r}")
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status_code = status_code
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind == "retryable"


@dataclass(frozen=True)
class LockResult:
    """What a lock command returned.

    command_id: the vendor's id for the command ("" when the vendor returns none).
    status: "sent" (queued by the MDM) or "acknowledged" (the device confirmed).
    pin: a PIN the vendor generated and returned (Kandji on macOS), else None.
    raw: at most 1 KB of the vendor's answer, with any PIN redacted (it is stored in plain text).
    pin_sent: True when the PIN passed to `lock_device` was sent to the device, so it is the
        unlock PIN; False when the vendor ignores it (Intune, Jamf on iOS, Kandji).
    """

    command_id: str
    status: str
    pin: str | None = None
    raw: str = ""
    pin_sent: bool = False


@dataclass(frozen=True)
class FoundLock:
    """A lock the vendor already holds for a device, read back before sending one again (an
    earlier attempt whose outcome was never recorded: the worker died, the answer was lost).

    command_id: the vendor's id for it ("" when the vendor gives none).
    status: "sent" (queued or pending at the MDM) or "acknowledged" (the device confirmed).
    sent_at: when the vendor says it was sent, if it says.
    pin: the unlock PIN the vendor holds for it (Kandji on macOS), else None: a PIN we sent
        ourselves (Jamf on macOS) is the one already stored.
    raw: a short, PIN-free description of what the vendor answered.
    """

    command_id: str
    status: str
    sent_at: datetime | None = None
    pin: str | None = None
    raw: str = ""


def parse_vendor_time(value: Any) -> datetime | None:
    """An ISO 8601 time from a vendor answer ("2026-12-01T22:14:03.120Z"), aware, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class HTTPResult:
    """A vendor response, read completely (within limits) before the connection closed."""

    status_code: int
    headers: requests.structures.CaseInsensitiveDict
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


def parse_retry_after(value: str | None) -> int | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped at 1 h."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(int(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0, min(int((when - datetime.now(UTC)).total_seconds()), MAX_RETRY_AFTER))


def excerpt(text: str, limit: int = RAW_EXCERPT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _TokenCache:
    """OAuth access tokens kept in this process's memory until shortly before they expire.

    Keyed by token URL and a hash of the client credentials, so new credentials never reuse an
    old token. Tokens are never written to the database, a shared cache or a log.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def get(self, key: tuple[str, str]) -> str | None:
        with self._lock:
            entry = self._tokens.get(key)
            if entry and entry[1] > time.monotonic():
                return entry[0]
            self._tokens.pop(key, None)
            return None

    def put(self, key: tuple[str, str], token: str, expires_in: int) -> None:
        lifetime = max(0, expires_in - TOKEN_EXPIRY_MARGIN)
        if lifetime:
            with self._lock:
                self._tokens[key] = (token, time.monotonic() + lifetime)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


token_cache = _TokenCache()


class Connector:
    """One MDM connection's API client. Subclasses set the vendor texts and implement
    `test_connection` and `_lock`."""

    vendor: ClassVar[str] = "The MDM"
    # How the credentials are called in messages, and what the administrator should update.
    credential_name: ClassVar[str] = "credentials"
    credential_fix: ClassVar[str] = "update the credentials"
    # What to grant when the MDM answers 403.
    permission_hint: ClassVar[str] = "check the permissions of the credentials"
    # Credential keys that must be set, with their names for messages.
    required_credentials: ClassVar[dict[str, str]] = {}
    default_base_url: ClassVar[str] = ""

    def __init__(self, connection) -> None:
        self.connection = connection

    # --- Public interface ---------------------------------------------------------------------

    def test_connection(self) -> str:
        """Call a harmless endpoint with the saved credentials; a message for the admin."""
        raise NotImplementedError

    def lock_device(
        self, *, device_id: str, pin: str, message: str, phone: str, platform: str
    ) -> LockResult:
        """Send a lock command for one device. Raises MDMError."""
        if not self.connection.is_active:
            raise MDMError(
                f"The MDM connection “{self.connection.name}” is inactive: activate it in the "
                "Django admin to send commands.",
                kind="permanent",
            )
        if not device_id:
            raise MDMError("The asset has no MDM device ID.", kind="not_found")
        return self._lock(
            device_id=device_id, pin=pin, message=message, phone=phone, platform=platform
        )

    def _lock(
        self, *, device_id: str, pin: str, message: str, phone: str, platform: str
    ) -> LockResult:
        raise NotImplementedError

    # Platforms whose lock carries the PIN AssetSonar generates (Apple's DeviceLock takes one on
    # macOS only). Elsewhere no PIN is generated, stored or offered: the device either locks with
    # its own passcode (iOS, Intune) or the vendor makes the PIN (Kandji).
    pin_platforms: ClassVar[frozenset[str]] = frozenset()

    def takes_pin(self, platform: str) -> bool:
        """Whether a lock of a device on `platform` sends a PIN of ours."""
        return platform in self.pin_platforms

    def find_lock(self, *, device_id: str, platform: str, since: datetime) -> FoundLock | None:
        """The lock the vendor holds for the device, sent at or after `since`, or None when the
        vendor's record provably has none. Raises MDMError when the vendor cannot tell (an
        error, a missing read permission, an answer we cannot read)."""
        if not device_id:
            raise MDMError("The asset has no MDM device ID.", kind="not_found")
        return self._find_lock(device_id=device_id, platform=platform, since=since)

    def _find_lock(self, *, device_id: str, platform: str, since: datetime) -> FoundLock | None:
        raise NotImplementedError

    def unreadable(self, what: str) -> MDMError:
        """The MDMError for a read answer whose shape we do not know."""
        return MDMError(
            f"{self.vendor} answered {what} in a form AssetSonar cannot read.", kind="permanent"
        )

    # --- Helpers for subclasses ---------------------------------------------------------------

    @property
    def base_url(self) -> str:
        url = (self.connection.base_url or self.default_base_url).rstrip("/")
        if not url:
            raise MDMError(
                f"The MDM connection “{self.connection.name}” has no base URL: set it in the "
                "Django admin.",
                kind="permanent",
            )
        return url

    def credentials(self) -> dict[str, str]:
        try:
            values = self.connection.get_credentials()
        except ValueError:
            raise MDMError(
                f"The credentials of connection “{self.connection.name}” cannot be decrypted "
                "(SECRET_KEY or FIELD_ENCRYPTION_KEYS changed): enter them again.",
                kind="auth",
            ) from None
        missing = [label for key, label in self.required_credentials.items() if not values.get(key)]
        if missing:
            raise MDMError(
                f"The MDM connection “{self.connection.name}” has no {' or '.join(missing)}: "
                "set it in the Django admin.",
                kind="auth",
            )
        return values

    def auth_error(self, status_code: int) -> MDMError:
        name = self.connection.name
        if status_code == 403:
            text = (
                f"{self.vendor} refused the {self.credential_name} (HTTP 403): "
                f"{self.permission_hint} of connection “{name}”, or {self.credential_fix}."
            )
        else:
            text = (
                f"{self.vendor} rejected the {self.credential_name} (HTTP {status_code}): "
                f"{self.credential_fix} of connection “{name}”."
            )
        return MDMError(text, kind="auth", status_code=status_code)

    def error_for(self, result: HTTPResult, *, device_id: str | None = None) -> MDMError:
        """The MDMError for a non-success answer."""
        status = result.status_code
        if status in (401, 403):
            return self.auth_error(status)
        if status == 404 and device_id is not None:
            return MDMError(
                f"Device {device_id} was not found in {self.vendor}: check the asset's MDM "
                "device ID.",
                kind="not_found",
                status_code=404,
            )
        if status == 404:
            return MDMError(
                f"{self.vendor} answered 404 Not Found: check the base URL of connection "
                f"“{self.connection.name}”.",
                kind="permanent",
                status_code=404,
            )
        if status in (408, 429):
            retry_after = parse_retry_after(result.headers.get("Retry-After"))
            reason = "is rate limiting requests" if status == 429 else "timed out the request"
            after = f"; retry after {retry_after} s" if retry_after is not None else ""
            return MDMError(
                f"{self.vendor} {reason} (HTTP {status}){after}.",
                kind="retryable",
                status_code=status,
                retry_after=retry_after,
            )
        if status >= 500:
            return MDMError(
                f"{self.vendor} answered HTTP {status} (a server error on its side).",
                kind="retryable",
                status_code=status,
                retry_after=parse_retry_after(result.headers.get("Retry-After")),
            )
        if 300 <= status < 400:
            return MDMError(
                f"{self.vendor} answered with a redirect (HTTP {status}); redirects are not "
                f"followed: check the base URL of connection “{self.connection.name}”.",
                kind="permanent",
                status_code=status,
            )
        detail = excerpt(result.text.strip(), 200)
        return MDMError(
            f"{self.vendor} refused the request (HTTP {status})"
            + (f": {detail}" if detail else "."),
            kind="permanent",
            status_code=status,
        )

    @sensitive_variables("headers", "request_headers", "json_body", "form")
    def http(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> HTTPResult:
        """One request, checked and pinned; network failures become retryable MDMErrors."""
        try:
            addresses = check_destination(url)
        except ValidationError as exc:
            # A name that does not resolve may be a passing DNS failure; a refused address is not.
            raise MDMError(
                f"The address of connection “{self.connection.name}” is refused: "
                + " ".join(exc.messages),
                kind="retryable" if exc.code == "dns" else "permanent",
            ) from None
        connect = getattr(settings, "MDM_CONNECT_TIMEOUT", 3)
        read = getattr(settings, "MDM_READ_TIMEOUT", 10)
        deadline = time.monotonic() + getattr(settings, "MDM_TOTAL_TIMEOUT", 30)
        request_headers = {"Accept": "application/json", "User-Agent": "AssetSonar-MDM/1.0"}
        request_headers.update(headers or {})
        try:
            # At most `max_concurrent_requests` in flight per connection, over all workers.
            # Connects to the checked address only (Host, SNI and certificates keep the host
            # name), on a connection kept from an earlier request to it when there is one.
            with (
                throttle.request_slot(self.connection),
                reused_session(url, addresses[0]) as session,
            ):
                response = session.request(
                    method,
                    url,
                    headers=request_headers,
                    json=json_body,
                    data=form,
                    params=params,
                    timeout=(connect, read),
                    allow_redirects=False,
                    stream=True,
                )
                with response:
                    body = self._read(response, deadline)
                return HTTPResult(response.status_code, response.headers, body)
        except requests.ConnectTimeout:
            raise MDMError(
                f"Could not connect to {self.vendor} within {connect} s.", kind="retryable"
            ) from None
        except requests.Timeout:
            raise MDMError(
                f"{self.vendor} did not answer within {read} s.", kind="retryable"
            ) from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise MDMError(
                f"The connection to {self.vendor} failed ({_reason(exc)}).", kind="retryable"
            ) from None
        except requests.RequestException as exc:
            raise MDMError(
                f"The request to {self.vendor} failed ({_reason(exc)}).", kind="permanent"
            ) from None

    def _read(self, response: requests.Response, deadline: float) -> bytes:
        chunks, size = [], 0
        for chunk in response.iter_content(8192):
            chunks.append(chunk)
            size += len(chunk)
            if size >= MAX_BODY_BYTES:
                break
            if time.monotonic() > deadline:
                raise MDMError(f"{self.vendor} did not finish answering in time.", kind="retryable")
        return b"".join(chunks)[:MAX_BODY_BYTES]


_REASONS = {
    "RemoteDisconnected": "the server closed the connection without answering",
    "ConnectionRefusedError": "connection refused",
    "ConnectionResetError": "connection reset",
    "IncompleteRead": "the answer was cut off",
    "NameResolutionError": "the host name does not resolve",
}


def _reason(exc: BaseException) -> str:
    """A short, credential-free reason. Built from the exception classes in the chain, not
    their text, which can echo URLs or bodies."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if type(seen).__name__ in _REASONS:
            return _REASONS[type(seen).__name__]
        for arg in getattr(seen, "args", ()):
            if isinstance(arg, BaseException) and type(arg).__name__ in _REASONS:
                return _REASONS[type(arg).__name__]
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


class OAuthClientCredentialsMixin:
    """Client-credentials tokens (Jamf Pro, Microsoft Entra ID), cached per process."""

    token_cache = token_cache

    def token_url(self) -> str:
        raise NotImplementedError

    def token_form(self, credentials: dict[str, str]) -> dict[str, str]:
        raise NotImplementedError

    def _token_key(self, credentials: dict[str, str]) -> tuple[str, str]:
        secret = "\0".join(f"{k}={credentials[k]}" for k in sorted(credentials))
        return (self.token_url(), hashlib.sha256(secret.encode()).hexdigest())

    def access_token(self, *, fresh: bool = False) -> str:
        return self._access_token(fresh=fresh)[0]

    @sensitive_variables("credentials", "token", "payload")
    def _access_token(self, *, fresh: bool = False) -> tuple[str, bool]:
        """The token, and whether it came from the cache."""
        credentials = self.credentials()
        key = self._token_key(credentials)
        if not fresh and (token := self.token_cache.get(key)):
            return token, True
        result = self.http("POST", self.token_url(), form=self.token_form(credentials))
        if result.status_code in (400, 401, 403):
            # The token endpoints answer 400 invalid_client / unauthorized_client (Entra) or 401
            # (Jamf) for wrong credentials: all mean "fix the credentials", none is retried.
            raise self.auth_error(result.status_code)
        if result.status_code != 200:
            raise self.error_for(result)
        payload = result.json()
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not token:
            raise MDMError(
                f"{self.vendor} answered the token request without an access token.",
                kind="permanent",
                status_code=result.status_code,
            )
        try:
            expires_in = int(payload.get("expires_in", 0))
        except (TypeError, ValueError):
            expires_in = 0
        self.token_cache.put(key, token, expires_in)
        return token, False

    @sensitive_variables("token", "headers")
    def authorized(self, method: str, url: str, **kwargs) -> HTTPResult:
        """Call the API with a bearer token; a 401 with a cached token gets one fresh retry
        (the token may have been revoked before it expired). A token fetched for this call that
        is refused is not fetched again: the credentials lack the right, and a second request
        (a second lock) would only be refused too."""
        headers = kwargs.pop("headers", None) or {}
        token, cached = self._access_token()
        result = self.http(
            method, url, headers={**headers, "Authorization": f"Bearer {token}"}, **kwargs
        )
        if result.status_code == 401 and cached:
            token = self.access_token(fresh=True)
            result = self.http(
                method, url, headers={**headers, "Authorization": f"Bearer {token}"}, **kwargs
            )
        return result
