"""Running an event: match automations, record executions, run every action, settle statuses.

One pass over an event has three steps, so it costs two commits whatever the number of actions:
1. One transaction counts the run (Event.attempts), records one Execution per matching
   automation and prepares every action: claims each target's ActionLog key, starts the
   attempts (counted, leased), stores the MDM commands with their PINs, and revokes the
   licenses (no outside party is involved there). It commits before anything leaves the portal.
2. The webhooks and device locks are sent, outside any transaction.
3. One transaction records every outcome and settles the executions and the event.
A worker killed during step 2 leaves its logs running; once their lease is over (longer than the
worker timeout) the next run takes them over and sends again: same webhook-id, same PIN.

A run that finds the event processing by a run started less than a lease ago leaves it alone
(that worker is alive); an older one is taken over. The run after MAX_ATTEMPTS moves the event to
the dead-letter state and its executions to failed, with the insight saying so.

Actions are independent: each is prepared in its own savepoint and each target is sent and
recorded on its own, and an unexpected error in one neither stops the others nor is swallowed:
the event stays processing and the error is raised, so the task fails and the event is run
again (the sweeper or django-q2's redelivery), up to the dead letter.
"""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import contextmanager

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from automations.conditions import matches
from automations.engine import licenses, mdm, webhook
from automations.engine.common import OPEN_STATUSES, Job, RunContext, attempt_lease, log_begin
from automations.models import Action, ActionLog, Automation, Event, Execution

logger = logging.getLogger(__name__)

PREPARERS = {
    "webhook": webhook.webhook_prepare,
    "revoke_licenses": licenses.licenses_revoke,
    "mdm_lock": mdm.mdm_prepare,
}
# Kinds with attempts of their own that a scheduled retry resumes: the job of one started log.
RESUMERS = {"webhook": webhook.webhook_job, "mdm_lock": mdm.mdm_retry_job}

DEAD_LETTER_INSIGHT = (
    "The background job for this event stopped {attempts} times before finishing ({why}), so it "
    "was set aside. Check the worker's log, then use “Retry failed actions”."
)


class ActionCrashed(Exception):
    """An action raised an unexpected error; the event will be run again."""


def event_process(*, event_id) -> None:
    """Process one event (the task `automations.tasks.process_event`): prepare in one
    transaction, send outside any, record in one transaction (see the module docstring)."""
    context = RunContext()
    try:
        first = _first_step(event_id, context, isolate=False)
    except _Isolate:
        first = _first_step(event_id, context, isolate=True)
    if first is None:
        return
    event, executions, jobs, crashed = first
    results = _perform(jobs, crashed)
    try:
        crashed = _last_step(event, executions, results, crashed, isolate=False)
    except _Isolate:
        crashed = _last_step(event, executions, results, crashed, isolate=True)
    if crashed:
        raise ActionCrashed(f"Event {event.pk}: " + "; ".join(sum(crashed.values(), [])))


class _Isolate(Exception):
    """An action failed on the fast path, which runs without a savepoint per action: the whole
    transaction is rolled back and done again with one savepoint per action, so that only the
    failing action is set aside. Failures are rare; savepoints cost a round trip each."""


@contextmanager
def _action_scope(isolate: bool, crashed: dict[int, list[str]], execution_id: int, kind: str):
    if not isolate:
        try:
            yield
        except Exception as exc:
            raise _Isolate from exc
        return
    try:
        with transaction.atomic():
            yield
    except Exception as exc:
        logger.exception("“%s” of execution %s failed", kind, execution_id)
        crashed.setdefault(execution_id, []).append(_crash(kind, exc))


def _first_step(event_id, context: RunContext, *, isolate: bool):
    """Count the run, record the executions and prepare every action, in one transaction.
    Returns (event, executions, jobs, crashed), or None when there is nothing to do."""
    crashed: dict[int, list[str]] = {}
    with transaction.atomic():
        event = _event_start(event_id, context.now)
        if event is None:
            return None
        executions = _executions_begin(_executions_for(event), context.now)
        jobs = _prepare(executions, event, context, crashed, isolate=isolate)
    return event, executions, jobs, crashed


def _last_step(event, executions, results, crashed, *, isolate: bool) -> dict[int, list[str]]:
    """Record the outcomes, settle the executions and the event, in one transaction. Returns
    what crashed (before and while recording)."""
    crashed = {execution_id: list(messages) for execution_id, messages in crashed.items()}
    with transaction.atomic():
        for job, outcome in results:
            with _action_scope(isolate, crashed, job.log.execution_id, job.log.action_kind):
                job.record(outcome)
        executions_finish([e.pk for e in executions if e.pk not in crashed])
        if crashed:
            _note_crashes(crashed)
            Event.objects.filter(pk=event.pk).update(
                last_error="; ".join(sum(crashed.values(), []))[:2000]
            )
        else:
            Event.objects.filter(pk=event.pk, status=Event.Status.PROCESSING).update(
                status=Event.Status.DONE, processed_at=timezone.now(), last_error=""
            )
    return crashed


def _prepare(
    executions: list[Execution],
    event: Event,
    context: RunContext,
    crashed: dict[int, list[str]],
    *,
    isolate: bool,
) -> list[Job]:
    """Every action of every execution; with `isolate`, each in its own savepoint, so one that
    raises is rolled back alone and noted in `crashed` (execution id → what stopped)."""
    jobs: list[Job] = []
    actions: dict[int, list] = {}
    for action in Action.objects.filter(
        automation_id__in=[e.automation_id for e in executions if e.automation_id]
    ).order_by("position", "pk"):
        actions.setdefault(action.automation_id, []).append(action)
    for execution in executions:
        if execution.automation_id is None:
            Execution.objects.filter(pk=execution.pk).update(
                status=Execution.Status.FAILED,
                insight="The automation was deleted before its actions ran.",
                finished_at=context.now,
            )
            continue
        for action in actions.get(execution.automation_id, []):
            with _action_scope(isolate, crashed, execution.pk, action.kind):
                jobs += PREPARERS[action.kind](
                    execution=execution, action=action, event=event, context=context
                )
    return jobs


def _perform(jobs: list[Job], crashed: dict[int, list[str]]) -> list[tuple[Job, object]]:
    """The side effects, outside any transaction. A job that raises leaves its log running; it
    is taken over once its lease ends."""
    results = []
    for job in jobs:
        try:
            results.append((job, job.perform()))
        except Exception as exc:
            logger.exception("Action log %s failed", job.log.pk)
            crashed.setdefault(job.log.execution_id, []).append(_crash(job.log.action_kind, exc))
    return results


def _crash(kind: str, exc: Exception) -> str:
    return f"“{Action.Kind(kind).label}” stopped: {type(exc).__name__}: {exc}"


def _note_crashes(crashed: dict[int, list[str]]) -> None:
    for execution_id, messages in crashed.items():
        names = ", ".join(dict.fromkeys(m.split(" stopped")[0] for m in messages))
        Execution.objects.filter(pk=execution_id).update(
            insight=(f"An unexpected error stopped {names}; it is tried again automatically.")[:500]
        )


def _event_start(event_id, now) -> Event | None:
    """Count this run under the event's row lock (in the caller's transaction), or say there is
    nothing to do."""
    event = Event.objects.select_for_update().filter(pk=event_id).first()
    if event is None:
        logger.warning("Event %s no longer exists", event_id)
        return None
    if event.status in (Event.Status.DONE, Event.Status.DEAD):
        return None
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
    executions = {e.automation_id: e for e in event.executions.select_related("automation")}
    automations = Automation.objects.filter(
        enabled=True, trigger_event=event.kind, created_at__lte=event.occurred_at
    ).prefetch_related("conditions")
    missing = [
        Execution(
            event=event,
            automation=automation,
            automation_name=automation.name,
            member_id=event.member_id,
        )
        for automation in automations
        if automation.pk not in executions
        and matches(automation.conditions.all(), automation.match, event.member_snapshot)
    ]
    if missing:
        # Unique (event, automation): a concurrent run that created one first wins.
        Execution.objects.bulk_create(missing, ignore_conflicts=True)
        executions = {e.automation_id: e for e in event.executions.select_related("automation")}
    return sorted(executions.values(), key=lambda e: e.pk)


def _executions_begin(executions: list[Execution], now) -> list[Execution]:
    """The executions still to run, pending ones marked running (one UPDATE)."""
    todo = [e for e in executions if not e.is_finished]
    pending = [e for e in todo if e.status == Execution.Status.PENDING]
    if pending:
        Execution.objects.filter(pk__in=[e.pk for e in pending]).update(
            status=Execution.Status.RUNNING, started_at=now
        )
        for execution in pending:
            execution.status, execution.started_at = Execution.Status.RUNNING, now
    return todo


def executions_finish(execution_ids: list[int]) -> None:
    """Settle executions from their logs: still running while any log is open, else succeeded,
    partially failed or failed, with the failures' insights."""
    if not execution_ids:
        return
    counts: dict[int, Counter] = {pk: Counter() for pk in execution_ids}
    for execution_id, status, n in (
        ActionLog.objects.filter(execution_id__in=execution_ids)
        .values_list("execution_id", "status")
        .annotate(n=Count("pk"))
    ):
        counts[execution_id][status] = n
    for execution in Execution.objects.select_for_update().filter(pk__in=execution_ids):
        if execution.is_finished:
            continue
        count = counts[execution.pk]
        if any(count[status] for status in OPEN_STATUSES):
            continue
        failed = count[ActionLog.Status.FAILED]
        done = count[ActionLog.Status.SUCCEEDED] + count[ActionLog.Status.SKIPPED]
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


def log_resume(*, log_id: int) -> None:
    """Run a due attempt of one webhook or MDM log (the task `automations.tasks.retry_action`),
    then settle its execution: started in one transaction, sent outside, recorded in another."""
    with transaction.atomic():
        log = ActionLog.objects.select_for_update().filter(pk=log_id).first()
        if log is None:
            return
        resume = RESUMERS.get(log.action_kind)
        if resume is None:
            logger.warning("Action log %s (%s) has no retry", log.pk, log.action_kind)
            return
        started = log_begin([log], timezone.now())
        job = resume(*started[0]) if started else None
    if job is not None:
        outcome = job.perform()
    with transaction.atomic():
        if job is not None:
            job.record(outcome)
        # While the event's own run is unfinished (an action crashed and waits for another
        # run), settling now could mark the execution done before that action ever ran.
        settled = Event.objects.filter(
            executions=log.execution_id, status__in=[Event.Status.DONE, Event.Status.DEAD]
        ).exists()
        if settled:
            executions_finish([log.execution_id])


def execution_resume(*, execution_id: int) -> None:
    """Run an execution's actions again (after "Retry failed actions"): targets claimed before
    and finished stay as they are, failed ones reset by the retry are attempted, missing ones
    are claimed."""
    context = RunContext()
    crashed: dict[int, list[str]] = {}
    with transaction.atomic():
        execution = (
            Execution.objects.select_related("event", "automation").filter(pk=execution_id).first()
        )
        if execution is None or execution.is_finished:
            return
        jobs = _prepare([execution], execution.event, context, crashed, isolate=True)
    results = _perform(jobs, crashed)
    with transaction.atomic():
        for job, outcome in results:
            with _action_scope(True, crashed, execution.pk, job.log.action_kind):
                job.record(outcome)
        if crashed:
            _note_crashes(crashed)
        else:
            executions_finish([execution.pk])
    if crashed:
        raise ActionCrashed(f"Execution {execution.pk}: " + "; ".join(sum(crashed.values(), [])))
