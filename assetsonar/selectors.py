"""Reads for the dashboard: a fixed number of small queries whatever the data size."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from assets.models import Asset
from assets.selectors_returns import returns_overdue_queryset
from assetsonar.paging import COUNT_LIMIT, counts_at_once
from assetsonar.tallies import tally_values
from licenses.selectors import licenses_with_seat_use
from members.models import Member
from members.selectors import (
    DASHBOARD_UPCOMING_DAYS,
    company_time_zone,
    company_today,
    member_holding_filter,
    upcoming_offboardings_queryset,
)

EXPIRY_WARNING_DAYS = 30
# The "deactivated but still holding" tile counts exactly up to here, then says "1,000+": an
# index-only count of 1,001 entries, where the list's 10,000 would cost ~1 ms of the page at 1M
# members. Past a thousand the figure calls for the list (its link), not for its last digit.
HOLDING_COUNT_LIMIT = 1_000


def dashboard_stats(*, sections: frozenset[str]) -> dict:
    """The dashboard's figures for the sections the viewer may see (see roles.visible_sections):
    member counts need members, asset counts assets, license expiry and seat use licenses, and
    the deactivated members still holding something members, assets and entitlements. What is
    not shown is not queried.

    Totals come from the tallies the services keep (a few rows, not a count over a million
    members and assets); the deactivated members still holding something from their own
    counts, through the partial index member_deactivated_holding, with a count that stops at
    HOLDING_COUNT_LIMIT."""
    today = timezone.localdate()
    stats: dict = {"today": today, "expiry_days": EXPIRY_WARNING_DAYS, "sections": sections}
    counts: dict = {}  # the cards' counts, asked for in one query at the end
    if "members" in sections or "assets" in sections:
        tallies = tally_values("members", "assets")
        if "members" in sections:
            stats["members"] = {
                "active": tallies["members"].get(Member.Status.ACTIVE, 0),
                "deactivated": tallies["members"].get(Member.Status.DEACTIVATED, 0),
            }
            # Through the partial index member_last_day: a range of two weeks of leavers.
            stats["upcoming_days"] = DASHBOARD_UPCOMING_DAYS
            start = company_today(company_time_zone())
            counts["upcoming_offboardings"] = (
                upcoming_offboardings_queryset(
                    start=start, end=start + timedelta(days=DASHBOARD_UPCOMING_DAYS)
                ),
                None,
            )
        if "assets" in sections:
            stats["assets"] = {
                "total": sum(tallies["assets"].values()),
                "in_custody": sum(tallies["assets"].get(s, 0) for s in Asset.CUSTODY_STATUSES),
                "available": tallies["assets"].get(Asset.Status.AVAILABLE, 0),
            }
            # Device returns past their first reminder (assets/returns.py), on a partial index.
            counts["returns_overdue"] = (returns_overdue_queryset(), COUNT_LIMIT)
    if {"members", "assets", "entitlements"} <= sections:
        holding = (
            Member.objects.deactivated()
            .filter(member_holding_filter())
            .order_by("-deactivated_at", "-id")
            .only("full_name", "department", "deactivated_at")
        )
        counts["holding"] = (holding, HOLDING_COUNT_LIMIT)
        stats["show_holding"] = True
        stats["holding"] = holding[:10]
    counted = counts_at_once(counts)
    if "upcoming_offboardings" in counted:
        stats["upcoming_offboardings"] = counted["upcoming_offboardings"][0]
    if "returns_overdue" in counted:
        stats["returns_overdue"], stats["returns_overdue_capped"] = counted["returns_overdue"]
    if "holding" in counted:
        stats["holding_count"], stats["holding_capped"] = counted["holding"]
    if "licenses" in sections:
        stats["show_licenses"] = True
        stats["expiring"] = (
            licenses_with_seat_use()
            .filter(
                expires_on__isnull=False,
                expires_on__lte=today + timedelta(days=EXPIRY_WARNING_DAYS),
            )
            .order_by("expires_on")[:10]
        )
        stats["seat_use"] = licenses_with_seat_use().order_by("-seats_used", "name")[:10]
    return stats
