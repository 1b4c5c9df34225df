"""Small helpers the portal's views share."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect


def safe_next(request: HttpRequest, url: str | None, default: str) -> str:
    """`url` if it stays on this site (a `next` parameter is user input), else `default`."""
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return default


def done(request: HttpRequest, url: str) -> HttpResponse:
    """After a successful write: htmx follows HX-Redirect, a plain POST gets a 302 (PRG)."""
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


@dataclass(frozen=True)
class SortHeader:
    key: str
    label: str
    next: str
    direction: str  # "ascending", "descending" or "" (the aria-sort values)
    numeric: bool = False


def resolve_sort(
    request: HttpRequest,
    columns: dict[str, tuple[str, tuple[str, ...]]],
    default: str,
    numeric: frozenset[str] = frozenset(),
) -> tuple[str, list[str], list[SortHeader]]:
    """The `sort` parameter if it names a whitelisted column, else `default` ("-name" sorts
    descending). Returns the sort, the order_by fields (pk last, so pages never overlap) and
    the table headers with the link that toggles each column."""
    sort = request.GET.get("sort") or default
    key = sort.removeprefix("-")
    if key not in columns:
        sort, key = default, default.removeprefix("-")
    descending = sort.startswith("-")
    sign = "-" if descending else ""
    order_by = [sign + field for field in columns[key][1]] + [sign + "pk"]
    headers = [
        SortHeader(
            key=name,
            label=label,
            next=f"-{name}" if name == key and not descending else name,
            direction=("descending" if descending else "ascending") if name == key else "",
            numeric=name in numeric,
        )
        for name, (label, _fields) in columns.items()
    ]
    return sort, order_by, headers
