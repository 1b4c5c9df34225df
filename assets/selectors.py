"""Reads for assets: each returns a queryset with the joins its page needs, so a page costs a fixed
number of queries whatever the number of rows."""

from __future__ import annotations

from django.db.models import QuerySet
from django.db.models.functions import Lower
from django.shortcuts import get_object_or_404

from assets.models import Asset, CustodyRecord
from licenses.models import Entitlement
from members.models import Member


def asset_list() -> QuerySet[Asset]:
    """Assets for the list page, with the custodian joined (one query per page)."""
    return Asset.objects.select_related("custodian")


def asset_get(pk: int) -> Asset:
    """One asset with its custodian and MDM connection, or 404."""
    return get_object_or_404(Asset.objects.select_related("custodian", "mdm_connection"), pk=pk)


def asset_find_by_tag(tag: str) -> Asset | None:
    """The asset with this tag in any letter case (tags are unique that way): the unique
    LOWER(asset_tag) index answers it at any table size."""
    tag = tag.strip()
    if not tag:
        return None
    tags = Asset.objects.annotate(tag_lower=Lower("asset_tag"))
    return tags.filter(tag_lower=tag.lower()).first()


def asset_custody_history(asset: Asset) -> QuerySet[CustodyRecord]:
    """Custody records of an asset, newest first, with the people involved joined."""
    return CustodyRecord.objects.filter(asset=asset).select_related(
        "member", "checked_out_by", "checked_in_by"
    )


def asset_entitlements(asset: Asset, *, live: bool) -> QuerySet[Entitlement]:
    """Live (or revoked) license entitlements given to this device."""
    return Entitlement.objects.filter(asset=asset, revoked_at__isnull=live).select_related(
        "license", "member", "assigned_by", "revoked_by"
    )


def member_find(identifier: str) -> Member | None:
    """The member with this email address (any case) or employee ID, or None.

    There can be 100k members, so the portal asks for an exact identifier instead of offering a
    list. `Lower("email")` matches the `member_email_lower` index (`iexact` would not use it).
    """
    identifier = identifier.strip()
    if not identifier:
        return None
    if "@" in identifier:
        return (
            Member.objects.annotate(email_lower=Lower("email"))
            .filter(email_lower=identifier.lower())
            .first()
        )
    return (
        Member.objects.filter(employee_id__in={identifier, identifier.upper()})
        .order_by("employee_id")
        .first()
    )
