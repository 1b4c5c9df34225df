"""`{{ value|local_date }}` and `{{ value|local_datetime }}` (`|local_datetime:"seconds"`): dates
in the user's locale, the format of their browser's date inputs (see assetsonar.locale_dates).
Loaded for every template (TEMPLATES builtins)."""

from __future__ import annotations

from django import template

from assetsonar.locale_dates import format_date, format_datetime

register = template.Library()


@register.filter
def local_date(value) -> str:
    return format_date(value)


@register.filter
def local_datetime(value, arg: str = "") -> str:
    return format_datetime(value, seconds=arg == "seconds")
