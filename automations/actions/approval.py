"""The "Require approval" action kind: a step that holds the actions after it, in this execution,
until a person approves. Settings (`config`): role (a Group name, "" for none), users (usernames),
expire_days (1 to 30, default 3), note (shown to the approvers).

How it runs, on the engine's own held-log mechanism (engine/runner.py, `_prepare`): the kind is
a gate (`holds_later`), like an action set to "stop the remaining actions if this one fails".
Its prepare creates the `Approval` (once per execution and action) and the step's own log,
pending ("Waiting for approval …", target type "approval"); the runner then holds the actions
after it as pending held logs. The approvers are mailed after the transaction commits.

- Approved (`approval_decide`): the step's log succeeds and `executions_finish` releases the
  held logs as for any gate that finished: they are dropped and the execution is run again (a
  task), which prepares and sends them (a device lock goes out then).
- Rejected, expired (`approvals_expire_due`, every 15 minutes) or cancelled (the member was
  reactivated, `approvals_cancel_for_member`): the step's log is skipped and the held logs are
  skipped saying who rejected, when and why (or that it expired or was cancelled).

Approving when a held action locks devices (`Approval.needs_mdm`) needs the MDM feature, the
MDM permission and a one-time password, as saving such an automation does (the view checks the
code with `automations.otp.verify`, the same throttle; this service refuses without it).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from assetsonar.audit import audit_record
from assetsonar.models import AuditEvent
from automations.actions.base import REGISTRY, ActionKind, Target, register
from automations.engine.common import log_claim_many, log_key
from automations.models import Action, ActionLog, Approval

logger = logging.getLogger(__name__)

TARGET_TYPE = "approval"
DEFAULT_EXPIRE_DAYS = 3
MAX_EXPIRE_DAYS = 30
MAX_APPROVERS = 50
EXPIRY_SCHEDULE_NAME = "Expire approval requests"

WAITING_INSIGHT = "Waiting for approval from {names} until {expires}."
NO_APPROVER_INSIGHT = (
    "No one could be asked to approve: {why} The actions after this step were not run."
)
APPROVED_INSIGHT = "Approved by {name} on {when}{comment}."
REJECTED_INSIGHT = "Rejected by {name} on {when}{comment}."
REJECTED_HELD = "Not run: rejected by {name} on {when}{comment}"
EXPIRED_INSIGHT = "Expired on {when}: no one decided within {days}."
EXPIRED_HELD = "Not run: the approval request expired on {when} without a decision."
CANCELLED_INSIGHT = "Cancelled on {when}: the member was reactivated before a decision."
CANCELLED_HELD = (
    "Not run: the member was reactivated on {when}, which cancelled the approval request."
)


def _when(moment: datetime) -> str:
    return f"{timezone.localtime(moment):%-d %b %H:%M}"


def _days(n: int) -> str:
    return f"{n} day{'s' if n != 1 else ''}"


def _person(user: Any) -> str:
    return (user.get_full_name() or user.get_username())[:150]


def _users(usernames: list[str]):
    return get_user_model().objects.filter(username__in=usernames, is_active=True)


def approvers_for(config: dict[str, Any]) -> list[Any]:
    """The active users who may decide: the role's users and the named users (two queries)."""
    return approvers_many([config])[0]


def approvers_many(configs: list[dict[str, Any]]) -> list[list[Any]]:
    """`approvers_for` of each of `configs`, in two queries for all of them: the target
    selection shared by the engine (`approval_request`) and the preview (`approval_plan`)."""
    roles = {c["role"] for c in configs if c.get("role")}
    names = {name for c in configs for name in c.get("users") or []}
    by_role: dict[str, list[Any]] = {}
    if roles:
        for user in (
            get_user_model()
            .objects.filter(groups__name__in=roles, is_active=True)
            .annotate(role=F("groups__name"))
            .order_by("pk")
        ):
            by_role.setdefault(user.role, []).append(user)
    named = {u.username: u for u in _users(sorted(names)).order_by("pk")} if names else {}
    out = []
    for config in configs:
        users: dict[int, Any] = {}
        for user in by_role.get(config.get("role") or "", []):
            users[user.pk] = user
        for user in sorted(
            (named[n] for n in config.get("users") or [] if n in named), key=lambda u: u.pk
        ):
            users[user.pk] = user
        out.append(list(users.values())[:MAX_APPROVERS])
    return out


def _no_approver_insight(config: dict[str, Any]) -> str:
    why = (
        f"the {config['role']} role has no active users"
        if config["role"]
        else "no named approver is an active user"
    )
    if config["role"] and config["users"]:
        why += " and no named approver is an active user"
    return NO_APPROVER_INSIGHT.format(why=why[0].upper() + why[1:] + ".")[:500]


def approval_target(approvers: list[Any], config: dict[str, Any]) -> Target:
    """The step's one target: who decides (the log's label), or why no one can."""
    return Target(
        TARGET_TYPE,
        (", ".join(_person(u) for u in approvers) or "No approver")[:300],
        skip_reason="" if approvers else _no_approver_insight(config),
        via=f"expires after {_days(config['expire_days'])}",
    )


def approval_plan(items) -> list[list[Target]]:
    """The preview of `approval_request`: who would be asked to approve (two queries)."""
    configs = [_normal(item.action.config) for item in items]
    return [
        [approval_target(approvers, config)]
        for approvers, config in zip(approvers_many(configs), configs, strict=True)
    ]


def _approvers_text(config: dict[str, Any]) -> str:
    parts = []
    if config.get("role"):
        parts.append(f"the {config['role']} role")
    if config.get("users"):
        parts.append(", ".join(config["users"]))
    return " and ".join(parts)


# --- Settings: the builder card -----------------------------------------------------------------


class ApprovalForm(forms.Form):
    role = forms.ModelChoiceField(
        queryset=Group.objects.order_by("name"),
        to_field_name="name",
        required=False,
        empty_label="No role",
        label="Approvers with the role",
        help_text="Every active user with this role may approve.",
    )
    users = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        to_field_name="username",
        required=False,
        label="Named approvers",
        help_text="These users may approve too.",
    )
    expire_days = forms.IntegerField(
        min_value=1,
        max_value=MAX_EXPIRE_DAYS,
        initial=DEFAULT_EXPIRE_DAYS,
        label="Expire after (days)",
        help_text="Not decided by then: the actions after this step are not run.",
    )
    note = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Note to the approvers",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not cleaned.get("role") and not cleaned.get("users"):
            raise ValidationError("Choose who approves: a role, named users, or both.")
        return cleaned


def _clean(config: dict[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    role = config.get("role") or ""
    users = list(config.get("users") or [])
    if not role and not users:
        errors["__all__"] = ["Choose who approves: a role, named users, or both."]
    if role and not Group.objects.filter(name=role).exists():
        errors["role"] = [f"There is no role “{role}”."]
    if users:
        found = set(_users(users).values_list("username", flat=True))
        unknown = [name for name in users if name not in found]
        if unknown:
            errors["users"] = [
                "Not an active user: " + ", ".join(f"“{name}”" for name in unknown) + "."
            ]
        elif len(users) > MAX_APPROVERS:
            errors["users"] = [f"At most {MAX_APPROVERS} named approvers."]
    days = config.get("expire_days")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_EXPIRE_DAYS:
        errors["expire_days"] = [
            f"Expire after a whole number of days from 1 to {MAX_EXPIRE_DAYS}."
        ]
    if len(config.get("note") or "") > 500:
        errors["note"] = ["The note is at most 500 characters."]
    return errors


def _normal(config: dict[str, Any]) -> dict[str, Any]:
    days = config.get("expire_days", DEFAULT_EXPIRE_DAYS)
    try:
        days = int(days)
    except (TypeError, ValueError):
        days = DEFAULT_EXPIRE_DAYS
    return {
        "role": str(config.get("role") or ""),
        "users": [str(u) for u in (config.get("users") or [])],
        "expire_days": days,
        "note": str(config.get("note") or ""),
    }


@register
class ApprovalKind(ActionKind):
    key = "approval"
    label = "Require approval"
    description = "Hold the actions after this one until an approver says yes."
    log_label = "Require approval"
    chip = "Approval"
    icon = "icon-approval"
    target_noun = ("approval", "approvals")
    form_class = ApprovalForm
    builder_template = "automations/actions/approval/builder.html"
    detail_template = "automations/actions/approval/detail.html"
    log_template = "automations/actions/approval/log.html"
    target_types = {TARGET_TYPE: "Approval"}
    # The runner holds the actions after it until its log settles (engine/runner.py).
    holds_later = True
    insights = {
        "waiting": WAITING_INSIGHT,
        "no_approver": NO_APPROVER_INSIGHT,
        "approved": APPROVED_INSIGHT,
        "rejected": REJECTED_INSIGHT,
        "rejected_held": REJECTED_HELD,
        "expired": EXPIRED_INSIGHT,
        "expired_held": EXPIRED_HELD,
        "cancelled": CANCELLED_INSIGHT,
        "cancelled_held": CANCELLED_HELD,
    }

    def default_config(self):
        return {"role": "", "users": [], "expire_days": DEFAULT_EXPIRE_DAYS, "note": ""}

    def clean_config(self, config, *, previous):
        return _clean(config)

    def form_initial(self, config):
        return _normal(config)

    def config_from_form(self, form):
        data = form.cleaned_data
        return {
            "role": data["role"].name if data.get("role") else "",
            "users": sorted(u.username for u in data.get("users") or []),
            "expire_days": data["expire_days"],
            "note": data.get("note") or "",
        }

    def lenient_config(self, form):
        raw = super().lenient_config(form)
        return _normal(raw)

    def read(self, action):
        return _normal(action.config)

    def write(self, action, config):
        action.config = _normal(config)
        return None

    def summary(self, config):
        who = _approvers_text(_normal(config))
        return f"wait for approval by {who}" if who else "wait for approval"

    def snapshot(self, config):
        config = _normal(config)
        lines = {
            "Approvers": _approvers_text(config) or "none",
            "Expires after": _days(config["expire_days"]),
        }
        if config["note"]:
            lines["Note to the approvers"] = config["note"]
        return lines

    def admin_text(self, action):
        config = _normal(action.config)
        return (
            f"Require approval by {_approvers_text(config) or 'nobody'} "
            f"(expires after {_days(config['expire_days'])})"
        )

    def plan(self, *, items, context):
        return approval_plan(items)

    def prepare(self, *, items, context):
        for item in items:
            approval_request(
                execution=item.execution, action=item.action, event=item.event, now=context.now
            )
        return []


# --- Running --------------------------------------------------------------------------------------


def _held_lock(action: Action) -> bool:
    """Does an action after this one (by position) lock devices?"""
    kinds = Action.objects.filter(
        Q(position__gt=action.position) | Q(position=action.position, pk__gt=action.pk),
        automation_id=action.automation_id,
    ).values_list("kind", flat=True)
    return any(getattr(REGISTRY.get(kind), "locks_devices", False) for kind in kinds)


def approval_request(*, execution, action, event, now: datetime) -> Approval | None:
    """In the run's first transaction: the step's Approval and its pending log, once per
    execution and action (a run again after the decision finds both and does nothing). The
    approvers are mailed once the transaction commits."""
    existing = Approval.objects.filter(execution=execution, action=action).first()
    if existing is not None:
        return existing
    config = _normal(action.config)
    approvers = approvers_for(config)
    target = approval_target(approvers, config)
    member_name = (event.member_snapshot.get("full_name", "") or str(event.member_id))[:300]
    spec = {
        "key": log_key(event.pk, execution.automation_id, action.pk, target.key),
        "execution": execution,
        "action": action,
        "action_kind": action.kind,
        "target_type": TARGET_TYPE,
        "target_label": target.label,
        "status": ActionLog.Status.PENDING,
    }
    (log,) = log_claim_many([spec])
    if log.status != ActionLog.Status.PENDING or log.insight:
        return None  # claimed and settled before
    if target.skip_reason:
        log.status, log.finished_at = ActionLog.Status.FAILED, now
        log.insight = target.skip_reason
        log.save(update_fields=["status", "finished_at", "insight"])
        return None
    approval = Approval.objects.create(
        execution=execution,
        action=action,
        log=log,
        member_id=event.member_id,
        note=config["note"],
        requested_at=now,
        expires_at=now + timedelta(days=config["expire_days"]),
        needs_mdm=_held_lock(action),
    )
    approval.approvers.set(approvers)
    log.insight = WAITING_INSIGHT.format(
        names=", ".join(_person(u) for u in approvers), expires=_when(approval.expires_at)
    )[:500]
    log.detail = {**log.detail, "approval_id": approval.pk, "member": member_name}
    log.save(update_fields=["insight", "detail"])
    transaction.on_commit(lambda pk=approval.pk: _notify_later(pk), robust=True)
    return approval


def _notify_later(approval_id: int) -> None:
    from django_q.tasks import async_task

    async_task(
        "automations.actions.approval.approval_notify",
        approval_id,
        group="automations.approvals",
    )


def approval_url(approval: Approval) -> str:
    return settings.PORTAL_URL + reverse("automations:approval_detail", args=[approval.pk])


def approval_notify(approval_id: int) -> int:
    """Mail each approver (a django-q2 task): one message per approver, keyed by approval and
    approver, and not sent again to an approver it reached before. Returns how many it sent."""
    from assetsonar.mail import send_message

    approval = (
        Approval.objects.select_related("execution", "member", "action")
        .filter(pk=approval_id)
        .first()
    )
    if approval is None or not approval.is_pending:
        return 0
    held = held_actions(approval)
    url = approval_url(approval)
    sent = 0
    for user in approval.approvers.order_by("pk"):
        if str(user.pk) in approval.notified or not user.email:
            continue
        context = {"approval": approval, "approver": user, "url": url, "held": held}
        result = send_message(
            to=user.email,
            subject=f"Approval needed: {approval.execution.automation_name} for "
            f"{approval.member.full_name}",
            text=render_to_string("automations/actions/approval/email.txt", context),
            html=render_to_string("automations/actions/approval/email.html", context),
            key=f"approval-{approval.pk}-user-{user.pk}",
        )
        if result.sent:
            with transaction.atomic():
                locked = Approval.objects.select_for_update().get(pk=approval.pk)
                locked.notified = {**locked.notified, str(user.pk): result.message_id}
                locked.save(update_fields=["notified"])
                approval.notified = locked.notified
            sent += 1
        else:
            logger.warning("Approval %s: mail to user %s: %s", approval.pk, user.pk, result.insight)
    return sent


def held_actions(approval: Approval) -> list[dict[str, Any]]:
    """The actions this step holds (after it, by position), each with its targets for the
    member now: what the approval page and the mail list (two queries and the targets')."""
    from automations.engine.common import Prep, RunContext

    if approval.action is None:
        return []
    action = approval.action
    execution = approval.execution
    event = execution.event
    rows = []
    context = RunContext()
    for later in Action.objects.filter(
        Q(position__gt=action.position) | Q(position=action.position, pk__gt=action.pk),
        automation_id=action.automation_id,
    ).order_by("position", "pk"):
        kind = REGISTRY.get(later.kind)
        if kind is None:
            continue
        # Their targets as the engine selects them once approved (the event's snapshot).
        (plan,) = kind.plan(items=[Prep(execution, later, event)], context=context)
        rows.append(
            {
                "label": kind.log_label,
                "summary": kind.summary(kind.read(later)),
                "targets": [t.label for t in plan if t.logged],
                "locks_devices": kind.locks_devices,
            }
        )
    return rows


class ApprovalRefused(ValidationError):
    """The decision cannot be taken (already decided, expired, OTP missing)."""


def may_decide(approval: Approval, user: Any) -> bool:
    return approval.approvers.filter(pk=user.pk).exists()


def mdm_problems(user: Any) -> list[str]:
    """Why `user` may not approve a step that holds a device lock ([] when they may)."""
    from automations.selectors import mdm_availability

    return list(mdm_availability(user).problems)


def approval_decide(
    *,
    approval: Approval,
    approve: bool,
    comment: str,
    actor: Any,
    otp_verified: bool = False,
    request: Any = None,
) -> Approval:
    """Approve or reject a pending approval as `actor` (one of its approvers). Approving one
    that holds a device lock needs the MDM feature and permission and `otp_verified` (the code
    checked in this request). Raises PermissionDenied (not an approver, no MDM permission) or
    ApprovalRefused (decided already, expired, no OTP); nothing is saved then."""
    from automations.engine.runner import executions_finish

    comment = (comment or "").strip()
    if len(comment) > 1000:
        raise ApprovalRefused("The comment is at most 1,000 characters.")
    with transaction.atomic():
        locked = (
            Approval.objects.select_for_update(of=("self",))
            .select_related("execution")
            .get(pk=approval.pk)
        )
        if not may_decide(locked, actor):
            raise PermissionDenied("Only the approvers of this request may decide it.")
        if not locked.is_pending:
            by = f" by {locked.decided_by_name}" if locked.decided_by_name else ""
            raise ApprovalRefused(
                f"This request is already {locked.get_status_display().lower()}{by}: "
                "it cannot be decided again."
            )
        now = timezone.now()
        if locked.expires_at <= now:
            raise ApprovalRefused(
                f"This request expired on {_when(locked.expires_at)}: it can no longer be decided."
            )
        if approve and locked.needs_mdm:
            problems = mdm_problems(actor)
            if problems:
                raise PermissionDenied(
                    "Approving this step lets a device lock go out, which needs the MDM feature "
                    "and permission. " + " ".join(problems)
                )
            if not otp_verified:
                raise ApprovalRefused(
                    "Approving a device lock needs a one-time password from your authenticator app."
                )
        locked.status = Approval.Status.APPROVED if approve else Approval.Status.REJECTED
        locked.decided_by = actor
        locked.decided_by_name = _person(actor)
        locked.decided_at = now
        locked.comment = comment
        locked.save(
            update_fields=["status", "decided_by", "decided_by_name", "decided_at", "comment"]
        )
        said = f": “{comment}”" if comment else ""
        template = APPROVED_INSIGHT if approve else REJECTED_INSIGHT
        insight = template.format(name=locked.decided_by_name, when=_when(now), comment=said)
        _settle(
            locked,
            insight=insight,
            held=None
            if approve
            else REJECTED_HELD.format(name=locked.decided_by_name, when=_when(now), comment=said),
            now=now,
        )
        audit_record(
            action=AuditEvent.Action.CHANGED,
            actor=actor,
            obj=locked.member,
            message=(
                f"Approval {locked.pk} of “{locked.execution.automation_name}” "
                f"{'approved' if approve else 'rejected'}"
                + (" with a one-time password" if approve and locked.needs_mdm else "")
                + (f": {comment}" if comment else ".")
            )[:1000],
            request=request,
        )
        executions_finish([locked.execution_id])
    return locked


def _settle(approval: Approval, *, insight: str, held: str | None, now: datetime) -> None:
    """Close the step's log with `insight`; `held` None: it succeeded (the engine releases the
    held actions); else the held actions are skipped with `held` as their insight."""
    log = approval.log
    if log is None:
        return
    log = ActionLog.objects.select_for_update().get(pk=log.pk)
    detail = {
        **log.detail,
        "decision": approval.status,
        "decided_by": approval.decided_by_name,
        "decided_at": approval.decided_at.isoformat() if approval.decided_at else "",
        "comment": approval.comment,
    }
    log.status = ActionLog.Status.SUCCEEDED if held is None else ActionLog.Status.SKIPPED
    if held is not None:
        detail["unmet"] = True
    log.detail, log.insight, log.finished_at = detail, insight[:500], now
    # The target column says the decision wherever logs are listed (the member's panel too).
    by = f" by {approval.decided_by_name}" if approval.decided_by_name else ""
    log.target_label = f"{approval.get_status_display()}{by}"[:300]
    log.save(update_fields=["status", "detail", "insight", "finished_at", "target_label"])
    if held is None or approval.action_id is None:
        return
    for waiting in ActionLog.objects.filter(
        execution_id=approval.execution_id,
        status=ActionLog.Status.PENDING,
        detail__held_by=approval.action_id,
    ):
        waiting.status, waiting.finished_at = ActionLog.Status.SKIPPED, now
        waiting.insight = held[:500]
        waiting.detail = {**waiting.detail, "unmet": True}
        waiting.save(update_fields=["status", "finished_at", "insight", "detail"])


def _close(approvals: list[Approval], status: str, *, now: datetime, why: str) -> int:
    from automations.engine.runner import executions_finish

    closed = 0
    for approval in approvals:
        with transaction.atomic():
            locked = (
                # of=self: PostgreSQL refuses FOR UPDATE on the nullable side of the join.
                Approval.objects.select_for_update(of=("self",))
                .select_related("action")
                .get(pk=approval.pk)
            )
            if not locked.is_pending:
                continue
            locked.status, locked.decided_at = status, now
            locked.save(update_fields=["status", "decided_at"])
            if status == Approval.Status.EXPIRED:
                days = _days(locked.action.config.get("expire_days", 0)) if locked.action else ""
                insight = EXPIRED_INSIGHT.format(when=_when(locked.expires_at), days=days)
                held = EXPIRED_HELD.format(when=_when(locked.expires_at))
            else:
                insight = CANCELLED_INSIGHT.format(when=_when(now))
                held = CANCELLED_HELD.format(when=_when(now))
            _settle(locked, insight=insight, held=held, now=now)
            audit_record(
                action=AuditEvent.Action.CHANGED,
                obj=locked.member,
                actor_name="Automations",
                message=f"Approval {locked.pk} {why}.",
            )
            executions_finish([locked.execution_id])
            closed += 1
    return closed


def approvals_expire_due(*, now: datetime | None = None) -> int:
    """Every 15 minutes (a django-q2 schedule): pending approvals past `expires_at` expire, and
    the actions they hold are skipped, saying so. Returns how many expired."""
    now = now or timezone.now()
    due = list(
        Approval.objects.filter(status=Approval.Status.PENDING, expires_at__lte=now).order_by("pk")
    )
    return _close(due, Approval.Status.EXPIRED, now=now, why="expired without a decision")


def approvals_cancel_for_member(*, member_id: int, now: datetime | None = None) -> int:
    """The member was reactivated: their pending approvals are cancelled, and the actions they
    hold are skipped, saying so (from the member trigger, automations/signals.py)."""
    now = now or timezone.now()
    pending = list(
        Approval.objects.filter(status=Approval.Status.PENDING, member_id=member_id).order_by("pk")
    )
    return _close(
        pending, Approval.Status.CANCELLED, now=now, why="cancelled: the member was reactivated"
    )


def ensure_expiry_schedule(schedule_model=None) -> None:
    """The every-15-minutes expiry schedule (created by a migration)."""
    if schedule_model is None:
        from django_q.models import Schedule as schedule_model
    schedule_model.objects.get_or_create(
        name=EXPIRY_SCHEDULE_NAME,
        defaults={
            "func": "automations.actions.approval.approvals_expire_due",
            "schedule_type": "I",  # Schedule.MINUTES
            "minutes": 15,
            "repeats": -1,
            "next_run": timezone.now(),
        },
    )
