"""Running events: match automations, record executions, run every action, settle statuses.

A task runs its own event and, in the same pass, up to BATCH_SIZE - 1 other pending events
(locked with SKIP LOCKED, so two workers never take the same one and never wait for each other):
a burst of deactivations costs two commits and a fixed number of queries per kind of action for
the whole batch instead of per event. Every event keeps its own attempt count, executions, logs,
statuses and dead letter. A burst also queues few tasks: an event queues one only when no task is
waiting to take it, and each task, once its batch is committed, queues the next batch's
(events.event_wake); a task whose event a batch already took stops after one query. The batch
is a fast path only: if anything raises in it, the transaction is rolled back and the task's own
event is run alone, one savepoint per action, as below.

One pass has three steps, so it costs two commits whatever the number of actions and events:
1. One transaction counts the run (Event.attempts), records one Execution per matching
   automation and prepares every action: claims each target's ActionLog key, starts the
   attempts (counted, leased), stores the MDM commands with their PINs, and revokes the
   licenses (no outside party is involved there). It commits before anything leaves the portal.
2. Outside any transaction, the device locks go out in a pool of their own while the webhooks
   go out in another; the locks' outcomes are committed (a transaction of their own) as soon as
   they are all in, so a slow webhook receiver never holds a lock back.
3. One transaction records the other outcomes and settles the executions and the event.
A worker killed during step 2 leaves its logs running; once their lease is over (longer than the
worker timeout) the next run takes them over: a webhook is sent again with the same webhook-id
(receivers deduplicate on it), a lock is first looked up at the vendor and only sent if absent
(actions/mdm_lock.py).

A run that finds the event processing by a run started less than a lease ago leaves it alone
(that worker is alive); an older one is taken over. The run after MAX_ATTEMPTS moves the event to
the dead-letter state and its executions to failed, with the insight saying so.

Order (issue 9). An automation's actions are prepared in its order (Action.position, the
builder's), and the execution log shows them in that order. Device locks (`ActionKind.urgent`)
are then sent first, in a pool of their own, wherever they stand in the list (issue 8: a slow
webhook receiver must never delay a lock); the other actions of one execution are sent one after
the other in their order, executions side by side. An action set to stop the remaining ones if it
fails (`continue_on_error` off) holds the actions after it, locks included, until it finished
(see `_prepare`); that is the IT manager's explicit choice.

Delays (issue 10). An action with a delay (`Action.delay`) is not prepared in the run: it is
logged as scheduled and run by django-q2's scheduler at the event's time plus the delay, and its
execution is "Scheduled" meanwhile (engine/scheduled.py, where its order and "stop on error"
rules are). `_prepare` prepares it again, like any action, on a run after its time came.

Actions are otherwise independent: each is prepared in its own savepoint and each target is sent
and recorded on its own, and an unexpected error in one neither stops the others nor is swallowed:
the event stays processing and the error is raised, so the task fails and the event is run
again (the sweeper or django-q2's redelivery), up to the dead letter.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from assets.models import Asset
from automations.actions import REGISTRY, get_kind, log_label
from automations.conditions import matches
from automations.engine.common import (
    OPEN_STATUSES,
    Job,
    Prep,
    RunContext,
    attempt_lease,
    deferred_writes,
    flush_deferred,
    log_begin,
    log_key,
    rows_update,
)
from automations.engine.events import event_dispatch, event_wake
from automations.engine.scheduled import (
    cancelled_insight,
    executions_wait,
    logs_schedule,
    scheduled_states,
)
from automations.models import (
    Action,
    ActionLog,
    Automation,
    Event,
    Execution,
)
from members.models import Member

logger = logging.getLogger(__name__)

# Events one task runs together (settings.AUTOMATIONS_EVENT_BATCH overrides it). Large enough
# that a burst of deactivations is taken in few passes, small enough that one pass stays well
# inside the worker timeout and its first transaction holds its row locks briefly.
BATCH_SIZE = 50
# Side effects of one pass sent at the same time (webhooks and MDM calls wait on the network).
SEND_CONCURRENCY = 8

# Counted apart in `executions_finish`: logs skipped without acting on their target, and logs
# of actions waiting for a "stop on error" action before them.
UNMET = "unmet"
HELD = "held"

DEAD_LETTER_INSIGHT = (
    "The background job for this event stopped {attempts} times before finishing ({why}), so it "
    "was set aside. Check the worker's log, then use “Retry failed actions”."
)


class ActionCrashed(Exception):
    """An action raised an unexpected error; the event will be run again."""


def event_process(*, event_id) -> None:
    """Process one event, and pending ones with it (the task `automations.tasks.process_event`):
    prepare in one transaction, send outside any, record in one transaction (see the module
    docstring)."""
    context = RunContext()
    try:
        try:
            first = _first_step(event_id, context, isolate=False)
        except _Isolate as exc:
            try:
                first = _first_step(event_id, context, isolate=True)
            finally:
                _hand_back(exc.others)
    finally:
        # The events still pending (beyond this batch, or committed while it was taken, their
        # wake-up left to this task) get a task now, before this one sends: another worker takes
        # the next batch meanwhile (events.event_wake).
        _wake_rest()
    if first is None:
        return
    events, executions, jobs, crashed = first

    def record_locks(results) -> None:
        # The locks' outcomes are committed as soon as they are known, while the webhooks may
        # still be waiting on their receivers.
        try:
            recorded = _record_step(results, crashed, isolate=False)
        except _Isolate:
            recorded = _record_step(results, crashed, isolate=True)
        crashed.clear()
        crashed.update(recorded)

    results = _perform(jobs, crashed, record_urgent=record_locks)
    try:
        crashed = _last_step(events, executions, results, crashed, isolate=False)
    except _Isolate:
        crashed = _last_step(events, executions, results, crashed, isolate=True)
    if crashed:
        raise ActionCrashed("; ".join(sum(crashed.values(), [])))


def _hand_back(event_ids) -> None:
    """The failed batch's other events are pending again, and a task may have passed them over
    while this batch held them (`_events_start`): each is queued again (at once: no transaction
    is open here), marked as dispatched so that `_wake_rest` does not queue one more."""
    if not event_ids:
        return
    Event.objects.filter(pk__in=event_ids, status=Event.Status.PENDING).update(
        last_dispatched_at=timezone.now()
    )
    for pk in event_ids:
        transaction.on_commit(lambda pk=pk: event_dispatch(pk), robust=True)


def _wake_rest() -> None:
    try:
        event_wake()
    except Exception:
        # As robust as an on_commit dispatch: the sweeper queues what this could not.
        logger.exception("Could not queue the pending events' next task")


class _Isolate(Exception):
    """An action failed on the fast path, which runs the whole batch without a savepoint per
    action: the transaction is rolled back and done again for the task's own event only, with
    one savepoint per action, so that only the failing action is set aside. Failures are rare;
    savepoints cost a round trip each. `others`: the batch's other events, handed back."""

    others: tuple = ()


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


@contextmanager
def _writes(isolate: bool):
    """On the fast path, row writes of the actions are collected and done in bulk at the end of
    the block; a failure there sends the run to the isolated path like any other. The isolated
    path writes each row at once, inside its action's savepoint."""
    if isolate:
        yield
        return
    try:
        with deferred_writes():
            yield
    except _Isolate:
        raise
    except Exception as exc:
        raise _Isolate from exc


def _first_step(event_id, context: RunContext, *, isolate: bool):
    """Count the run, record the executions and prepare every action, in one transaction.
    Returns (events, executions, jobs, crashed), or None when there is nothing to do."""
    crashed: dict[int, list[str]] = {}
    batch = 1 if isolate else int(getattr(settings, "AUTOMATIONS_EVENT_BATCH", BATCH_SIZE))
    events: list[Event] = []
    try:
        with transaction.atomic():
            events = _events_start(event_id, context.now, batch=batch)
            if not events:
                return None
            executions = _executions_begin(_executions_for(events), context.now)
            with _writes(isolate):
                jobs = _prepare(executions, events, context, crashed, isolate=isolate)
    except _Isolate as exc:
        exc.others = tuple(e.pk for e in events[1:])
        raise
    return events, executions, jobs, crashed


def _last_step(events, executions, results, crashed, *, isolate: bool) -> dict[int, list[str]]:
    """Record the outcomes, settle the executions and the events, in one transaction. Returns
    what crashed (before and while recording)."""
    crashed = {execution_id: list(messages) for execution_id, messages in crashed.items()}
    with transaction.atomic():
        _record_outcomes(results, crashed, isolate=isolate)
        executions_finish([e.pk for e in executions if e.pk not in crashed])
        failing: dict = {}
        for execution in executions:
            if execution.pk in crashed:
                failing.setdefault(execution.event_id, []).extend(crashed[execution.pk])
        if crashed:
            _note_crashes(crashed)
        for event_id, messages in failing.items():
            Event.objects.filter(pk=event_id).update(last_error="; ".join(messages)[:2000])
        Event.objects.filter(
            pk__in=[e.pk for e in events if e.pk not in failing], status=Event.Status.PROCESSING
        ).update(status=Event.Status.DONE, processed_at=timezone.now(), last_error="")
    return crashed


def _record_step(results, crashed, *, isolate: bool) -> dict[int, list[str]]:
    """Record some outcomes in a transaction of their own; returns what crashed."""
    crashed = {execution_id: list(messages) for execution_id, messages in crashed.items()}
    with transaction.atomic():
        _record_outcomes(results, crashed, isolate=isolate)
    return crashed


def _record_outcomes(results, crashed, *, isolate: bool) -> None:
    with _writes(isolate):
        for job, outcome in results:
            with _action_scope(isolate, crashed, job.log.execution_id, job.log.action_kind):
                job.record(outcome)


def _prepare(
    executions: list[Execution],
    events: list[Event],
    context: RunContext,
    crashed: dict[int, list[str]],
    *,
    isolate: bool,
) -> list[Job]:
    """Every action of every execution, in each automation's order (`Action.position`). On the
    fast path each kind is prepared once per wave for the whole batch; with `isolate`, each
    action of each execution in its own savepoint, so one that raises is rolled back alone and
    noted in `crashed` (execution id → what stopped).

    An action set to "stop the remaining actions if this one fails" (continue_on_error off) is
    a gate: the actions after it are prepared only once it finished well. Prepared in waves: up
    to and including each execution's next gate; then the gates' logs are read: all done → the
    next wave; one failed → the rest are logged as skipped, naming the gate; still open (a
    webhook waiting on its receiver or a retry) → the rest wait as held logs, released by
    `executions_finish` when the gate settles."""
    by_event = {event.pk: event for event in events}
    actions: dict[int, list] = {}
    for action in Action.objects.filter(
        automation_id__in=[e.automation_id for e in executions if e.automation_id]
    ).order_by("position", "pk"):
        actions.setdefault(action.automation_id, []).append(action)
    queues: dict[int, tuple[Execution, Event, list]] = {}
    for execution in executions:
        if execution.automation_id is None:
            Execution.objects.filter(pk=execution.pk).update(
                status=Execution.Status.FAILED,
                insight="The automation was deleted before its actions ran.",
                finished_at=context.now,
            )
            continue
        queue = list(actions.get(execution.automation_id, []))
        if queue:
            queues[execution.pk] = (execution, by_event[execution.event_id], queue)
    # Delayed actions (engine/scheduled.py): their scheduled logs so far (none: one query less).
    waiting = scheduled_states(
        [(e, a) for e, _, queue in queues.values() for a in queue if a.is_delayed]
    )
    jobs: list[Job] = []
    while queues:
        wave: list[Prep] = []
        to_schedule: list[Prep] = []
        gates: dict[int, Action] = {}
        for execution, event, queue in queues.values():
            while queue:
                action = queue.pop(0)
                state = waiting.get((execution.pk, action.pk)) if action.is_delayed else None
                if action.is_delayed and state is None:
                    to_schedule.append(Prep(execution, action, event))
                elif state is None or state == ActionLog.Status.SUCCEEDED:
                    # Immediate, or delayed and its time came (a run again after a retry or
                    # a release prepares it again, like any action: claimed targets stay).
                    wave.append(Prep(execution, action, event))
                # A kind that holds the actions after it (Require approval) is a gate too.
                holds = getattr(REGISTRY.get(action.kind), "holds_later", False)
                if (not action.continue_on_error or holds) and queue:
                    gates[execution.pk] = action
                    break
        jobs += _prepare_wave(wave, context, crashed, isolate=isolate)
        if to_schedule:
            flush_deferred()
            logs_schedule(to_schedule)
        if not gates:
            break
        flush_deferred()
        states = _gate_states(gates)
        for execution_id in list(queues):
            execution, event, queue = queues[execution_id]
            gate = gates.get(execution_id)
            if gate is None or not queue:
                del queues[execution_id]
            elif states.get(execution_id) != "done":
                state = states.get(execution_id)
                _hold(
                    execution,
                    event,
                    gate,
                    queue,
                    failed=state in ("failed", "cancelled"),
                    cancelled=state == "cancelled",
                )
                del queues[execution_id]
    return jobs


def _prepare_wave(
    items: list[Prep], context: RunContext, crashed: dict[int, list[str]], *, isolate: bool
) -> list[Job]:
    jobs = _prepare_kinds(items, context, crashed, isolate=isolate)
    positions = {item.action.pk: item.action.position for item in items}
    for job in jobs:
        job.position = positions.get(job.log.action_id, 0)
    return jobs


def _prepare_kinds(
    items: list[Prep], context: RunContext, crashed: dict[int, list[str]], *, isolate: bool
) -> list[Job]:
    jobs: list[Job] = []
    if isolate:
        for item in items:
            with _action_scope(True, crashed, item.execution.pk, item.action.kind):
                jobs += _kind(item.action.kind).prepare(items=[item], context=context)
        return jobs
    for key in REGISTRY:  # items keep execution and position order within each kind
        of_kind = [item for item in items if item.action.kind == key]
        if of_kind:
            with _action_scope(False, crashed, of_kind[0].execution.pk, key):
                jobs += REGISTRY[key].prepare(items=of_kind, context=context)
    unknown = [item for item in items if item.action.kind not in REGISTRY]
    if unknown:
        with _action_scope(False, crashed, unknown[0].execution.pk, unknown[0].action.kind):
            _kind(unknown[0].action.kind)
    return jobs


def _kind(key: str):
    kind = get_kind(key)
    if kind is None:
        raise LookupError(f"No action kind “{key}” is registered.")
    return kind


def _gate_states(gates: dict[int, Action]) -> dict[int, str]:
    """execution id → "done" (every log of its gate succeeded or was skipped having nothing to
    do, or it had no target), "failed", "cancelled" (a delayed gate cancelled before its time)
    or "open" (one query)."""
    states = dict.fromkeys(gates, "done")
    rows = ActionLog.objects.filter(
        Q(*[Q(execution_id=e, action_id=a.pk) for e, a in gates.items()], _connector=Q.OR)
    ).values_list("execution_id", "status", "detail__unmet")
    for execution_id, status, unmet in rows:
        if status in OPEN_STATUSES:
            if states[execution_id] not in ("failed", "cancelled"):
                states[execution_id] = "open"
        elif status == ActionLog.Status.FAILED or unmet:
            states[execution_id] = "failed"
        elif status == ActionLog.Status.CANCELLED and states[execution_id] != "failed":
            # A delayed gate cancelled before its time: what it holds is not run either.
            states[execution_id] = "cancelled"
    return states


def held_insight(gate: Action, *, failed: bool, cancelled: bool = False) -> str:
    label = log_label(gate.kind)
    if cancelled:
        return (
            f"Not run: “{label}” (action {gate.position + 1}) was cancelled before its time, "
            "and it is set to stop the remaining actions of this automation if it does not run."
        )
    if failed:
        return (
            f"Not run: “{label}” (action {gate.position + 1}) failed, and it is set to stop "
            "the remaining actions of this automation when it fails."
        )
    return f"Waiting for “{label}” (action {gate.position + 1}) to finish first."


def _hold(
    execution, event, gate: Action, queue: list, *, failed: bool, cancelled: bool = False
) -> None:
    """One log per action after an unfinished or failed gate: skipped (it failed) or pending,
    held until it settles (`executions_finish` releases or skips them)."""
    now = timezone.now()
    specs = [
        {
            "key": log_key(event.pk, execution.automation_id, action.pk, "held"),
            "execution": execution,
            "action": action,
            "action_kind": action.kind,
            "target_type": ActionLog.TargetType.MEMBER,
            "target_label": (event.member_snapshot.get("full_name", "") or str(event.member_id))[
                :300
            ],
            "status": ActionLog.Status.SKIPPED if failed else ActionLog.Status.PENDING,
            "insight": held_insight(gate, failed=failed, cancelled=cancelled)[:500],
            "finished_at": now if failed else None,
            "detail": {"held_by": gate.pk, **({"unmet": True} if failed else {})},
        }
        for action in queue
    ]
    ActionLog.objects.bulk_create([ActionLog(**spec) for spec in specs], ignore_conflicts=True)


def _perform(
    jobs: list[Job], crashed: dict[int, list[str]], *, record_urgent=None
) -> list[tuple[Job, object]]:
    """The side effects, outside any transaction, a few at a time (they wait on the network and
    touch no database). A job that raises leaves its log running; it is taken over once its
    lease ends.

    Urgent jobs (device locks) have a pool of their own and start at once, beside the others
    (webhooks), so a receiver that hangs delays no lock; `record_urgent`, when given, stores
    their results as soon as they are all in, before the others are waited for. Returns the
    results not recorded yet."""

    def attempt(job: Job):
        try:
            return True, job.perform()
        except Exception as exc:
            logger.exception("Action log %s failed", job.log.pk)
            return False, exc

    def collect(of: list[Job], outcomes) -> list[tuple[Job, object]]:
        results = []
        for job, (ok, outcome) in zip(of, outcomes, strict=True):
            if ok:
                results.append((job, outcome))
            else:
                crashed.setdefault(job.log.execution_id, []).append(
                    _crash(job.log.action_kind, outcome)
                )
        return results

    def in_order(of: list[Job]):
        return [attempt(job) for job in of]

    urgent = [job for job in jobs if job.urgent]
    rest = sorted((job for job in jobs if not job.urgent), key=lambda job: job.position)
    # The other actions of one execution are sent one after the other, in its order (jobs come
    # in the order they were prepared); executions go side by side.
    by_execution: dict[int, list[Job]] = {}
    for job in rest:
        by_execution.setdefault(job.log.execution_id, []).append(job)
    rest = [job for of in by_execution.values() for job in of]
    others = (
        ThreadPoolExecutor(max_workers=min(SEND_CONCURRENCY, len(by_execution))) if rest else None
    )
    try:
        pending = [others.submit(in_order, of) for of in by_execution.values()] if others else []
        if len(urgent) > 1:
            with ThreadPoolExecutor(max_workers=min(SEND_CONCURRENCY, len(urgent))) as pool:
                urgent_outcomes = list(pool.map(attempt, urgent))
        else:
            urgent_outcomes = [attempt(job) for job in urgent]
        results = collect(urgent, urgent_outcomes)
        if record_urgent is not None and results:
            record_urgent(results)
            results = []
        return results + collect(rest, [o for future in pending for o in future.result()])
    finally:
        if others:
            others.shutdown()


def _crash(kind: str, exc: Exception) -> str:
    return f"“{log_label(kind)}” stopped: {type(exc).__name__}: {exc}"


def _note_crashes(crashed: dict[int, list[str]]) -> None:
    for execution_id, messages in crashed.items():
        names = ", ".join(dict.fromkeys(m.split(" stopped")[0] for m in messages))
        Execution.objects.filter(pk=execution_id).update(
            insight=(f"An unexpected error stopped {names}; it is tried again automatically.")[:500]
        )


def _events_start(event_id, now, *, batch: int) -> list[Event]:
    """Count this run under the event's row lock (in the caller's transaction), with up to
    `batch` - 1 pending events nobody holds; or say there is nothing to do (empty list).

    An event whose row another run holds is left to it, without waiting (SKIP LOCKED): that
    run is a batch preparing it (another worker's), which settles it, or, should its fast path
    fail, queues it again (`event_process`); a run killed meanwhile leaves it to the sweeper.
    Waiting instead would idle this worker for the other batch's whole first transaction."""
    event = Event.objects.select_for_update(skip_locked=True).filter(pk=event_id).first()
    if event is None:
        if not Event.objects.filter(pk=event_id).exists():
            logger.warning("Event %s no longer exists", event_id)
        return []
    if event.status in (Event.Status.DONE, Event.Status.DEAD):
        return []
    if (
        event.status == Event.Status.PROCESSING
        and event.last_dispatched_at is not None
        and event.last_dispatched_at > now - attempt_lease()
    ):
        return []  # a live worker started it moments ago
    if event.attempts >= Event.MAX_ATTEMPTS:
        _event_dead_letter(event)
        return []
    events = [event]
    if batch > 1:
        # Pending events only (a processing one may have a live worker; its own task decides),
        # and only rows no other transaction holds, so batches never wait on each other.
        events += (
            Event.objects.select_for_update(skip_locked=True)
            .filter(status=Event.Status.PENDING, attempts__lt=Event.MAX_ATTEMPTS)
            .exclude(pk=event.pk)
            .order_by("occurred_at")[: batch - 1]
        )
    # Every event's attempt is counted (one UPDATE) and committed before any side effect.
    Event.objects.filter(pk__in=[e.pk for e in events]).update(
        attempts=F("attempts") + 1, status=Event.Status.PROCESSING, last_dispatched_at=now
    )
    members = Member.objects.in_bulk({e.member_id for e in events})
    for e in events:
        e.attempts += 1
        e.status = Event.Status.PROCESSING
        e.last_dispatched_at = now
        e.member = members[e.member_id]
    return events


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
    for execution in _executions_for([event]):
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


def _executions_for(events: list[Event]) -> list[Execution]:
    """The events' executions: those already recorded, plus one per enabled automation (that
    existed at the event) whose conditions match the member as recorded at the event."""

    def recorded():
        return {
            (e.event_id, e.automation_id): e
            for e in Execution.objects.filter(event__in=events).select_related("automation")
        }

    executions = recorded()
    automations = list(
        Automation.objects.filter(
            enabled=True, trigger_event__in={event.kind for event in events}
        ).prefetch_related("conditions")
    )
    missing = [
        Execution(
            event=event,
            automation=automation,
            automation_name=automation.name,
            member_id=event.member_id,
        )
        for event in events
        for automation in automations
        if automation.trigger_event == event.kind
        # A timed trigger's event is for the one automation that came due.
        and event.automation_id in (None, automation.pk)
        and automation.created_at <= event.occurred_at
        and (event.pk, automation.pk) not in executions
        and matches(automation.conditions.all(), automation.match, event.member_snapshot)
    ]
    if missing:
        # Unique (event, automation): a concurrent run that created one first wins.
        Execution.objects.bulk_create(missing, ignore_conflicts=True)
        executions = recorded()
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
    for execution_id, status, n, unmet, held, ran in (
        ActionLog.objects.filter(execution_id__in=execution_ids)
        .values_list("execution_id", "status")
        .annotate(
            n=Count("pk"),
            unmet=Count("pk", filter=Q(detail__unmet=True)),
            held=Count("pk", filter=Q(detail__held_by__isnull=False)),
            # A delayed action's schedule that ran: its targets' logs say how it went.
            ran=Count(
                "pk",
                filter=Q(
                    target_type=ActionLog.TargetType.SCHEDULE, status=ActionLog.Status.SUCCEEDED
                ),
            ),
        )
    ):
        counts[execution_id][status] += n - unmet - ran
        # Skipped without acting on the target: counted with the failures.
        counts[execution_id][UNMET] += unmet
        if status == ActionLog.Status.PENDING:
            counts[execution_id][HELD] += held
    _release_held(counts)
    settled = []
    waiting = []
    for execution in Execution.objects.select_for_update().filter(pk__in=execution_ids):
        if execution.is_finished:
            continue
        count = counts[execution.pk]
        opened = sum(count[status] for status in OPEN_STATUSES)
        if opened:
            # Only delayed actions (and what they hold) left: scheduled, not running.
            if count[ActionLog.Status.SCHEDULED] and (
                count[ActionLog.Status.SCHEDULED] + count[HELD] == opened
            ):
                waiting.append(execution)
            continue
        failed = count[ActionLog.Status.FAILED] + count[UNMET]
        done = (
            count[ActionLog.Status.SUCCEEDED]
            + count[ActionLog.Status.SKIPPED]
            + count[ActionLog.Status.CANCELLED]
        )
        if not failed:
            execution.status = Execution.Status.SUCCEEDED
            execution.insight = "" if done else "This automation has no actions."
            if count[ActionLog.Status.CANCELLED]:
                execution.insight = cancelled_insight(execution.pk)
        else:
            execution.status = (
                Execution.Status.PARTIALLY_FAILED if done else Execution.Status.FAILED
            )
            insights = list(
                dict.fromkeys(
                    ActionLog.objects.filter(
                        Q(status=ActionLog.Status.FAILED)
                        | Q(status=ActionLog.Status.SKIPPED, detail__unmet=True),
                        execution=execution,
                    )
                    .order_by("pk")
                    .values_list("insight", flat=True)[:20]
                )
            )
            prefix = f"{failed} of {failed + done} actions were not done. " if failed > 1 else ""
            execution.insight = (prefix + " ".join(insights[:3]))[:500]
        execution.finished_at = timezone.now()
        execution.started_at = execution.started_at or execution.finished_at
        settled.append(execution)
    if settled:
        rows_update(Execution, settled, ["status", "insight", "started_at", "finished_at"])
    if waiting:
        executions_wait(waiting, counts)


def _release_held(counts: dict[int, Counter]) -> None:
    """Executions whose only open logs are held ones (see `_prepare`): their gate settled. It
    failed: the held actions are skipped, naming it (counted as not done). It finished well:
    the held logs are dropped and the execution is run again (a task on commit), which
    prepares the actions after the gate. `counts` is updated to match."""
    # Held logs besides scheduled ones only: a scheduled log that is not their gate must not
    # keep them waiting for its time (their gate's state decides below).
    waiting = [
        pk
        for pk, count in counts.items()
        if count[HELD]
        and count[HELD]
        == sum(count[status] for status in OPEN_STATUSES) - count[ActionLog.Status.SCHEDULED]
    ]
    if not waiting:
        return
    held = list(
        ActionLog.objects.filter(
            execution_id__in=waiting,
            status=ActionLog.Status.PENDING,
            detail__held_by__isnull=False,
        ).select_related("execution")
    )
    gates = {
        (log.execution_id, log.detail["held_by"]): Action(pk=log.detail["held_by"]) for log in held
    }
    for action in Action.objects.filter(pk__in={a.pk for a in gates.values()}):
        for key in gates:
            if key[1] == action.pk:
                gates[key] = action
    states = _gate_states({execution_id: gate for (execution_id, _), gate in gates.items()})
    release: set[int] = set()
    for log in held:
        gate = gates[(log.execution_id, log.detail["held_by"])]
        state = states.get(log.execution_id, "done")
        if state == "open":
            continue  # a delayed gate, scheduled: what it holds waits for its time
        if state in ("failed", "cancelled") or not gate.kind:  # a deleted gate counts as failed
            log.detail = {**log.detail, "unmet": True}
            log.status, log.finished_at = ActionLog.Status.SKIPPED, timezone.now()
            log.insight = (
                held_insight(gate, failed=True, cancelled=state == "cancelled")[:500]
                if gate.kind
                else ("Not run: the action it waited for was removed from the automation.")
            )
            log.save(update_fields=["detail", "status", "finished_at", "insight"])
            counts[log.execution_id][ActionLog.Status.PENDING] -= 1
            counts[log.execution_id][UNMET] += 1
            counts[log.execution_id][HELD] -= 1
        else:
            release.add(log.execution_id)
    if release:
        ActionLog.objects.filter(
            execution_id__in=release, status=ActionLog.Status.PENDING, detail__held_by__isnull=False
        ).delete()
        for execution_id in release:
            # Still open: the run that prepares the released actions settles it.
            counts[execution_id][HELD] = 0
            counts[execution_id][ActionLog.Status.PENDING] = max(
                1, counts[execution_id][ActionLog.Status.PENDING]
            )
            transaction.on_commit(lambda pk=execution_id: _run_again(pk), robust=True)


def _run_again(execution_id: int) -> None:
    from django_q.tasks import async_task

    async_task("automations.tasks.run_execution", execution_id, group="automations.retries")


def log_resume(*, log_id: int) -> None:
    """Run a due attempt of one webhook or MDM log (the task `automations.tasks.retry_action`),
    then settle its execution: started in one transaction, sent outside, recorded in another."""
    with transaction.atomic():
        # A device lock: the device's row first, then the log's, the order a run takes them in
        # (actions/mdm_lock.py), so a retry and a run on the same device never deadlock.
        Asset.objects.select_for_update().filter(
            pk__in=ActionLog.objects.filter(
                pk=log_id, target_type=ActionLog.TargetType.ASSET
            ).values("asset_id")
        ).order_by("pk").first()
        log = ActionLog.objects.select_for_update().filter(pk=log_id).first()
        if log is None:
            return
        kind = get_kind(log.action_kind)
        resume = kind.resume if kind is not None and kind.retry_setting else None
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
        jobs = _prepare([execution], [execution.event], context, crashed, isolate=True)
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
