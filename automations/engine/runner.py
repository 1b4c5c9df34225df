"""Running an event: match automations, record executions, run every action, settle statuses.

An event run counts itself (Event.attempts, committed before any side effect). A run that finds
the event processing by a run started less than a lease ago leaves it alone (that worker is
alive: django-q2 kills tasks at their timeout, which is shorter than the lease); an older one is
taken over. The run after MAX_ATTEMPTS moves the event to the dead-letter state and its
executions to failed, with the insight saying so.

Actions are independent: each runs in its own try, and an unexpected error in one neither stops
the others nor is swallowed: the event stays processing and the error is raised, so the task
fails and the event is run again (the sweeper or django-q2's redelivery), up to the dead letter.
"""

from __future__ import annotations

import logging
from collections import Counter

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from automations.conditions import matches
from automations.engine import licenses, mdm, webhook
from automations.engine.common import OPEN_STATUSES, attempt_lease
from automations.models import ActionLog, Automation, Event, Execution

logger = logging.getLogger(__name__)

HANDLERS = {
    "webhook": webhook.webhook_run,
    "revoke_licenses": licenses.licenses_revoke,
    "mdm_lock": mdm.mdm_lock_run,
}
# Kinds with attempts of their own that a scheduled retry resumes.
RESUMERS = {"webhook": webhook.webhook_attempt, "mdm_lock": mdm.mdm_attempt}

DEAD_LETTER_INSIGHT = (
    "The background job for this event stopped {attempts} times before finishing ({why}), so it "
    "was set aside. Check the worker's log, then use “Retry failed actions”."
)


class ActionCrashed(Exception):
    """An action raised an unexpected error; the event will be run again."""


def event_process(*, event_id) -> None:
    """Process one event (the task `automations.tasks.process_event`)."""
    event = _event_start(event_id)
    if event is None:
        return
    crashed: list[str] = []
    for execution in _executions_for(event):
        crashed += _execution_run(execution, event)
    if crashed:
        summary = "; ".join(crashed)[:2000]
        Event.objects.filter(pk=event.pk).update(last_error=summary)
        raise ActionCrashed(f"Event {event.pk}: {summary}")
    Event.objects.filter(pk=event.pk, status=Event.Status.PROCESSING).update(
        status=Event.Status.DONE, processed_at=timezone.now(), last_error=""
    )


def _event_start(event_id) -> Event | None:
    """Count this run under the event's row lock and commit, or say there is nothing to do."""
    with transaction.atomic():
        event = Event.objects.select_for_update().filter(pk=event_id).first()
        if event is None:
            logger.warning("Event %s no longer exists", event_id)
            return None
        if event.status in (Event.Status.DONE, Event.Status.DEAD):
            return None
        now = timezone.now()
        if (
            event.status == Event.Status.PROCESSING
            and event.last_dispatched_at is not None
            and event.last_dispatched_at > now - attempt_lease()
        ):
            return None  # a live worker started it moments ago
        if event.attempts >= Event.MAX_ATTEMPTS:
            _event_dead_letter(event)
            return None
        event.attempts += 1
        event.status = Event.Status.PROCESSING
        event.last_dispatched_at = now
        event.save(update_fields=["attempts", "status", "last_dispatched_at"])
    return event


def _event_dead_letter(event: Event) -> None:
    why = (
        f"last error: {event.last_error[:200]}"
        if event.last_error
        else "the worker was killed or timed out"
    )
    insight = DEAD_LETTER_INSIGHT.format(attempts=event.attempts, why=why)[:500]
    now = timezone.now()
    event.status = Event.Status.DEAD
    event.processed_at = now
    event.last_error = insight
    event.save(update_fields=["status", "processed_at", "last_error"])
    for execution in _executions_for(event):
        ActionLog.objects.filter(execution=execution, status__in=OPEN_STATUSES).update(
            status=ActionLog.Status.FAILED, insight=insight, next_attempt_at=None, finished_at=now
        )
        Execution.objects.filter(
            pk=execution.pk, status__in=[Execution.Status.PENDING, Execution.Status.RUNNING]
        ).update(
            status=Execution.Status.FAILED,
            insight=insight,
            started_at=execution.started_at or now,
            finished_at=now,
        )
    logger.error("Event %s dead-lettered after %s attempts", event.pk, event.attempts)


def _executions_for(event: Event) -> list[Execution]:
    """The event's executions: those already recorded, plus one per enabled automation (that
    existed at the event) whose conditions match the member as recorded at the event."""
    executions = {e.automation_id: e for e in event.executions.all()}
    automations = Automation.objects.filter(
        enabled=True, trigger_event=event.kind, created_at__lte=event.occurred_at
    ).prefetch_related("conditions")
    for automation in automations:
        if automation.pk in executions:
            continue
        if not matches(automation.conditions.all(), automation.match, event.member_snapshot):
            continue
        executions[automation.pk], _ = Execution.objects.get_or_create(
            event=event,
            automation=automation,
            defaults={"automation_name": automation.name, "member_id": event.member_id},
        )
    return sorted(executions.values(), key=lambda e: e.pk)


def _execution_run(execution: Execution, event: Event) -> list[str]:
    """Run every action of an execution; returns the actions that crashed."""
    with transaction.atomic():
        execution = Execution.objects.select_for_update().get(pk=execution.pk)
        if execution.is_finished:
            return []
        if execution.status == Execution.Status.PENDING:
            execution.status = Execution.Status.RUNNING
            execution.started_at = timezone.now()
            execution.save(update_fields=["status", "started_at"])
    automation = execution.automation
    if automation is None:
        Execution.objects.filter(pk=execution.pk).update(
            status=Execution.Status.FAILED,
            insight="The automation was deleted before its actions ran.",
            finished_at=timezone.now(),
        )
        return []
    crashed = []
    for action in automation.actions.order_by("position", "pk"):
        try:
            HANDLERS[action.kind](execution=execution, action=action, event=event)
        except Exception as exc:
            logger.exception("Action %s of execution %s failed", action.pk, execution.pk)
            crashed.append(f"“{action.get_kind_display()}” stopped: {type(exc).__name__}: {exc}")
    if crashed:
        Execution.objects.filter(pk=execution.pk).update(
            insight=(
                "An unexpected error stopped "
                + ", ".join(c.split(" stopped")[0] for c in crashed)
                + "; it is tried again automatically."
            )[:500]
        )
        return crashed
    execution_finish(execution_id=execution.pk)
    return []


def execution_finish(*, execution_id: int) -> Execution:
    """Settle an execution from its logs: still running while any log is open, else succeeded,
    partially failed or failed, with the failures' insights."""
    with transaction.atomic():
        execution = Execution.objects.select_for_update().get(pk=execution_id)
        if execution.is_finished:
            return execution
        counts = Counter(
            dict(
                ActionLog.objects.filter(execution=execution)
                .values_list("status")
                .annotate(n=Count("pk"))
            )
        )
        if any(counts[status] for status in OPEN_STATUSES):
            return execution
        failed = counts[ActionLog.Status.FAILED]
        done = counts[ActionLog.Status.SUCCEEDED] + counts[ActionLog.Status.SKIPPED]
        if not failed:
            execution.status = Execution.Status.SUCCEEDED
            execution.insight = "" if done else "This automation has no actions."
        else:
            execution.status = (
                Execution.Status.PARTIALLY_FAILED if done else Execution.Status.FAILED
            )
            insights = list(
                dict.fromkeys(
                    ActionLog.objects.filter(
                        execution=execution, status=ActionLog.Status.FAILED
                    ).values_list("insight", flat=True)[:20]
                )
            )
            prefix = f"{failed} of {failed + done} actions failed. " if failed > 1 else ""
            execution.insight = (prefix + " ".join(insights[:3]))[:500]
        execution.finished_at = timezone.now()
        execution.started_at = execution.started_at or execution.finished_at
        execution.save(update_fields=["status", "insight", "started_at", "finished_at"])
    return execution


def log_resume(*, log_id: int) -> None:
    """Run a due attempt of one webhook or MDM log (the task `automations.tasks.retry_action`),
    then settle its execution."""
    log = ActionLog.objects.filter(pk=log_id).only("pk", "action_kind", "execution_id").first()
    if log is None:
        return
    resume = RESUMERS.get(log.action_kind)
    if resume is None:
        logger.warning("Action log %s (%s) has no retry", log.pk, log.action_kind)
        return
    resume(log_id=log.pk)
    # While the event's own run is unfinished (an action crashed and waits for another run),
    # settling now could mark the execution done before that action ever ran.
    settled = Event.objects.filter(
        executions=log.execution_id, status__in=[Event.Status.DONE, Event.Status.DEAD]
    ).exists()
    if settled:
        execution_finish(execution_id=log.execution_id)


def execution_resume(*, execution_id: int) -> None:
    """Run an execution's actions again (after "Retry failed actions"): targets claimed before
    and finished stay as they are, failed ones reset by the retry are attempted, missing ones
    are claimed."""
    execution = Execution.objects.select_related("event").filter(pk=execution_id).first()
    if execution is None:
        return
    crashed = _execution_run(execution, execution.event)
    if crashed:
        raise ActionCrashed(f"Execution {execution.pk}: " + "; ".join(crashed))
