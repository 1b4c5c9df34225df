"""Who is calling the SCIM endpoint: the bearer token, its scope and its rate."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from assetsonar.audit import client_ip
from provisioning.errors import ScimError
from provisioning.models import ScimToken
from provisioning.services import token_hash


@dataclass(frozen=True)
class ScimActor:
    """The actor the member services see for a SCIM write: the token and the request's id."""

    token: ScimToken
    request_id: str

    @property
    def audit_name(self) -> str:
        return self.token.audit_name

    @property
    def audit_message(self) -> str:
        return f"{self.token.audit_name}, request {self.request_id}"

    is_authenticated = False


def _unauthorized(detail: str) -> ScimError:
    return ScimError(401, detail, headers={"WWW-Authenticate": 'Bearer realm="SCIM"'})


def authenticate(request) -> ScimToken:
    """The token of `Authorization: Bearer …`; 401 when missing, unknown or revoked."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise _unauthorized("Send a SCIM token as “Authorization: Bearer <token>”.")
    token = ScimToken.objects.filter(token_hash=token_hash(secret.strip())).first()
    if token is None:
        raise _unauthorized("The SCIM token is not valid.")
    if token.revoked_at is not None:
        request.scim_token = token  # logged against the revoked token, so IT sees who still calls
        raise _unauthorized("The SCIM token was revoked.")
    return token


def require_write(token: ScimToken) -> None:
    if token.read_only:
        raise ScimError(403, f"The token “{token.name}” is read-only; this request changes users.")


def _count(key: str) -> tuple[int, int]:
    """One more request in the current fixed window of SCIM_RATE_WINDOW seconds, counted in the
    cache: shared by every thread of the server process (waitress runs one process), and by
    every process when REDIS_URL puts the cache in Redis. Returns the window's count so far and
    the seconds until the window ends."""
    window = settings.SCIM_RATE_WINDOW
    now = time.time()
    slot = int(now // window)
    key = f"{key}:{slot}"
    if cache.add(key, 1, timeout=window + 1):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=window + 1)
            count = 1
    return count, max(1, math.ceil((slot + 1) * window - now))


def throttle(token: ScimToken) -> None:
    """At most SCIM_RATE_LIMIT requests per SCIM_RATE_WINDOW seconds per token, then 429."""
    count, retry = _count(f"scim-rate:{token.pk}")
    if count > settings.SCIM_RATE_LIMIT:
        raise ScimError(
            429,
            f"Too many requests with the token “{token.name}”: at most "
            f"{settings.SCIM_RATE_LIMIT} per {settings.SCIM_RATE_WINDOW} seconds. "
            f"Retry in {retry} s.",
            headers={"Retry-After": str(retry)},
        )


def throttle_unauthenticated(request, refusal: ScimError) -> ScimError:
    """The error to answer a request that failed authentication with: its 401, or a 429 once
    its address has failed SCIM_UNAUTHENTICATED_RATE_LIMIT times in the window.

    A valid token is never refused by this count (it has its own rate), so a misconfigured
    client sharing an address with the identity provider cannot lock the provider out. Past the
    limit only the window's first refusal is logged (`quiet`): a flood of bad tokens costs a
    cache increment and one indexed lookup per request, not a row in the request log each."""
    limit = settings.SCIM_UNAUTHENTICATED_RATE_LIMIT
    address = client_ip(request) or "unknown"
    count, retry = _count(f"scim-unauthenticated:{address}")
    if count <= limit:
        return refusal
    error = ScimError(
        429,
        f"Too many requests without a valid SCIM token from {address}: at most {limit} per "
        f"{settings.SCIM_RATE_WINDOW} seconds. Retry in {retry} s; until then further "
        "refusals from this address are not logged.",
        headers={"Retry-After": str(retry)},
    )
    error.quiet = count > limit + 1
    return error
