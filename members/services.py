"""Writes to members. Every write is atomic and leaves an audit row in the same transaction."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from assetsonar.audit import audit_build, audit_record, model_changes
from assetsonar.models import AuditEvent, PortalSettings
from assetsonar.tallies import tally_status_change
from members.models import Member, day_end

EDITABLE_FIELDS = [
    "full_name",
    "email",
    "employee_id",
    "department",
    "location",
    "title",
    "manager",
    "employment_type",
    "last_working_day",
    "time_zone",
    "deactivate_on_last_day",
    "personal_email",
]
# Written by SCIM provisioning only (the portal's forms do not show them).
IDENTITY_FIELDS = ["external_id", "scim_user_name", "given_name", "family_name"]


def _check_manager(member: Member) -> None:
    manager = member.manager
    seen = {member.pk}
    while manager is not None:
        if manager.pk in seen:
            raise ValidationError(
                {"manager": "A member cannot report to themselves, even indirectly."}
            )
        seen.add(manager.pk)
        manager = manager.manager


@transaction.atomic
def member_create(*, actor: Any, request: Any = None, **fields: Any) -> Member:
    """Create an active member from the editable fields."""
    unknown = set(fields) - set(EDITABLE_FIELDS) - set(IDENTITY_FIELDS)
    if unknown:
        raise TypeError(f"Unknown member fields: {sorted(unknown)}")
    if "deactivate_on_last_day" not in fields:
        fields["deactivate_on_last_day"] = PortalSettings.load().deactivate_on_last_day_default
    member = Member(**fields)
    member.email = member.email.strip()
    member.full_clean()
    member.save()
    tally_status_change("members", None, member.status)
    audit_record(action=AuditEvent.Action.CREATED, actor=actor, obj=member, request=request)
    return member


@transaction.atomic
def member_update(*, member: Member, actor: Any, request: Any = None, **fields: Any) -> Member:
    """Change a member's profile fields. Status changes go through deactivate/reactivate."""
    unknown = set(fields) - set(EDITABLE_FIELDS) - set(IDENTITY_FIELDS)
    if unknown:
        raise TypeError(f"Unknown member fields: {sorted(unknown)}")
    tracked = EDITABLE_FIELDS + IDENTITY_FIELDS
    before = {name: getattr(member, name) for name in tracked}
    for name, value in fields.items():
        setattr(member, name, value)
    member.full_clean()
    _check_manager(member)
    changes = model_changes(member, before, tracked)
    if changes:
        member.save()
        audit_record(
            action=AuditEvent.Action.CHANGED,
            actor=actor,
            obj=member,
            changes=changes,
            request=request,
        )
    return member


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(
            {"reason": "Say why the member is deactivated (for the audit trail)."}
        )
    if len(reason) > 500:
        raise ValidationError({"reason": "Keep the reason under 500 characters."})
    return reason


# What a deactivation writes. Saved with update_fields that include "status", so the post_save
# trigger (automations/signals.py) sees the transition.
DEACTIVATION_FIELDS = [
    "status",
    "deactivated_at",
    "deactivated_by",
    "deactivated_by_name",
    "deactivation_reason",
]


def _deactivate_locked(
    locked: Member, *, actor: Any, reason: str, request: Any = None
) -> AuditEvent:
    """The one way a member becomes deactivated: the row is locked by the caller and active.
    Saves it (the trigger fires) and returns its audit row, unsaved."""
    locked.status = Member.Status.DEACTIVATED
    locked.deactivated_at = timezone.now()
    locked.deactivated_by = actor if getattr(actor, "is_authenticated", False) else None
    # An actor that is not a portal user (a SCIM token) is named by its audit name.
    locked.deactivated_by_name = getattr(actor, "audit_name", "")[:150]
    locked.deactivation_reason = reason
    locked.save(update_fields=[*DEACTIVATION_FIELDS, "updated_at"])
    tally_status_change("members", Member.Status.ACTIVE, Member.Status.DEACTIVATED)
    return audit_build(
        action=AuditEvent.Action.DEACTIVATED,
        actor=actor,
        obj=locked,
        message=reason,
        request=request,
    )


@transaction.atomic
def member_deactivate(
    *, member: Member | int, actor: Any, reason: str, request: Any = None
) -> tuple[Member, bool]:
    """Deactivate a member. Returns (member, changed).

    The row is locked first and changed only if it is still active, so two simultaneous requests
    make one deactivation (and one automation event); the second is a no-op.
    """
    reason = _reason(reason)
    pk = member.pk if isinstance(member, Member) else member
    locked = Member.objects.select_for_update().get(pk=pk)
    if locked.status == Member.Status.DEACTIVATED:
        return locked, False
    _deactivate_locked(locked, actor=actor, reason=reason, request=request).save(force_insert=True)
    return locked, True


@transaction.atomic
def member_reactivate(
    *, member: Member | int, actor: Any, request: Any = None
) -> tuple[Member, bool]:
    """Reactivate a deactivated member. Returns (member, changed); a no-op if already active.

    A last working day that has already ended is cleared (and the audit row says so): it
    described the employment that ended, and left in place it would deactivate the member
    again at the next run of members_deactivate_due. A day still ahead is kept."""
    pk = member.pk if isinstance(member, Member) else member
    locked = Member.objects.select_for_update().get(pk=pk)
    if locked.status == Member.Status.ACTIVE:
        return locked, False
    changes = {}
    from members.selectors import company_time_zone

    ends = locked.last_day_ends_at(company_time_zone())
    if ends is not None and ends <= timezone.now():
        changes["last_working_day"] = [str(locked.last_working_day), None]
        locked.last_working_day = None
    locked.status = Member.Status.ACTIVE
    locked.deactivated_at = None
    locked.deactivated_by = None
    locked.deactivated_by_name = ""
    locked.deactivation_reason = ""
    locked.save()
    tally_status_change("members", Member.Status.DEACTIVATED, Member.Status.ACTIVE)
    audit_record(
        action=AuditEvent.Action.REACTIVATED,
        actor=actor,
        obj=locked,
        changes=changes,
        message="Reactivated; the last working day that had ended was cleared." if changes else "",
        request=request,
    )
    from assets.returns import return_requests_cancel_for_member  # assets imports members

    return_requests_cancel_for_member(member=locked, actor=actor, request=request)
    return locked, True


# Members locked per query by member_bulk_deactivate (under SQLite's limit on parameters).
BULK_BATCH = 500


@transaction.atomic
def member_bulk_deactivate(
    *, member_ids: Iterable[int], actor: Any, reason: str, request: Any = None
) -> int:
    """Deactivate several members in one transaction; returns how many changed.

    The rows are locked a batch at a time (in id order, so two bulk deactivations cannot
    deadlock), and each active one is deactivated as member_deactivate does it: saved on its own
    (never `update()`), so each deactivation fires its event. The audit rows are written together.
    """
    reason = _reason(reason)
    pks = sorted(set(member_ids))
    audits = []
    for start in range(0, len(pks), BULK_BATCH):
        locked = (
            Member.objects.select_for_update(of=("self",))
            .select_related("manager")  # the event's snapshot names the manager
            .filter(pk__in=pks[start : start + BULK_BATCH], status=Member.Status.ACTIVE)
            .order_by("pk")
        )
        audits += [
            _deactivate_locked(member, actor=actor, reason=reason, request=request)
            for member in locked
        ]
    AuditEvent.objects.bulk_create(audits)
    return len(audits)


@transaction.atomic
def members_schedule_last_day(
    *, member_ids: Iterable[int], day: date, actor: Any, message: str = ""
) -> int:
    """Give active members a last working day and turn "deactivate on the last working day" on,
    so members_deactivate_due deactivates them when that day ends in their time zone. One
    transaction; each member that changes gets its audit row. Returns how many changed."""
    pks = sorted(set(member_ids))
    changed = 0
    for start in range(0, len(pks), BULK_BATCH):
        locked = (
            Member.objects.select_for_update()
            .filter(pk__in=pks[start : start + BULK_BATCH], status=Member.Status.ACTIVE)
            .order_by("pk")
        )
        for member in locked:
            fields = ["last_working_day", "deactivate_on_last_day"]
            before = {name: getattr(member, name) for name in fields}
            member.last_working_day = day
            member.deactivate_on_last_day = True
            changes = model_changes(member, before, fields)
            if not changes:
                continue
            member.save(update_fields=[*fields, "updated_at"])
            audit_record(
                action=AuditEvent.Action.CHANGED,
                actor=actor,
                obj=member,
                changes=changes,
                message=message,
            )
            changed += 1
    return changed


@transaction.atomic
def member_delete(*, member: Member, actor: Any, request: Any = None) -> None:
    """Hard-delete a member who has no devices, no live licenses and no history.

    Deactivation is the normal way out; deletion is for records created by mistake.
    """
    from assets.models import CustodyRecord
    from licenses.models import Entitlement

    holding = member.assets_in_custody.count()
    live = Entitlement.objects.live().filter(member=member).count()
    problems = []
    if holding:
        problems.append(f"{holding} asset{'s' if holding != 1 else ''}")
    if live:
        problems.append(f"{live} live license entitlement{'s' if live != 1 else ''}")
    if problems:
        raise ValidationError(
            f"{member} cannot be deleted: they still hold {' and '.join(problems)}. "
            "Check the assets in and revoke the entitlements first, or deactivate the member."
        )
    if (
        CustodyRecord.objects.filter(member=member).exists()
        or Entitlement.objects.filter(member=member).exists()
    ):
        raise ValidationError(
            f"{member} cannot be deleted: their custody and license history must be kept. "
            "Deactivate the member instead."
        )
    audit_record(action=AuditEvent.Action.DELETED, actor=actor, obj=member, request=request)
    member.reports.update(manager=None)
    status = Member.objects.filter(pk=member.pk).values_list("status", flat=True).first()
    member.delete()
    tally_status_change("members", status, None)


logger = logging.getLogger(__name__)

# The furthest-ahead zone (UTC+14): no calendar day ends anywhere before it ends there.
EARLIEST_OFFSET = timedelta(hours=14)
# A deactivation later than this after the day's end says how late in its reason (the schedule
# runs every 5 minutes, so anything later means no worker was running it).
LATE_AFTER = timedelta(minutes=10)


def _when(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if minutes or not parts:
        parts.append(f"{minutes} min")
    return " ".join(parts)


def last_day_reason(day: date, time_zone: str, late: timedelta) -> str:
    """ "Last working day (13 Dec 2026) ended at 23:59 Europe/Berlin", and how late if it is."""
    reason = f"Last working day ({_when(day)}) ended at 23:59 {time_zone}"
    if late > LATE_AFTER:
        reason += f"; deactivated {_duration(late)} late (no worker ran the schedule then)"
    return reason


def last_day_candidates(*, now: datetime):
    """(pk, last working day, own time zone) of the active members with the option whose day
    has ended at least in UTC+14 (so perhaps in theirs): read through member_last_day_due."""
    latest_day = (now.astimezone(UTC) + EARLIEST_OFFSET).date() - timedelta(days=1)
    return (
        Member.objects.filter(
            status=Member.Status.ACTIVE,
            deactivate_on_last_day=True,
            last_working_day__isnull=False,
            last_working_day__lte=latest_day,
        )
        .order_by("last_working_day", "id")
        .values_list("pk", "last_working_day", "time_zone")
    )


def members_deactivate_due(*, now: datetime) -> int:
    """Deactivate every active member whose last working day has ended in their time zone and
    who has "deactivate on the last working day" on. Returns how many were deactivated.

    Each goes through member_deactivate (row lock, one audit row, one automation event), actor
    None, in its own transaction, so one failure leaves the others done. Idempotent: a member
    deactivated by an earlier run (or by hand) is no longer a candidate, and the lock re-checks.
    Candidates come from the partial index member_last_day_due: the active members with the
    option whose day has ended at least in UTC+14, so a run reads the due members and those
    whose day ends within the next day, never the table. A run after downtime deactivates
    everyone who became due meanwhile, and each reason says how late."""
    from members.selectors import company_time_zone

    company = company_time_zone()
    due = []
    for pk, day, own_zone in last_day_candidates(now=now):
        time_zone = own_zone or company
        ends = day_end(day, time_zone)
        if ends <= now:
            due.append((pk, day, time_zone, now - ends))
    done = 0
    for pk, day, time_zone, late in due:
        try:
            with transaction.atomic():
                # Re-read under the lock: the day, the option or the status may have changed
                # since the candidates were read.
                locked = (
                    Member.objects.select_for_update()
                    .filter(
                        pk=pk,
                        status=Member.Status.ACTIVE,
                        deactivate_on_last_day=True,
                        last_working_day=day,
                    )
                    .first()
                )
                if locked is None or (locked.time_zone or company) != time_zone:
                    continue
                _, changed = member_deactivate(
                    member=locked, actor=None, reason=last_day_reason(day, time_zone, late)
                )
        except Exception:
            logger.exception("Could not deactivate member %s at the end of their last day", pk)
            continue
        done += changed
    return done
