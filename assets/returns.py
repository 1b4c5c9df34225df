"""Device returns: ask a member to hand devices back, remind them, escalate, close on check-in.

- `return_requests_open` (or `return_request_open` for one device) opens one ReturnRequest per
  device in the member's custody: the asset goes to "return requested" (custodian and custody
  record unchanged), and one email listing the devices goes to the member (their personal email
  when recorded, else the work one) and one to their manager.
- `returns_remind_due` (every 15 minutes, a django-q2 schedule made by migration
  0005_returns_reminder_schedule) sends a reminder every `reminder_every_days` days to the member
  and the manager; once `max_reminders` reminders went out, the next due date sends one
  escalation to the request's addresses and the users of its role, and nothing follows.
  After downtime a request that missed several due dates gets one reminder, and the next one
  `reminder_every_days` later: no burst.
- Checking the asset in (`assets.services.asset_check_in`) closes its request in the same
  transaction; `return_request_close` cancels one; reactivating the member cancels theirs.

Emails are an outbox (`ReturnMail`): a row per email and recipient, written in the transaction
that makes it due, with a unique key per (request, kind, number, recipient), and sent after the
commit (`returns_send_pending`). A run repeated, or a task retried, finds the rows already made
and sends nothing twice; a temporary SMTP failure is retried by the next sweep, a permanent one
is kept with its insight. This module imports nothing from automations/: an automation's action
kind calls it and passes its execution's id and label.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from assets.models import Asset, ReturnMail, ReturnRequest
from assetsonar import mail, placeholders
from assetsonar.audit import audit_record
from assetsonar.models import AuditEvent
from assetsonar.tallies import tally_status_change
from members.models import Member

# Due requests handled per sweep transaction; the rest wait for the next sweep (15 minutes).
REMIND_BATCH = 200
# Emails sent per call of returns_send_pending.
SEND_BATCH = 100
# A mail claimed for sending this long ago by a worker that never recorded the outcome (it died)
# is sent again: same key, same Message-ID.
STALE_CLAIM = timedelta(minutes=10)
# Temporary failures of one email before it is given up as failed.
MAX_MAIL_ATTEMPTS = 20
REMIND_SCHEDULE_NAME = "Device returns: reminders and escalations"
REMIND_SCHEDULE_FUNC = "assets.tasks.returns_remind_due_task"
REMIND_SCHEDULE_MINUTES = 15

# The default messages, by "<kind>.<recipient>": (subject, body), in the placeholder language.
# `{{ devices }}` lists the devices of the request(s) the email is about.
DEFAULT_MESSAGES: dict[str, tuple[str, str]] = {
    "notice.member": (
        "Please return your company devices",
        "Hello {{ member.first_name }},\n\n"
        "please return these devices to IT:\n\n{{ devices }}\n\n"
        "Contact IT to arrange the return. "
        "You will get a reminder until the devices are back.\n\nThank you,\nIT",
    ),
    "notice.manager": (
        "{{ member.full_name }}: devices to return",
        "Hello {{ member.manager.first_name }},\n\n"
        "{{ member.full_name }} has been asked to return these devices to IT:\n\n"
        "{{ devices }}\n\nPlease help make sure they come back.\n\n{{ member.url }}",
    ),
    "reminder.member": (
        "Reminder: please return your company devices",
        "Hello {{ member.first_name }},\n\n"
        "these devices have not been returned to IT yet:\n\n{{ devices }}\n\n"
        "Please return them as soon as you can.\n\nThank you,\nIT",
    ),
    "reminder.manager": (
        "Reminder: {{ member.full_name }} has not returned their devices yet",
        "Hello {{ member.manager.first_name }},\n\n"
        "{{ member.full_name }} has not returned these devices yet:\n\n{{ devices }}\n\n"
        "{{ member.url }}",
    ),
    "escalation.escalation": (
        "Devices not returned: {{ member.full_name }}",
        "{{ member.full_name }} ({{ member.email }}, {{ member.department }}) has not returned "
        "these devices after every reminder:\n\n{{ devices }}\n\n"
        "Manager: {{ member.manager.full_name }}\n{{ member.url }}",
    ),
}


@dataclass(frozen=True)
class Opened:
    """What `return_requests_open` did for one asset: `request` is the open request (new when
    `created`), or None with `note` saying why no request was opened."""

    asset_id: int
    request: ReturnRequest | None
    created: bool
    note: str = ""


def clock() -> datetime:
    """The time the services go by when given none: the tests move it (no sleeping)."""
    return timezone.now()


def _actor_name(actor: Any) -> str:
    if getattr(actor, "is_authenticated", False):
        return actor.get_username()[:150]
    return (getattr(actor, "audit_name", "") or "system")[:150]


def _check_settings(
    *,
    reminder_every_days: int,
    max_reminders: int,
    escalate_to: Sequence[str],
    escalate_to_role: str,
    messages: Mapping[str, tuple[str, str]] | None,
) -> list[str]:
    """The escalation addresses, cleaned; ValidationError naming each problem."""
    errors: dict[str, list[str]] = defaultdict(list)
    if not isinstance(reminder_every_days, int) or not 1 <= reminder_every_days <= 365:
        errors["reminder_every_days"].append("Remind every 1 to 365 days.")
    if not isinstance(max_reminders, int) or not 0 <= max_reminders <= 50:
        errors["max_reminders"].append("Send 0 to 50 reminders before escalating.")
    addresses = []
    for raw in escalate_to:
        address = (raw or "").strip()
        if not address:
            continue
        try:
            validate_email(address)
        except ValidationError:
            errors["escalate_to"].append(f"“{address[:254]}” is not a valid email address.")
        else:
            addresses.append(address)
    if escalate_to_role and not Group.objects.filter(name=escalate_to_role).exists():
        errors["escalate_to_role"].append(f"There is no role named “{escalate_to_role}”.")
    for key, (subject, body) in (messages or {}).items():
        if key not in DEFAULT_MESSAGES:
            errors["messages"].append(
                f"“{key}” is not a return email; one of {', '.join(DEFAULT_MESSAGES)}."
            )
            continue
        for part, template in (("subject", subject), ("body", body)):
            errors["messages"] += [f"{key} {part}: {e}" for e in placeholders.validate(template)]
    errors = {field: problems for field, problems in errors.items() if problems}
    if errors:
        raise ValidationError(errors)
    return addresses


def _asset_key(source_key: str, asset_pk: int) -> str:
    key = f"{source_key}:asset:{asset_pk}"
    if len(key) > 200:  # a long source key: its digest keeps the key unique and short
        key = f"sha256:{hashlib.sha256(source_key.encode()).hexdigest()}:asset:{asset_pk}"
    return key


def return_refused(
    asset: Asset, *, member_id: int, member_name: str, open_request: ReturnRequest | None
) -> str:
    """Why no return request is opened for `asset` held by the member (its open request, or it
    left their custody); "" when one is. Shared by `return_requests_open` and the deactivation
    preview (automations/actions/device_return.py)."""
    if open_request is not None:
        return f"Already requested {open_request.requested_at:%d %b %Y}."
    if asset.custodian_id != member_id or not asset.is_held:
        return f"{asset.asset_tag} is no longer in {member_name}'s custody."
    return ""


def return_requests_open(
    *,
    member: Member,
    assets: Iterable[Asset | int],
    actor: Any,
    reminder_every_days: int = 7,
    max_reminders: int = 3,
    escalate_to: Sequence[str] = (),
    escalate_to_role: str = "",
    source_label: str = "",
    source_key: str = "",
    source_execution_id: int | None = None,
    messages: Mapping[str, tuple[str, str]] | None = None,
    now: datetime | None = None,
    send: bool = True,
    request: Any = None,
) -> list[Opened]:
    """Open a return request for each of `assets` held by `member`, and tell the member and
    their manager in one email each listing the devices newly asked for.

    Idempotent: with the same `source_key` (an automation's execution, action and member) a
    second call opens nothing and sends nothing; an asset that already has an open request keeps
    it. An asset the member no longer holds is skipped (`Opened.note` says so). The emails are
    sent after the commit when `send` (the sweep sends what is left). Atomic and audited."""
    addresses = _check_settings(
        reminder_every_days=reminder_every_days,
        max_reminders=max_reminders,
        escalate_to=escalate_to,
        escalate_to_role=escalate_to_role,
        messages=messages,
    )
    now = now or clock()
    pks = sorted({a.pk if isinstance(a, Asset) else a for a in assets})
    results: list[Opened] = []
    mail_ids: list[int] = []
    with transaction.atomic():
        locked = {
            a.pk: a for a in Asset.objects.select_for_update().filter(pk__in=pks).order_by("pk")
        }
        keys = {pk: _asset_key(source_key, pk) if source_key else "" for pk in pks}
        known = {
            r.source_key: r
            for r in ReturnRequest.objects.filter(source_key__in=[k for k in keys.values() if k])
        }
        open_by_asset = {
            r.asset_id: r for r in ReturnRequest.objects.filter(asset_id__in=pks, closed_at=None)
        }
        created: list[ReturnRequest] = []
        for pk in pks:
            asset = locked.get(pk)
            if keys[pk] in known:
                results.append(Opened(pk, known[keys[pk]], False, "Already requested by this run."))
                continue
            if asset is None:
                results.append(Opened(pk, None, False, "No such asset."))
                continue
            note = return_refused(
                asset,
                member_id=member.pk,
                member_name=str(member),
                open_request=open_by_asset.get(asset.pk),
            )
            if note:
                results.append(Opened(pk, open_by_asset.get(asset.pk), False, note))
                continue
            req = ReturnRequest.objects.create(
                asset=asset,
                member=member,
                requested_at=now,
                requested_by=_actor_name(actor),
                source_label=source_label[:300],
                source_key=keys[pk],
                source_execution_id=source_execution_id,
                reminder_every_days=reminder_every_days,
                max_reminders=max_reminders,
                escalate_to_emails=addresses,
                escalate_to_role=escalate_to_role,
                messages={k: list(v) for k, v in (messages or {}).items()},
                next_reminder_at=now + timedelta(days=reminder_every_days),
            )
            before = asset.get_status_display()
            tally_status_change("assets", asset.status, Asset.Status.RETURN_REQUESTED)
            asset.status = Asset.Status.RETURN_REQUESTED
            asset.save(update_fields=["status", "updated_at"])
            audit_record(
                action=AuditEvent.Action.CHANGED,
                actor=actor,
                obj=asset,
                changes={"status": [before, asset.get_status_display()]},
                message=(
                    f"Return requested from {member}"
                    + (f" by {source_label}" if source_label else "")
                )[:500],
                request=request,
            )
            created.append(req)
            results.append(Opened(pk, req, True))
        if created:
            member = Member.objects.select_related("manager").get(pk=member.pk)
            mail_ids = _queue_mails(
                requests=created,
                member=member,
                kind=ReturnMail.Kind.NOTICE,
                number=0,
                recipients=_member_and_manager(member),
                now=now,
            )
        if mail_ids and send:
            transaction.on_commit(lambda: returns_send_pending(ids=mail_ids))
    return results


def return_request_open(
    *,
    asset: Asset | int,
    member: Member,
    actor: Any,
    reminder_every_days: int = 7,
    max_reminders: int = 3,
    escalate_to: Sequence[str] = (),
    escalate_to_role: str = "",
    source_label: str = "",
    source_key: str = "",
    source_execution_id: int | None = None,
    messages: Mapping[str, tuple[str, str]] | None = None,
    now: datetime | None = None,
) -> ReturnRequest:
    """`return_requests_open` for one device: its open request (an existing one is returned as
    it is). ValidationError when the member does not hold the asset."""
    (opened,) = return_requests_open(
        member=member,
        assets=[asset],
        actor=actor,
        reminder_every_days=reminder_every_days,
        max_reminders=max_reminders,
        escalate_to=escalate_to,
        escalate_to_role=escalate_to_role,
        source_label=source_label,
        source_key=source_key,
        source_execution_id=source_execution_id,
        messages=messages,
        now=now,
    )
    if opened.request is None:
        raise ValidationError(opened.note)
    return opened.request


def _close_locked(
    req: ReturnRequest, *, asset: Asset, reason: str, actor: Any, now: datetime, request: Any
) -> None:
    """Close `req` (its row and its asset's locked by the caller). A return that did not end in
    a check-in puts the asset back to plain "in custody"."""
    req.closed_at = now
    req.closed_reason = reason
    req.closed_by = _actor_name(actor)
    req.next_reminder_at = None
    req.save(update_fields=["closed_at", "closed_reason", "closed_by", "next_reminder_at"])
    if reason != ReturnRequest.ClosedReason.CHECKED_IN and (
        asset.status == Asset.Status.RETURN_REQUESTED
    ):
        tally_status_change("assets", asset.status, Asset.Status.IN_CUSTODY)
        asset.status = Asset.Status.IN_CUSTODY
        asset.save(update_fields=["status", "updated_at"])
    audit_record(
        action=AuditEvent.Action.CHANGED,
        actor=actor,
        obj=asset,
        changes={"return_request": ["open", req.get_closed_reason_display()]},
        message=f"Return request of {req.requested_at:%d %b %Y} closed: "
        f"{req.get_closed_reason_display().lower()}.",
        request=request,
    )


@transaction.atomic
def return_request_close(
    *, request: ReturnRequest | int, reason: str, actor: Any, http_request: Any = None
) -> ReturnRequest:
    """Close an open return request (`reason`: a ReturnRequest.ClosedReason). Closing one that is
    closed already changes nothing. Atomic and audited."""
    if reason not in ReturnRequest.ClosedReason.values:
        raise ValidationError({"reason": "Choose why the return request is closed."})
    pk = request.pk if isinstance(request, ReturnRequest) else request
    asset_id = ReturnRequest.objects.values_list("asset_id", flat=True).get(pk=pk)
    asset = Asset.objects.select_for_update().get(pk=asset_id)  # the asset first, as check-in
    req = ReturnRequest.objects.select_for_update().get(pk=pk)
    if req.closed_at is None:
        _close_locked(
            req, asset=asset, reason=reason, actor=actor, now=clock(), request=http_request
        )
    return req


def return_request_close_for_checked_in(*, asset: Asset, actor: Any, request: Any = None) -> None:
    """The check-in's part (assets.services.asset_check_in, inside its transaction, with the
    asset row locked): close the asset's open request as checked in."""
    req = ReturnRequest.objects.select_for_update().filter(asset=asset, closed_at=None).first()
    if req is not None:
        _close_locked(
            req,
            asset=asset,
            reason=ReturnRequest.ClosedReason.CHECKED_IN,
            actor=actor,
            now=clock(),
            request=request,
        )


@transaction.atomic
def return_requests_cancel_for_member(
    *, member: Member | int, actor: Any, request: Any = None
) -> int:
    """Close the member's open return requests as "member reactivated" (called by
    members.services.member_reactivate); their assets go back to "in custody". Returns how many."""
    pk = member.pk if isinstance(member, Member) else member
    asset_ids = list(
        ReturnRequest.objects.filter(member_id=pk, closed_at=None)
        .order_by("asset_id")
        .values_list("asset_id", flat=True)
    )
    if not asset_ids:
        return 0
    assets = {
        a.pk: a for a in Asset.objects.select_for_update().filter(pk__in=asset_ids).order_by("pk")
    }
    now = clock()
    count = 0
    for req in ReturnRequest.objects.select_for_update().filter(
        asset_id__in=asset_ids, member_id=pk, closed_at=None
    ):
        _close_locked(
            req,
            asset=assets[req.asset_id],
            reason=ReturnRequest.ClosedReason.MEMBER_REACTIVATED,
            actor=actor,
            now=now,
            request=request,
        )
        count += 1
    return count


# --- Reminders and escalation ----------------------------------------------------------------


def returns_remind_due(*, now: datetime | None = None, batch: int = REMIND_BATCH) -> dict:
    """Do what is due at `now`: a reminder for each open request whose `next_reminder_at` has
    passed and that has had fewer than `max_reminders`, else its escalation. The due rows are
    locked with SKIP LOCKED (two sweeps share the work, never do it twice), at most `batch`;
    the emails go out after the commit, with any left from earlier sweeps. One email per member,
    kind and number lists all their devices due together. Returns counts for the task's log."""
    now = now or clock()
    counts = {"reminders": 0, "escalations": 0, "mails": 0}
    with transaction.atomic():
        due = list(
            ReturnRequest.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(closed_at=None, next_reminder_at__lte=now)
            .order_by("next_reminder_at", "id")[:batch]
        )
        groups: dict[tuple[int, str, int], list[ReturnRequest]] = defaultdict(list)
        for req in due:
            if req.reminders_sent < req.max_reminders:
                req.reminders_sent += 1
                req.last_reminded_at = now
                # From now, not from the missed due date: after downtime one reminder, no burst.
                req.next_reminder_at = now + timedelta(days=req.reminder_every_days)
                groups[(req.member_id, ReturnMail.Kind.REMINDER, req.reminders_sent)].append(req)
                counts["reminders"] += 1
            else:
                req.escalated_at = now
                req.next_reminder_at = None
                groups[(req.member_id, ReturnMail.Kind.ESCALATION, req.reminders_sent)].append(req)
                counts["escalations"] += 1
            req.save(
                update_fields=[
                    "reminders_sent",
                    "last_reminded_at",
                    "next_reminder_at",
                    "escalated_at",
                ]
            )
        members = Member.objects.select_related("manager").in_bulk({k[0] for k in groups})
        for (member_id, kind, number), requests in groups.items():
            member = members[member_id]
            if kind == ReturnMail.Kind.REMINDER:
                recipients = _member_and_manager(member)
            else:
                recipients = _escalation_recipients(requests)
            counts["mails"] += len(
                _queue_mails(
                    requests=requests,
                    member=member,
                    kind=kind,
                    number=number,
                    recipients=recipients,
                    now=now,
                )
            )
    returns_send_pending(now=now)
    return counts


def _member_and_manager(member: Member) -> list[tuple[str, str]]:
    """(recipient kind, address): the member at their personal email when recorded (a leaver's
    work mailbox may be closed), else the work one, and their manager if they have one."""
    out = [(ReturnMail.Recipient.MEMBER, member.personal_email or member.email)]
    if member.manager_id and member.manager.email:
        out.append((ReturnMail.Recipient.MANAGER, member.manager.email))
    return out


def _escalation_recipients(requests: list[ReturnRequest]) -> list[tuple[str, str]]:
    """The requests' escalation addresses and the active users (with an email) of their roles,
    each address once whatever its letter case."""
    addresses: dict[str, str] = {}
    roles = {r.escalate_to_role for r in requests if r.escalate_to_role}
    for req in requests:
        for address in req.escalate_to_emails:
            addresses.setdefault(address.lower(), address)
    if roles:
        users = Group.objects.filter(name__in=roles).values_list("user__email", "user__is_active")
        for email, active in users:
            if email and active:
                addresses.setdefault(email.lower(), email)
    return [(ReturnMail.Recipient.ESCALATION, a) for _, a in sorted(addresses.items())]


def _queue_mails(
    *,
    requests: list[ReturnRequest],
    member: Member,
    kind: str,
    number: int,
    recipients: list[tuple[str, str]],
    now: datetime,
) -> list[int]:
    """Write the outbox rows of one email to each recipient about `requests` (one member's),
    rendered now over the member and the requests' devices. Returns the new rows' ids; a key
    already present (the same email made before) is skipped."""
    if not recipients:
        return []
    requests = sorted(requests, key=lambda r: r.pk)
    lead = requests[0]
    devices = list(
        Asset.objects.filter(pk__in=[r.asset_id for r in requests]).order_by("asset_tag", "id")
    )
    context = placeholders.PlaceholderContext(
        member=member, devices=devices, licenses=[], portal_url=settings.PORTAL_URL
    )
    rows = []
    for recipient, address in recipients:
        name = f"{kind}.{recipient}"
        subject, body = (lead.messages or {}).get(name) or DEFAULT_MESSAGES[name]
        rendered = placeholders.render_message(subject=subject, body=body, context=context)
        digest = hashlib.sha256(address.lower().encode()).hexdigest()[:12]
        rows.append(
            ReturnMail(
                key=f"return:{lead.pk}:{kind}:{number}:{recipient}:{digest}",
                request=lead,
                request_ids=[r.pk for r in requests],
                member=member,
                kind=kind,
                number=number,
                recipient=recipient,
                to=address[:254],
                subject=rendered.subject[:300],
                text=rendered.text,
                html=rendered.html,
                created_at=now,
            )
        )
    present = set(
        ReturnMail.objects.filter(key__in=[r.key for r in rows]).values_list("key", flat=True)
    )
    new = [r for r in rows if r.key not in present]
    for row in new:
        row.save(force_insert=True)
    return [r.pk for r in new]


# --- Sending ---------------------------------------------------------------------------------


def returns_send_pending(
    *, now: datetime | None = None, ids: Sequence[int] | None = None, limit: int = SEND_BATCH
) -> list[ReturnMail]:
    """Send the return emails not sent yet (only `ids` when given), each claimed first with a
    conditional UPDATE so two workers never both send one; a claim older than STALE_CLAIM (a
    worker that died mid-send) is taken over, with the same key and Message-ID. An email whose
    devices all came back meanwhile is not sent. Returns the rows handled."""
    now = now or clock()
    stale = now - STALE_CLAIM
    claimable = Q(status=ReturnMail.Status.PENDING) | Q(
        status=ReturnMail.Status.SENDING, claimed_at__lt=stale
    )
    candidates = ReturnMail.objects.filter(claimable)
    if ids is not None:
        candidates = candidates.filter(pk__in=ids)
    handled = []
    for pk in list(candidates.order_by("id").values_list("pk", flat=True)[:limit]):
        claimed = (
            ReturnMail.objects.filter(claimable, pk=pk).update(
                status=ReturnMail.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1
            )
            == 1
        )
        if not claimed:
            continue
        row = ReturnMail.objects.get(pk=pk)
        still_open = ReturnRequest.objects.filter(pk__in=row.request_ids, closed_at=None).exists()
        if not still_open:
            row.status = ReturnMail.Status.CANCELLED
            row.insight = "Not sent: the return was closed (checked in or cancelled) before."
        else:
            result = mail.send_message(
                to=row.to, subject=row.subject, text=row.text, html=row.html, key=row.key
            )
            row.insight = result.insight[:500]
            if result.sent:
                row.status, row.sent_at = ReturnMail.Status.SENT, now
            elif result.retry and row.attempts < MAX_MAIL_ATTEMPTS:
                row.status = ReturnMail.Status.PENDING
            else:
                row.status = ReturnMail.Status.FAILED
        row.save(update_fields=["status", "insight", "sent_at"])
        handled.append(row)
    return handled


def ensure_remind_schedule(schedule_model=None) -> None:
    """Create the every-15-minutes reminder schedule unless it exists (migration 0005 calls it
    with the historical model). The cluster's catch-up is off: after downtime it runs once."""
    if schedule_model is None:
        from django_q.models import Schedule as schedule_model
    schedule_model.objects.get_or_create(
        name=REMIND_SCHEDULE_NAME,
        defaults={
            "func": REMIND_SCHEDULE_FUNC,
            "schedule_type": "I",  # Schedule.MINUTES
            "minutes": REMIND_SCHEDULE_MINUTES,
            "repeats": -1,
            "next_run": timezone.now(),
        },
    )
