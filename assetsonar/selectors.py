"""Reads for the dashboard: a fixed number of aggregate queries whatever the data size."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from assets.models import Asset
from licenses.models import Entitlement
from licenses.selectors import licenses_with_seat_use
from members.models import Member

EXPIRY_WARNING_DAYS = 30


def dashboard_stats(*, sections: frozenset[str]) -> dict:
    """The dashboard's figures for the sections the viewer may see (see roles.visible_sections):
    member counts need members, asset counts assets, license expiry and seat use licenses, and
    the deactivated members still holding something members, assets and entitlements. What is
    not shown is not queried."""
    today = timezone.localdate()
    stats: dict = {"today": today, "expiry_days": EXPIRY_WARNING_DAYS, "sections": sections}
    if "members" in sections:
        stats["members"] = Member.objects.aggregate(
            active=Count("id", filter=Q(status=Member.Status.ACTIVE)),
            deactivated=Count("id", filter=Q(status=Member.Status.DEACTIVATED)),
        )
    if "assets" in sections:
        stats["assets"] = Asset.objects.aggregate(
            total=Count("id"),
            in_custody=Count("id", filter=Q(status=Asset.Status.IN_CUSTODY)),
            available=Count("id", filter=Q(status=Asset.Status.AVAILABLE)),
        )
    if {"members", "assets", "entitlements"} <= sections:
        holding = (
            Member.objects.deactivated()
            .filter(
                Exists(Asset.objects.filter(custodian=OuterRef("pk")))
                | Exists(Entitlement.objects.live().filter(member=OuterRef("pk")))
            )
            .order_by("-deactivated_at")
        )
        stats["show_holding"] = True
        stats["holding_count"] = holding.count()
        stats["holding"] = holding[:10]
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
