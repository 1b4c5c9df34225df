"""Response headers the portal adds itself (the Permissions-Policy comes from
django-permissions-policy, the CSP from django-csp)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers


def no_store_when_signed_in(get_response: Callable[[HttpRequest], HttpResponse]):
    """`Cache-Control: no-store` on every page a signed-in user gets: they show members, devices,
    audit rows and, once, secrets, which a shared computer's browser cache or a proxy must not
    keep. Static files never reach this (WhiteNoise answers them further out)."""

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            add_never_cache_headers(response)
        return response

    return middleware
