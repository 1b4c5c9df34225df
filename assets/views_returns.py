"""The Returns view: device return requests, open ones first, with filters and a CSV export.

The view checks the permissions itself (view_asset and view_returnrequest); the navigation entry
only hides it."""

from __future__ import annotations

import io

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from assets.filters import ReturnFilter
from assets.selectors_returns import return_list
from assetsonar.csvsafe import SafeWriter
from assetsonar.paging import AFTER_PARAM, paginate

PAGE_SIZE = 50
ORDERING = ["-requested_at", "-id"]
# Rows a CSV export writes at most (the newest first): a file, not a dump of the table.
CSV_LIMIT = 10_000


@require_GET
@login_required
@permission_required(["assets.view_asset", "assets.view_returnrequest"], raise_exception=True)
def return_list_view(request: HttpRequest) -> HttpResponse:
    filterset = ReturnFilter(request.GET or None, queryset=return_list())
    if request.GET.get("format") == "csv":
        return _csv(filterset.qs.order_by(*ORDERING)[:CSV_LIMIT])
    page = paginate(
        filterset.qs,
        ordering=ORDERING,
        per_page=PAGE_SIZE,
        number=request.GET.get("page"),
        after=request.GET.get(AFTER_PARAM),
    )
    template = "assets/return_list.html"
    if request.htmx and request.htmx.target == "return-results":
        template += "#results"
    query = request.GET.copy()
    query.pop("page", None)
    query.pop(AFTER_PARAM, None)
    query["format"] = "csv"
    response = render(
        request,
        template,
        {"filter": filterset, "page_obj": page, "csv_query": query.urlencode()},
    )
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def _csv(rows) -> HttpResponse:
    buffer = io.StringIO()
    writer = SafeWriter(buffer)
    writer.writerow(
        [
            "asset_tag",
            "device",
            "member",
            "member_email",
            "department",
            "requested_at",
            "reminders_sent",
            "next_reminder_at",
            "escalated_at",
            "overdue",
            "closed_at",
            "closed_reason",
        ]
    )
    for r in rows:
        writer.writerow(
            [
                r.asset.asset_tag,
                r.asset.name,
                r.member.full_name,
                r.member.email,
                r.member.department,
                _iso(r.requested_at),
                r.reminders_sent,
                _iso(r.next_reminder_at),
                _iso(r.escalated_at),
                "yes" if r.is_overdue else "no",
                _iso(r.closed_at),
                r.closed_reason,
            ]
        )
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="returns-{stamp}.csv"'
    return response


def _iso(value) -> str:
    return timezone.localtime(value).isoformat(timespec="minutes") if value else ""
