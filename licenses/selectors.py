"""Reads for licenses: seat use is annotated in the same query, never counted per row."""

from __future__ import annotations

from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404

from licenses.models import Entitlement, License


def licenses_with_seat_use(queryset: QuerySet[License] | None = None) -> QuerySet[License]:
    """Licenses (all, or `queryset`) annotated with `seats_used` (live entitlements).

    A correlated count per license rather than a JOIN + GROUP BY: each count is an index-only
    scan of the partial index `entitlement_live_by_license`, so the cost follows the number of
    licenses shown, not the number of entitlements, and a count or filter of the licenses never
    touches the entitlements table.
    """
    live = (
        Entitlement.objects.live()
        .filter(license=OuterRef("pk"))
        .order_by()
        .values("license")
        .annotate(n=Count("pk"))
        .values("n")
    )
    if queryset is None:
        queryset = License.objects.all()
    return queryset.annotate(seats_used=Coalesce(Subquery(live), 0))


def license_list() -> QuerySet[License]:
    """Licenses with `seats_used` annotated."""
    return licenses_with_seat_use()


def license_get(pk: int) -> License:
    """One license with `seats_used`, or 404."""
    return get_object_or_404(licenses_with_seat_use(), pk=pk)


def license_entitlements(license: License, *, live: bool) -> QuerySet[Entitlement]:
    """Live (or revoked) entitlements of a license, newest first, with their targets joined."""
    queryset = Entitlement.objects.filter(license=license, revoked_at__isnull=live)
    # Orders match the partial indexes on Entitlement, so a page is an index scan, not a sort.
    queryset = queryset.order_by("-id") if live else queryset.order_by("-revoked_at", "-id")
    return queryset.select_related("member", "asset", "assigned_by", "revoked_by")


def entitlement_get(*, license_pk: int, pk: int) -> Entitlement:
    """One entitlement of the given license, or 404."""
    return get_object_or_404(
        Entitlement.objects.select_related("license", "member", "asset"),
        license_id=license_pk,
        pk=pk,
    )
