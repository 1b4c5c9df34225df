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


def dashboard_stats() -> dict:
    members = Member.objects.aggregate(
        active=Count("id", filter=Q(status=Member.Status.ACTIVE)),
        deactivated=Count("id", filter=Q(status=Member.Status.DEACTIVATED)),
    )
    assets = Asset.objects.aggregate(
        total=Count("id"),
        in_custody=Count("id", filter=Q(status=Asset.Status.IN_CUSTODY)),
        available=Count("id", filter=Q(status=Asset.Status.AVAILABLE)),
    )
    holding = (
        Member.objects.deactivated()
        .filter(
            Exists(Asset.objects.filter(custodian=OuterRef("pk")))
            | Exists(Entitlement.objects.live().filter(member=OuterRef("pk")))
        )
        .order_by("-deactivated_at")
    )
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
        "holding_count": holding.count(),
        "holding": holding[:10],
        "expiring": expiring[:10],
        "seat_use": seat_use,
        "today": today,
        "expiry_days": EXPIRY_WARNING_DAYS,
    }
