"""Delayed actions (issue 10): an action with a delay (`Action.delay`, "after 7 days") is not
performed when its execution runs. It is logged as scheduled instead, one log per execution and
action (key `log_key(event, automation, action, "scheduled")`, target type "schedule"), due at
the event's time plus the delay (`ActionLog.due_at`), and run by django-q2's scheduler then:

- Scheduling. A django-q2 Schedule ONCE at the due time (`logs_schedule`, in the run's first
  transaction, so a rolled-back run leaves no schedule behind) calls the task
  `automations.tasks.run_scheduled_action`. No worker sleeps. The sweeper
  (engine/events.py, every minute) dispatches a scheduled log still waiting RETRY_GRACE after
  its due time, whose schedule was lost (deleted, or a crash before it ran).
- Running (`scheduled_run`). The task claims the log with one conditional UPDATE (scheduled and
  due → succeeded, "Ran at …"), so of two tasks racing for it exactly one goes on (the other's
  UPDATE finds it claimed: PostgreSQL waits on the row and re-checks, SQLite takes its write
  lock first). In the same transaction the action's kind prepares it for this execution as a
  run would: its targets are computed now, from the event's snapshot, and claimed under their
  own keys. Its side effects go out after that commits and are recorded in a last transaction,
  which settles the execution. Workers down at the due time: the schedule (and the sweeper)
  run it when they return, once, and the log says how late ("Ran at 9 Dec 18:42, 42 minutes
  late"). The action's settings at the due time are used; a removed action is skipped.
- Order and "stop if this fails". Delays count from the trigger, not from the action before. A
  delayed action does not hold the actions after it, unless it is set to stop the remaining
  actions if it fails: then they wait (held logs, engine/runner.py) until it ran and finished
  well, and are skipped, naming it, if it failed or was cancelled. A delayed action after a
  "stop on error" action is held like any other: scheduled once that action finished well,
  skipped with the reason if it failed. Its due time stays the event's time plus its delay.
- The execution is "Scheduled" (not succeeded) while only delayed actions (and what they hold)
  are left, with the insight "1 action scheduled for 9 Dec 18:00"; it settles when they ran.
- Cancelling. Reactivating the member cancels their scheduled actions (automations/signals.py,
  `scheduled_cancel_for_member`), logged as cancelled with "Member was reactivated on …"; a run
  that finds a reactivation after its event (a lost signal) cancels instead of acting. An IT
  manager may run one now or cancel it from the execution page (`scheduled_run_now`,
  `scheduled_cancel`; for device locks the MDM feature, permission and a one-time password).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Min
from django.utils import timezone

from assetsonar.audit import audit_record
from assetsonar.models import AuditEvent
from automations import delays
from automations.actions import get_kind, log_label
from automations.engine.common import Prep, RunContext, human_duration, log_key
from automations.models import ActionLog, Event, Execution
from automations.triggers import MEMBER_REACTIVATED

logger = logging.getLogger(__name__)

TARGET = "scheduled"
TASK = "automations.tasks.run_scheduled_action"
# A run this much after the due time or less is on time: django-q2's scheduler looks every 30 s.
ON_TIME = timedelta(seconds=45)

SCHEDULED_INSIGHT = "Scheduled for {when}, {delay} after the trigger."
RAN_INSIGHT = "Ran at {when}, on time."
RAN_LATE_INSIGHT = "Ran at {when}, {late} late (it was due {due})."
RUN_NOW_INSIGHT = "Run now by {name} at {when} (it was due {due})."
REACTIVATED_INSIGHT = "Member was reactivated on {when}, before this action was due."
CANCELLED_INSIGHT = "Cancelled by {name} on {when}."
REMOVED_INSIGHT = "Not run: the action was removed from the automation before its time."
HELD_CANCELLED = "Not run: “{label}” (action {number}), which it waited for, was cancelled: {why}"


def when(moment: datetime) -> str:
    """A moment as the stored insights say it (the portal's time zone; pages show `due_at` in
    the user's own format)."""
    return f"{timezone.localtime(moment):%-d %b %H:%M}"


def schedule_name(log_id: int) -> str:
    return f"Scheduled action log {log_id}"


# --- In the run: scheduling ---------------------------------------------------------------------


def scheduled_states(pairs: list[tuple[Any, Any]]) -> dict[tuple[int, int], str]:
    """(execution id, action id) → status of its scheduled log, for (execution, action) pairs
    of delayed actions (one query; none without pairs)."""
    if not pairs:
        return {}
    rows = ActionLog.objects.filter(
        execution_id__in={execution.pk for execution, _ in pairs},
        action_id__in={action.pk for _, action in pairs},
        target_type=ActionLog.TargetType.SCHEDULE,
    ).values_list("execution_id", "action_id", "status")
    return {(execution_id, action_id): status for execution_id, action_id, status in rows}


def logs_schedule(items: list[Prep]) -> list[ActionLog]:
    """In the run's first transaction: a scheduled log per delayed action and execution (its
    key claimed: a run again finds it and adds nothing), and a django-q2 Schedule ONCE at its
    due time for each new one. Returns the new logs."""
    from django_q.models import Schedule

    specs = []
    for item in items:
        due = item.event.occurred_at + item.action.delay
        specs.append(
            {
                "key": log_key(item.event.pk, item.execution.automation_id, item.action.pk, TARGET),
                "execution": item.execution,
                "action": item.action,
                "action_kind": item.action.kind,
                "target_type": ActionLog.TargetType.SCHEDULE,
                "target_label": (
                    item.event.member_snapshot.get("full_name", "") or str(item.event.member_id)
                )[:300],
                "status": ActionLog.Status.SCHEDULED,
                "due_at": due,
                "insight": SCHEDULED_INSIGHT.format(
                    when=when(due), delay=delays.label(item.action.delay).removeprefix("after ")
                )[:500],
                "detail": {"delay_seconds": int(item.action.delay.total_seconds())},
            }
        )
    keys = [spec["key"] for spec in specs]
    known = set(ActionLog.objects.filter(key__in=keys).values_list("key", flat=True))
    fresh = [ActionLog(**spec) for spec in specs if spec["key"] not in known]
    if not fresh:
        return []
    ActionLog.objects.bulk_create(fresh, ignore_conflicts=True)
    created = list(
        ActionLog.objects.filter(
            key__in=[log.key for log in fresh], status=ActionLog.Status.SCHEDULED
        )
    )
    Schedule.objects.bulk_create(
        [
            Schedule(
                name=schedule_name(log.pk),
                func=TASK,
                args=repr((log.pk,)),
                schedule_type=Schedule.ONCE,
                repeats=-1,
                next_run=log.due_at,
            )
            for log in created
        ]
    )
    return created


def executions_wait(executions: list[Execution], counts: dict) -> None:
    """Executions with only delayed actions left: "Scheduled", with when the next is due (one
    query, one UPDATE)."""
    from automations.engine.common import rows_update

    due = {
        row["execution_id"]: row
        for row in ActionLog.objects.filter(
            execution_id__in=[e.pk for e in executions], status=ActionLog.Status.SCHEDULED
        )
        .order_by()
        .values("execution_id")
        .annotate(n=Count("pk"), first=Min("due_at"))
    }
    changed = []
    for execution in executions:
        row = due.get(execution.pk)
        if row is None:
            continue
        n = row["n"]
        insight = (
            f"1 action scheduled for {when(row['first'])}."
            if n == 1
            else f"{n} actions scheduled, the next for {when(row['first'])}."
        )
        count = counts.get(execution.pk) or {}
        failed = count.get(ActionLog.Status.FAILED, 0) + count.get("unmet", 0)
        if failed:
            insight += f" {failed} action{'s' if failed != 1 else ''} not done so far."
        if execution.status != Execution.Status.SCHEDULED or execution.insight != insight:
            execution.status, execution.insight = Execution.Status.SCHEDULED, insight[:500]
            changed.append(execution)
    if changed:
        rows_update(Execution, changed, ["status", "insight"])


def cancelled_insight(execution_id: int) -> str:
    """The insight of an execution whose other actions are done and some delayed ones were
    cancelled."""
    reasons = list(
        ActionLog.objects.filter(execution_id=execution_id, status=ActionLog.Status.CANCELLED)
        .order_by("pk")
        .values_list("action_kind", "insight")
    )
    kinds = ", ".join(dict.fromkeys(f"“{log_label(kind)}”" for kind, _ in reasons))
    return (
        f"{len(reasons)} scheduled action{'s were' if len(reasons) != 1 else ' was'} cancelled "
        f"({kinds}): {reasons[0][1]}"
    )[:500]


# --- At the due time ----------------------------------------------------------------------------


def _reactivation_after(event: Event) -> Event | None:
    """The member's reactivation after this event, if any (the cancel hook should have acted:
    this covers a path that missed it)."""
    if event.kind == MEMBER_REACTIVATED:
        return None
    return (
        Event.objects.filter(
            member_id=event.member_id, kind=MEMBER_REACTIVATED, occurred_at__gt=event.occurred_at
        )
        .order_by("occurred_at")
        .first()
    )


def _settle(execution_id: int) -> None:
    """Settle the execution, unless its event's own run is unfinished (that run settles it; a
    settle now could count an action that crashed and waits for another run as done)."""
    from automations.engine.runner import executions_finish

    if Event.objects.filter(
        executions=execution_id, status__in=[Event.Status.DONE, Event.Status.DEAD]
    ).exists():
        executions_finish([execution_id])


def scheduled_run(*, log_id: int, now: datetime | None = None) -> str:
    """Run one scheduled action if it is due (the task `automations.tasks.run_scheduled_action`).
    Returns what happened: "ran", "not due", "done before" (another run claimed it, or it was
    cancelled), "cancelled" (the member was reactivated), "removed" or "gone"."""
    from automations.engine.runner import ActionCrashed, _action_scope, _kind, _perform

    now = now or timezone.now()
    context = RunContext(now=now)
    with transaction.atomic():
        # The claim first, before anything is read: exactly one of two racing runs gets it.
        claimed = ActionLog.objects.filter(
            pk=log_id, status=ActionLog.Status.SCHEDULED, due_at__lte=now
        ).update(status=ActionLog.Status.SUCCEEDED, finished_at=now, next_attempt_at=None)
        log = (
            ActionLog.objects.select_related("execution", "execution__event", "action")
            .filter(pk=log_id)
            .first()
        )
        if log is None:
            return "gone"
        if not claimed:
            return "not due" if log.status == ActionLog.Status.SCHEDULED else "done before"
        execution, event, action = log.execution, log.execution.event, log.action
        if action is None:
            log.status = ActionLog.Status.SKIPPED
            log.insight = REMOVED_INSIGHT
            log.detail = {**log.detail, "unmet": True}
            log.save(update_fields=["status", "insight", "detail"])
            _settle(execution.pk)
            return "removed"
        reactivation = _reactivation_after(event)
        if reactivation is not None:
            why = REACTIVATED_INSIGHT.format(when=when(reactivation.occurred_at))
            _close(log, status=ActionLog.Status.CANCELLED, insight=why, now=now, why=why)
            _settle(execution.pk)
            return "cancelled"
        late = now - log.due_at
        detail = {
            **log.detail,
            "ran_at": now.isoformat(),
            "late_seconds": int(late.total_seconds()),
        }
        if detail.get("run_now_by"):
            log.insight = RUN_NOW_INSIGHT.format(
                name=detail["run_now_by"],
                when=when(now),
                due=when(datetime.fromisoformat(detail["scheduled_for"])),
            )
        elif late > ON_TIME:
            log.insight = RAN_LATE_INSIGHT.format(
                when=when(now), late=human_duration(late.total_seconds()), due=when(log.due_at)
            )
        else:
            log.insight = RAN_INSIGHT.format(when=when(now))
        log.detail = detail
        log.save(update_fields=["insight", "detail"])
        Execution.objects.filter(pk=execution.pk, status=Execution.Status.SCHEDULED).update(
            status=Execution.Status.RUNNING
        )
        # The kind's own prepare, as a run does it: targets now, from the event's snapshot,
        # each claimed under its key. An error rolls the claim back too: the sweeper runs the
        # log again.
        jobs = _kind(action.kind).prepare(items=[Prep(execution, action, event)], context=context)
    crashed: dict[int, list[str]] = {}
    results = _perform(jobs, crashed)
    with transaction.atomic():
        for job, outcome in results:
            with _action_scope(True, crashed, execution.pk, job.log.action_kind):
                job.record(outcome)
        if not crashed:
            _settle(execution.pk)
    if crashed:
        raise ActionCrashed(f"Execution {execution.pk}: " + "; ".join(sum(crashed.values(), [])))
    return "ran"


# --- Cancelling ---------------------------------------------------------------------------------


def _close(log: ActionLog, *, status: str, insight: str, now: datetime, why: str) -> None:
    """Close a claimed scheduled log (cancelled or skipped) and skip the actions it holds."""
    log.status, log.insight, log.finished_at = status, insight[:500], now
    log.save(update_fields=["status", "insight", "finished_at"])
    if log.action_id is None:
        return
    number = (log.action.position + 1) if log.action else "?"
    for waiting in ActionLog.objects.filter(
        execution_id=log.execution_id,
        status=ActionLog.Status.PENDING,
        detail__held_by=log.action_id,
    ):
        waiting.status, waiting.finished_at = ActionLog.Status.SKIPPED, now
        waiting.insight = HELD_CANCELLED.format(
            label=log_label(log.action_kind), number=number, why=why
        )[:500]
        waiting.detail = {**waiting.detail, "unmet": True}
        waiting.save(update_fields=["status", "finished_at", "insight", "detail"])


def _cancel(log_id: int, *, insight: str, now: datetime, detail: dict) -> ActionLog | None:
    """Cancel one scheduled log if it still is (a conditional UPDATE, like the run's claim);
    returns it, or None when it ran or was cancelled before."""
    from django_q.models import Schedule

    if not ActionLog.objects.filter(pk=log_id, status=ActionLog.Status.SCHEDULED).update(
        status=ActionLog.Status.CANCELLED, finished_at=now
    ):
        return None
    log = ActionLog.objects.select_related("action", "execution").get(pk=log_id)
    log.detail = {**log.detail, **detail}
    log.save(update_fields=["detail"])
    _close(log, status=ActionLog.Status.CANCELLED, insight=insight, now=now, why=insight)
    Schedule.objects.filter(name=schedule_name(log.pk), func=TASK).delete()
    return log


def scheduled_cancel_for_member(*, member_id: int, now: datetime | None = None) -> int:
    """The member was reactivated: their scheduled actions are cancelled, saying so (from the
    member trigger, automations/signals.py, in the reactivation's transaction). Actions of
    automations triggered by a reactivation are left alone. Returns how many were cancelled."""
    now = now or timezone.now()
    insight = REACTIVATED_INSIGHT.format(when=when(now))
    ids = list(
        ActionLog.objects.filter(status=ActionLog.Status.SCHEDULED, execution__member_id=member_id)
        .exclude(execution__event__kind=MEMBER_REACTIVATED)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    why = {"cancelled_because": "reactivated"}
    cancelled = [log for pk in ids if (log := _cancel(pk, insight=insight, now=now, detail=why))]
    for log in cancelled:
        audit_record(
            action=AuditEvent.Action.CHANGED,
            obj=log.execution,
            actor_name="Automations",
            message=f"Scheduled “{log_label(log.action_kind)}” of execution "
            f"{log.execution_id} cancelled: the member was reactivated.",
        )
    for execution_id in dict.fromkeys(log.execution_id for log in cancelled):
        _settle(execution_id)
    return len(cancelled)


# --- From the execution page: run now, cancel -----------------------------------------------------


class ScheduledRefused(ValidationError):
    """The scheduled action cannot be run now or cancelled (it ran, was cancelled, or the
    one-time password is missing)."""


def _person(user: Any) -> str:
    return (user.get_full_name() or user.get_username())[:150] if user else "someone"


def _locked_scheduled(log: ActionLog, *, actor: Any, otp_verified: bool, doing: str) -> ActionLog:
    """The log, locked, still scheduled, and the actor allowed (a device lock: the MDM feature
    and permission, and a one-time password checked in this request)."""
    from automations.selectors import mdm_availability

    locked = (
        ActionLog.objects.select_for_update(of=("self",)).select_related("execution").get(pk=log.pk)
    )
    if locked.status != ActionLog.Status.SCHEDULED:
        raise ScheduledRefused(
            f"This action is {locked.get_status_display().lower()} already: it is no longer "
            "scheduled."
        )
    kind = get_kind(locked.action_kind)
    if kind is not None and kind.locks_devices:
        problems = mdm_availability(actor).problems
        if problems:
            raise PermissionDenied(
                f"{doing} a device lock needs the MDM feature and permission. " + " ".join(problems)
            )
        if not otp_verified:
            raise ScheduledRefused(
                f"{doing} a device lock needs a one-time password from your authenticator app."
            )
    return locked


def scheduled_run_now(
    *, log: ActionLog, actor: Any, otp_verified: bool = False, request: Any = None
) -> ActionLog:
    """Run a scheduled action now instead of at its time: it becomes due now and its task is
    queued (the sweeper sends it again should that be lost); audited with who asked."""
    from django_q.models import Schedule

    with transaction.atomic():
        locked = _locked_scheduled(log, actor=actor, otp_verified=otp_verified, doing="Running")
        now = timezone.now()
        locked.detail = {
            **locked.detail,
            "run_now_by": _person(actor),
            "scheduled_for": locked.due_at.isoformat(),
        }
        was_due = locked.due_at
        locked.due_at = now
        locked.save(update_fields=["detail", "due_at"])
        Schedule.objects.filter(name=schedule_name(locked.pk), func=TASK).delete()
        audit_record(
            action=AuditEvent.Action.CHANGED,
            actor=actor,
            obj=locked.execution,
            message=f"Scheduled “{log_label(locked.action_kind)}” of execution "
            f"{locked.execution_id} run now (it was due {when(was_due)})"
            + (" with a one-time password" if otp_verified else "")
            + ".",
            request=request,
        )
        transaction.on_commit(lambda pk=locked.pk: _dispatch(pk), robust=True)
    return locked


def scheduled_cancel(
    *, log: ActionLog, actor: Any, otp_verified: bool = False, request: Any = None
) -> ActionLog:
    """Cancel a scheduled action before its time; audited with who did it."""
    with transaction.atomic():
        locked = _locked_scheduled(log, actor=actor, otp_verified=otp_verified, doing="Cancelling")
        now = timezone.now()
        insight = CANCELLED_INSIGHT.format(name=_person(actor), when=when(now))
        closed = _cancel(
            locked.pk, insight=insight, now=now, detail={"cancelled_by": _person(actor)}
        )
        audit_record(
            action=AuditEvent.Action.CHANGED,
            actor=actor,
            obj=locked.execution,
            message=f"Scheduled “{log_label(locked.action_kind)}” of execution "
            f"{locked.execution_id} cancelled (it was due {when(locked.due_at)})"
            + (" with a one-time password" if otp_verified else "")
            + ".",
            request=request,
        )
        _settle(locked.execution_id)
    return closed or locked


def _dispatch(log_id: int) -> None:
    from django_q.tasks import async_task

    async_task(TASK, log_id, group="automations.scheduled")


def scheduled_dispatch_overdue(*, now: datetime, grace: timedelta, limit: int) -> int:
    """For the sweeper: queue the scheduled logs still waiting `grace` after their due time
    (their schedule was lost). Returns how many."""
    ids = list(
        ActionLog.objects.filter(status=ActionLog.Status.SCHEDULED, due_at__lt=now - grace)
        .order_by("due_at")
        .values_list("pk", flat=True)[:limit]
    )
    for log_id in ids:
        _dispatch(log_id)
    return len(ids)
