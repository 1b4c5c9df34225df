"""Reads for device returns: the Returns view, the asset and member pages, the dashboard. Each
returns a queryset with its joins, so a page costs a fixed number of queries."""

from __future__ import annotations

from django.db.models import QuerySet

from assets.models import Asset, ReturnRequest
from members.models import Member


def return_list() -> QuerySet[ReturnRequest]:
    """Return requests with their device and member joined (one query per page)."""
    return ReturnRequest.objects.select_related("asset", "member")


def return_open_for_asset(asset: Asset) -> ReturnRequest | None:
    """The asset's open return request, if any (one query, on the partial unique index)."""
    return ReturnRequest.objects.filter(asset=asset, closed_at=None).first()


def returns_open_for_member(member: Member) -> list[ReturnRequest]:
    """The member's open return requests with their devices (one query)."""
    return list(
        ReturnRequest.objects.filter(member=member, closed_at=None)
        .select_related("asset")
        .order_by("asset__asset_tag", "id")
    )


def returns_overdue_queryset() -> QuerySet[ReturnRequest]:
    """The open returns that are overdue (the partial index return_overdue_by_requested): the
    dashboard counts them up to COUNT_LIMIT."""
    return ReturnRequest.objects.filter(ReturnRequest.OVERDUE)
