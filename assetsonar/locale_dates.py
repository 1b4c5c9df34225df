"""Dates in the user's own format: the one their browser uses for date inputs.

A browser shows an `<input type="date">` in its own locale's numeric format (12/01/2026 in the
US, 01/12/2026 in the UK, 01.12.2026 in Germany) and there is no way to change it. So dates the
portal shows are written the same way: the middleware reads the request's Accept-Language (the
browser's locale, the one its date inputs follow), and the `local_date` / `local_datetime`
filters format with that locale's short date pattern from Django's format modules, days and
months always two digits as the date input shows them. Only the format follows the locale;
the active language (Django's own messages) stays the portal's LANGUAGE_CODE. Times are 24-hour
(H:i), which reads the same everywhere.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from datetime import date, datetime

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import dateformat, formats, timezone
from django.utils.cache import patch_vary_headers
from django.utils.translation import trans_real

_locale: ContextVar[str] = ContextVar("assetsonar_date_locale", default="")


def locale_from_request(request: HttpRequest) -> str:
    """The first language of Accept-Language that Django has formats for, else LANGUAGE_CODE."""
    header = request.headers.get("Accept-Language", "")
    for code, _quality in trans_real.parse_accept_lang_header(header):
        if code == "*":
            continue
        try:
            return trans_real.get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


def date_locale_middleware(get_response: Callable[[HttpRequest], HttpResponse]):
    """Remember the request's date locale for the date filters while it is answered."""

    def middleware(request: HttpRequest) -> HttpResponse:
        token = _locale.set(locale_from_request(request))
        try:
            response = get_response(request)
        finally:
            _locale.reset(token)
        patch_vary_headers(response, ["Accept-Language"])
        return response

    return middleware


def date_pattern(lang: str | None = None) -> str:
    """The locale's short date as a Django date format, with two-digit days and months
    ("m/d/Y", "d/m/Y", "d.m.Y", "Y-m-d")."""
    lang = lang or _locale.get() or settings.LANGUAGE_CODE
    pattern = formats.get_format("SHORT_DATE_FORMAT", lang=lang)
    return pattern.replace("j", "d").replace("n", "m").replace("y", "Y")


def format_date(value: date | datetime | None) -> str:
    if not value:
        return ""
    if isinstance(value, datetime):
        value = timezone.localtime(value) if timezone.is_aware(value) else value
    return _format(value, date_pattern())


def format_datetime(value: datetime | None, *, seconds: bool = False) -> str:
    if not value:
        return ""
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return _format(value, f"{date_pattern()} H:i{':s' if seconds else ''}")


# Django's format characters that are zero-padded numbers, and their strftime equivalents.
_STRFTIME = {"d": "%d", "m": "%m", "Y": "%Y", "H": "%H", "i": "%M", "s": "%S"}


@functools.lru_cache(maxsize=64)
def _strftime_pattern(pattern: str) -> str | None:
    """The strftime equivalent of a Django date format made only of the numbers in _STRFTIME
    and separators (every pattern `date_pattern` gives, with or without the time); None for
    any other format. The same text as `dateformat.format`, at a tenth of its cost: a page
    lists up to a hundred dates."""
    out = []
    for char in pattern:
        if char in _STRFTIME:
            out.append(_STRFTIME[char])
        elif char.isalpha() or char == "\\":
            return None
        else:
            out.append("%%" if char == "%" else char)
    return "".join(out)


def _format(value: date | datetime, pattern: str) -> str:
    fast = _strftime_pattern(pattern)
    if fast is None or value.year < 1000:  # strftime does not pad years below 1000
        return dateformat.format(value, pattern)
    return value.strftime(fast)
