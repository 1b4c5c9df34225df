"""Writes to assets and custody. Atomic, audited, and the custody rules live here."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from assets.models import Asset, CustodyRecord
from assets.returns import return_request_close_for_checked_in
from assetsonar.audit import audit_record, model_changes
from assetsonar.models import AuditEvent
from assetsonar.tallies import tally_add, tally_status_change
from members.models import Member

EDITABLE_FIELDS = [
    "asset_tag",
    "name",
    "category",
    "platform",
    "manufacturer",
    "model",
    "serial_number",
    "status",
    "mdm_connection",
    "mdm_device_id",
    "notes",
]


def _check_fields(fields: dict[str, Any]) -> None:
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"Unknown asset fields: {sorted(unknown)}")
    if fields.get("status") in Asset.CUSTODY_STATUSES:
        raise ValidationError({"status": "Use “Check out” to put an asset in someone's custody."})


@transaction.atomic
def asset_create(*, actor: Any, request: Any = None, **fields: Any) -> Asset:
    """Register a new asset (not in anyone's custody)."""
    _check_fields(fields)
    asset = Asset(**fields)
    asset.full_clean()
    asset.save()
    tally_status_change("assets", None, asset.status)
    audit_record(action=AuditEvent.Action.CREATED, actor=actor, obj=asset, request=request)
    return asset


@transaction.atomic
def asset_update(*, asset: Asset, actor: Any, request: Any = None, **fields: Any) -> Asset:
    """Edit an asset's details. Custody changes only through check-out and check-in."""
    locked = Asset.objects.select_for_update().get(pk=asset.pk)
    if locked.is_held and fields.get("status") not in (None, locked.status):
        raise ValidationError({"status": "Check the asset in before changing its status."})
    if locked.is_held and fields.get("status") == locked.status:
        fields.pop("status")
    _check_fields(fields)
    before = {name: getattr(locked, name) for name in EDITABLE_FIELDS}
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.full_clean()
    changes = model_changes(locked, before, EDITABLE_FIELDS)
    if changes:
        locked.save()
        tally_status_change("assets", before["status"], locked.status)
        audit_record(
            action=AuditEvent.Action.CHANGED,
            actor=actor,
            obj=locked,
            changes=changes,
            request=request,
        )
    return locked


@transaction.atomic
def asset_check_out(
    *, asset: Asset | int, member: Member, actor: Any, note: str = "", request: Any = None
) -> CustodyRecord:
    """Give an available asset into a member's custody and open a custody record."""
    pk = asset.pk if isinstance(asset, Asset) else asset
    locked = Asset.objects.select_for_update().get(pk=pk)
    if locked.status != Asset.Status.AVAILABLE:
        raise ValidationError(
            f"{locked.asset_tag} is {locked.get_status_display().lower()}"
            + (f" ({locked.custodian})" if locked.custodian_id else "")
            + "; only available assets can be checked out."
        )
    if member.status != Member.Status.ACTIVE:
        raise ValidationError({"member": f"{member} is deactivated; assets go to active members."})
    now = timezone.now()
    locked.status = Asset.Status.IN_CUSTODY
    locked.custodian = member
    locked.save(update_fields=["status", "custodian", "updated_at"])
    tally_add(Member, "assets_count", {member.pk: 1})
    tally_status_change("assets", Asset.Status.AVAILABLE, Asset.Status.IN_CUSTODY)
    record = CustodyRecord.objects.create(
        asset=locked,
        member=member,
        checked_out_at=now,
        checked_out_by=actor if getattr(actor, "is_authenticated", False) else None,
        note=note[:500],
    )
    audit_record(
        action=AuditEvent.Action.CHECKED_OUT,
        actor=actor,
        obj=locked,
        changes={"custodian": [None, str(member)]},
        message=note,
        request=request,
    )
    return record


@transaction.atomic
def asset_check_in(
    *,
    asset: Asset | int,
    actor: Any,
    note: str = "",
    status: str = Asset.Status.AVAILABLE,
    request: Any = None,
) -> CustodyRecord:
    """Take an asset back from its custodian and close the open custody record, and its open
    return request if it has one (assets/returns.py)."""
    if status in Asset.CUSTODY_STATUSES or status not in Asset.Status.values:
        raise ValidationError({"status": "Choose the status the asset returns to."})
    pk = asset.pk if isinstance(asset, Asset) else asset
    locked = Asset.objects.select_for_update().get(pk=pk)
    if not locked.is_held:
        raise ValidationError(f"{locked.asset_tag} is not checked out to anyone.")
    return_request_close_for_checked_in(asset=locked, actor=actor, request=request)
    held_status = locked.status
    record = CustodyRecord.objects.select_for_update().get(asset=locked, checked_in_at__isnull=True)
    previous = locked.custodian
    record.checked_in_at = timezone.now()
    record.checked_in_by = actor if getattr(actor, "is_authenticated", False) else None
    if note:
        record.note = f"{record.note}\n{note}".strip()[:500]
    record.save(update_fields=["checked_in_at", "checked_in_by", "note"])
    locked.status = status
    locked.custodian = None
    locked.save(update_fields=["status", "custodian", "updated_at"])
    tally_add(Member, "assets_count", {record.member_id: -1})
    tally_status_change("assets", held_status, status)
    audit_record(
        action=AuditEvent.Action.CHECKED_IN,
        actor=actor,
        obj=locked,
        changes={"custodian": [str(previous), None]},
        message=note,
        request=request,
    )
    return record


@transaction.atomic
def asset_mark_unlocked(*, asset: Asset | int, actor: Any, note: str, request: Any = None) -> Asset:
    """Record that a locked device was unlocked (at the desk, with its PIN, or in the vendor's
    console). Until then the device's lock is in force and every later deactivation, retry or
    automation reuses it and its PIN (issue 8: one lock per device until it is unlocked); after
    it, the next offboarding of its custodian sends a new lock with a new PIN. Sends nothing to
    the vendor: unlocking happens on the device."""
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": "Say how the device was unlocked (for the audit trail)."})
    pk = asset.pk if isinstance(asset, Asset) else asset
    locked = Asset.objects.select_for_update().get(pk=pk)
    if locked.lock_state == Asset.LockState.UNLOCKED:
        raise ValidationError(f"{locked.asset_tag} is not locked.")
    before = locked.get_lock_state_display()
    locked.lock_state, locked.locked_at = Asset.LockState.UNLOCKED, None
    locked.save(update_fields=["lock_state", "locked_at", "updated_at"])
    audit_record(
        action=AuditEvent.Action.MARKED_UNLOCKED,
        actor=actor,
        obj=locked,
        changes={"lock_state": [before, locked.get_lock_state_display()]},
        message=note[:500],
        request=request,
    )
    return locked
