"""Reads for the dashboard: a fixed number of small queries whatever the data size."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from assets.models import Asset
from assetsonar.paging import CappedPaginator
from assetsonar.tallies import tally_values
from licenses.selectors import licenses_with_seat_use
from members.models import Member
from members.selectors import member_holding_filter

EXPIRY_WARNING_DAYS = 30


def dashboard_stats() -> dict:
    """The dashboard's figures. Totals come from the tallies the services keep (a few rows,
    not a count over a million members and assets); the deactivated members still holding
    something from their own counts, through the partial index member_deactivated_holding, with
    a count that stops at COUNT_LIMIT."""
    tallies = tally_values("members", "assets")
    member_tallies, asset_tallies = tallies["members"], tallies["assets"]
    members = {
        "active": member_tallies.get(Member.Status.ACTIVE, 0),
        "deactivated": member_tallies.get(Member.Status.DEACTIVATED, 0),
    }
    assets = {
        "total": sum(asset_tallies.values()),
        "in_custody": asset_tallies.get(Asset.Status.IN_CUSTODY, 0),
        "available": asset_tallies.get(Asset.Status.AVAILABLE, 0),
    }
    holding = (
        Member.objects.deactivated()
        .filter(member_holding_filter())
        .order_by("-deactivated_at", "-id")
    )
    holding_count = CappedPaginator(holding, 10)
    today = timezone.localdate()
    expiring = (
        licenses_with_seat_use()
        .filter(
            expires_on__isnull=False, expires_on__lte=today + timedelta(days=EXPIRY_WARNING_DAYS)
        )
        .order_by("expires_on")
    )
    seat_use = licenses_with_seat_use().order_by("-seats_used", "name")[:10]
    return {
        "members": members,
        "assets": assets,
        "holding_count": holding_count.count,
        "holding_capped": holding_count.capped,
        "holding": holding[:10],
        "expiring": expiring[:10],
        "seat_use": seat_use,
        "today": today,
        "expiry_days": EXPIRY_WARNING_DAYS,
    }
