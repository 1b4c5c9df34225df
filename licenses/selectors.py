"""Reads for licenses: seat use is a column of the license, never counted per request."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet
from django.shortcuts import get_object_or_404

from assetsonar.paging import capped_count
from licenses.models import Entitlement, License


def licenses_with_seat_use(queryset: QuerySet[License] | None = None) -> QuerySet[License]:
    """Licenses (all, or `queryset`) with `seats_used`: a column of the license row, kept by the
    services that give and revoke entitlements (assetsonar/tallies.py), so a list, a sort by
    use or the biggest license's page never counts its entitlements (500,000 live rows for one
    license at 1M members)."""
    return License.objects.all() if queryset is None else queryset


def license_list() -> QuerySet[License]:
    """Licenses with `seats_used` annotated."""
    return licenses_with_seat_use()


def license_get(pk: int, *, revoked_count_limit: int | None = None) -> License:
    """One license with `seats_used`, or 404. With `revoked_count_limit`, also
    `revoked_counted`: its revoked entitlements counted up to that limit + 1 (paging.
    capped_count), in the same query."""
    queryset = licenses_with_seat_use()
    if revoked_count_limit is not None:
        revoked = Entitlement.objects.filter(license=OuterRef("pk"), revoked_at__isnull=False)
        queryset = queryset.annotate(revoked_counted=capped_count(revoked, revoked_count_limit))
    return get_object_or_404(queryset, pk=pk)


def license_entitlements(license: License, *, live: bool) -> QuerySet[Entitlement]:
    """Live (or revoked) entitlements of a license, newest first, with their targets joined."""
    queryset = Entitlement.objects.filter(license=license, revoked_at__isnull=live)
    # Orders match the partial indexes on Entitlement, so a page is an index scan, not a sort.
    queryset = queryset.order_by("-id") if live else queryset.order_by("-revoked_at", "-id")
    # Only the columns the license page shows: the joined users' rows are wide (password hash,
    # names, flags) and were most of what each row carried. A live row has no revoker to join:
    # planning a join costs more than reading its rows (the live page at 1M members: 1.3 ms of
    # planning with the revoker's join, 0.8 ms without, 0.2 ms of execution).
    if live:
        fields = [field for field in ENTITLEMENT_ROW_FIELDS if not field.startswith("revoked_by")]
        return queryset.select_related("member", "asset", "assigned_by").only(*fields)
    return queryset.select_related("member", "asset", "assigned_by", "revoked_by").only(
        *ENTITLEMENT_ROW_FIELDS
    )


ENTITLEMENT_ROW_FIELDS = (
    "license_id",
    "member_id",
    "asset_id",
    "assigned_at",
    "assigned_by_id",
    "revoked_at",
    "revoked_by_id",
    "revoked_reason",
    "member__full_name",
    "member__status",
    "asset__asset_tag",
    "asset__name",
    "assigned_by__username",
    "revoked_by__username",
)


def entitlement_get(*, license_pk: int, pk: int) -> Entitlement:
    """One entitlement of the given license, or 404."""
    return get_object_or_404(
        Entitlement.objects.select_related("license", "member", "asset"),
        license_id=license_pk,
        pk=pk,
    )
