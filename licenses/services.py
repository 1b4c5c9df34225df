"""Writes to licenses and entitlements: seat limits and the revoke-never-delete rule live here."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from assets.models import Asset
from assetsonar.audit import audit_record, model_changes
from assetsonar.locale_dates import format_date
from assetsonar.models import AuditEvent
from assetsonar.tallies import counted, tally_add
from licenses.models import Entitlement, License
from members.models import Member

EDITABLE_FIELDS = ["name", "vendor", "kind", "seats", "expires_on", "cost", "notes"]


@transaction.atomic
def license_create(*, actor: Any, request: Any = None, **fields: Any) -> License:
    """Create a license."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"Unknown license fields: {sorted(unknown)}")
    lic = License(**fields)
    lic.full_clean()
    lic.save()
    audit_record(action=AuditEvent.Action.CREATED, actor=actor, obj=lic, request=request)
    return lic


@transaction.atomic
def license_update(*, license: License, actor: Any, request: Any = None, **fields: Any) -> License:
    """Edit a license. Seats cannot drop below the seats in use; the kind cannot change once
    the license has entitlements (they were given under the old kind's rules)."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"Unknown license fields: {sorted(unknown)}")
    locked = License.objects.select_for_update().get(pk=license.pk)
    before = {name: getattr(locked, name) for name in EDITABLE_FIELDS}
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.full_clean()
    used = locked.seats_used  # read under the row lock that every entitle and revoke takes
    if locked.seats < used:
        raise ValidationError(
            {"seats": f"{used} seats are in use; revoke entitlements before going below {used}."}
        )
    if locked.kind != before["kind"] and locked.entitlements.exists():
        raise ValidationError({"kind": "The kind cannot change once the license has entitlements."})
    changes = model_changes(locked, before, EDITABLE_FIELDS)
    if changes:
        locked.save()
        audit_record(
            action=AuditEvent.Action.CHANGED,
            actor=actor,
            obj=locked,
            changes=changes,
            request=request,
        )
    return locked


@transaction.atomic
def license_entitle(
    *,
    license: License | int,
    actor: Any,
    member: Member | None = None,
    asset: Asset | None = None,
    request: Any = None,
) -> Entitlement:
    """Give one seat of a license to a member, a device, or a member on a device.

    The license row is locked while seats are counted, so two requests for the last seat cannot
    both succeed.
    """
    pk = license.pk if isinstance(license, License) else license
    lic = License.objects.select_for_update().get(pk=pk)
    if lic.kind == License.Kind.DEVICE:
        if asset is None:
            raise ValidationError({"asset": f"{lic} is device-based: choose a device."})
        if member is not None:
            raise ValidationError(
                {"member": f"{lic} is device-based: it is given to a device only."}
            )
    elif member is None:
        raise ValidationError({"member": f"{lic} is user-based: choose a member."})
    if member is not None and member.status != Member.Status.ACTIVE:
        raise ValidationError(
            {"member": f"{member} is deactivated; licenses go to active members."}
        )
    if asset is not None and asset.status in (Asset.Status.RETIRED, Asset.Status.LOST):
        raise ValidationError(
            {"asset": f"{asset.asset_tag} is {asset.get_status_display().lower()}."}
        )
    if lic.expires_on and lic.expires_on < timezone.localdate():
        raise ValidationError(f"{lic} expired on {format_date(lic.expires_on)}.")
    used = lic.seats_used  # read under the row lock that every entitle and revoke takes
    if used >= lic.seats:
        raise ValidationError(
            f"All {lic.seats} seats of {lic} are in use. Revoke an entitlement or add seats first."
        )
    entitlement = Entitlement(
        license=lic,
        member=member,
        asset=asset,
        assigned_at=timezone.now(),
        assigned_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    entitlement.full_clean()
    entitlement.save()
    tally_add(License, "seats_used", {lic.pk: 1})
    if member is not None:
        tally_add(Member, "live_entitlements_count", {member.pk: 1})
    audit_record(
        action=AuditEvent.Action.ENTITLED,
        actor=actor,
        obj=lic,
        message=f"Entitled {entitlement.target_label}.",
        request=request,
    )
    return entitlement


def entitlements_revoked_tally(revoked: list[tuple[int, int | None]]) -> None:
    """Take revoked entitlements, as (license id, member id or None), off the seats used of their
    licenses and the live counts of their members. Call it in the revoking transaction, after the
    entitlement rows are updated (locks: entitlements, then licenses, then members, the order
    every service takes them in)."""
    tally_add(License, "seats_used", {pk: -n for pk, n in counted(r[0] for r in revoked).items()})
    tally_add(
        Member,
        "live_entitlements_count",
        {pk: -n for pk, n in counted(r[1] for r in revoked).items()},
    )


@transaction.atomic
def license_unentitle(
    *, entitlement: Entitlement | int, actor: Any, reason: str = "", request: Any = None
) -> tuple[Entitlement, bool]:
    """Revoke one entitlement (the row stays as history). Returns (entitlement, changed)."""
    pk = entitlement.pk if isinstance(entitlement, Entitlement) else entitlement
    locked = Entitlement.objects.select_for_update().select_related("license").get(pk=pk)
    if locked.revoked_at is not None:
        return locked, False
    locked.revoked_at = timezone.now()
    locked.revoked_by = actor if getattr(actor, "is_authenticated", False) else None
    locked.revoked_reason = (reason or "Revoked by hand").strip()[:500]
    locked.save(update_fields=["revoked_at", "revoked_by", "revoked_reason"])
    entitlements_revoked_tally([(locked.license_id, locked.member_id)])
    audit_record(
        action=AuditEvent.Action.REVOKED,
        actor=actor,
        obj=locked.license,
        message=f"Revoked from {locked.target_label}: {locked.revoked_reason}",
        request=request,
    )
    return locked, True
