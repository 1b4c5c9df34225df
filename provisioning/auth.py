"""Who is calling the SCIM endpoint: the bearer token, its scope and its rate."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

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


def throttle(token: ScimToken) -> None:
    """A fixed window per token (SCIM_RATE_LIMIT requests per SCIM_RATE_WINDOW seconds), counted
    in the cache: shared by every thread of the server process (waitress runs one process), and
    by every process when REDIS_URL puts the cache in Redis."""
    window = settings.SCIM_RATE_WINDOW
    now = time.time()
    slot = int(now // window)
    key = f"scim-rate:{token.pk}:{slot}"
    if cache.add(key, 1, timeout=window + 1):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=window + 1)
            count = 1
    if count > settings.SCIM_RATE_LIMIT:
        retry = max(1, math.ceil((slot + 1) * window - now))
        raise ScimError(
            429,
            f"Too many requests with the token “{token.name}”: at most "
            f"{settings.SCIM_RATE_LIMIT} per {window} seconds. Retry in {retry} s.",
            headers={"Retry-After": str(retry)},
        )
