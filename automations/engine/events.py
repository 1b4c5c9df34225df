"""Recording member events, handing them to the worker, and the sweeper that re-dispatches
whatever no task picked up (a crash between commit and enqueue, a lost broker message, a killed
worker)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from automations.actions import REGISTRY
from automations.conditions import member_snapshot
from automations.engine.common import attempt_lease
from automations.models import ActionLog, Event

logger = logging.getLogger(__name__)

SWEEPER_SCHEDULE_NAME = "automations.sweep_events"
# An event still pending or processing this long after its last dispatch is dispatched again.
# Longer than the worker timeout, so a task that is merely slow is never doubled.
REDISPATCH_AFTER = timedelta(minutes=5)
# A retry whose time passed this long ago has lost its schedule: dispatch it from the sweeper.
RETRY_GRACE = timedelta(minutes=2)
# Work done by one sweep; the next minute's sweep takes the rest.
SWEEP_BATCH = 500
# A pending event dispatched this recently stands for a task that is queued and has not taken
# its batch yet: a new event leaves its processing to that task (`event_wake`). Past it, the
# task may have been lost, and a new event queues one of its own again.
WAKE_WINDOW = timedelta(seconds=30)


def event_record(
    *,
    member,
    kind: str,
    automation=None,
    key: str | None = None,
    occurred_at: datetime | None = None,
    trigger: dict[str, Any] | None = None,
) -> Event:
    """Write the event for a member status transition, in the caller's transaction, and
    enqueue its processing once that transaction commits (ids only). A timed trigger
    (automations/lastday.py) passes the one automation it is for, its key, its due time and
    what the trigger was (kept in the snapshot under "trigger"); it has no actor.

    The snapshot is the member as conditions see them at the event, plus the deactivation
    reason and the devices in their custody: the actions work on those devices even if they are
    checked in before the worker runs, and every re-run targets the same set.
    """
    custody = sorted(member.assets_in_custody.values_list("pk", flat=True))
    snapshot = event_snapshot(
        member_snapshot(member, custody_asset_ids=custody),
        custody_asset_ids=custody,
        deactivation_reason=member.deactivation_reason,
    )
    if trigger is not None:
        snapshot["trigger"] = trigger
    event = Event.objects.create(
        kind=kind,
        member=member,
        occurred_at=occurred_at or timezone.now(),
        # A timed trigger has no actor: nobody clicked.
        actor_id=None if automation is not None else member.deactivated_by_id,
        member_snapshot=snapshot,
        automation=automation,
        key=key,
    )
    # robust: a broker that is down must not turn a committed deactivation into an error page;
    # the sweeper dispatches the event a few minutes later.
    event_id = event.pk
    transaction.on_commit(lambda: event_wake(event_id), robust=True)
    return event


def event_snapshot(
    snapshot: dict[str, Any], *, custody_asset_ids: list[int], deactivation_reason: str
) -> dict[str, Any]:
    """What an event carries of its member: the condition fields (`member_snapshot`), the
    deactivation reason and the devices in their custody, in id order. Also what the preview
    (automations/selectors_preview.py) matches and plans on."""
    return {
        **snapshot,
        "deactivation_reason": deactivation_reason,
        "custody_asset_ids": sorted(custody_asset_ids),
    }


def event_dispatch(event_id: Any) -> None:
    """Enqueue the task that processes the event."""
    from django_q.tasks import async_task

    async_task(
        "automations.tasks.process_event",
        str(event_id),
        task_name=f"event-{event_id}",
        group="automations.events",
    )


def event_wake(
    event_id: Any = None, *, now: datetime | None = None, unless_running: bool = False
) -> bool:
    """Make sure a task is queued that will take the event (`event_id`), or, without one, the
    oldest pending event: called when an event commits and by every task once its batch is
    taken (`runner.event_process`). Returns whether a task was queued.

    A burst of deactivations queues one task, not one per member: a task takes a batch of
    pending events and, once that batch is committed, wakes the next one (another worker can
    take it while this one sends), so 1,000 leavers are about 20 tasks. Nothing waits on this
    for correctness: a pending event whose wake-up was left to a task is taken by that task's
    batch or woken by its check after committing, which comes after the event's commit (a
    task marked in the window has not passed that check yet); a lost task is replaced after
    WAKE_WINDOW by the next event, and by the sweeper. `unless_running` (the sweeper): not while
    a batch is under way (an event processing, started within the attempt lease), which wakes
    the next batch itself when it has committed."""
    now = now or timezone.now()
    pending = Event.objects.filter(status=Event.Status.PENDING)
    waiting = Q(status=Event.Status.PENDING, last_dispatched_at__gt=now - WAKE_WINDOW)
    if unless_running:
        waiting |= Q(status=Event.Status.PROCESSING, last_dispatched_at__gt=now - attempt_lease())
    waiting = Event.objects.filter(waiting)
    if event_id is not None:
        waiting = waiting.exclude(pk=event_id)
    if waiting.exists():
        return False
    if event_id is None:
        event_id = pending.order_by("occurred_at").values_list("pk", flat=True).first()
        if event_id is None:
            return False
    # Marked before it is queued: a worker may start the task at once, and a mark written after
    # the enqueue would hold the row locked just as the task takes its event (SKIP LOCKED), so
    # the task would pass over its own event, see the mark and queue nothing; a burst would
    # then wait for the sweeper (measured: a 36 s stall in a 10,000-leaver drain).
    marked = Event.objects.filter(pk=event_id, status=Event.Status.PENDING).update(
        last_dispatched_at=now
    )
    try:
        event_dispatch(event_id)
    except Exception:
        # Nothing was queued: a mark would hold the next events back for WAKE_WINDOW.
        if marked:
            Event.objects.filter(pk=event_id, last_dispatched_at=now).update(
                last_dispatched_at=None
            )
        raise
    return True


def action_log_dispatch(log_id: int) -> None:
    """Enqueue one attempt of a webhook or MDM action log."""
    from django_q.tasks import async_task

    async_task("automations.tasks.retry_action", log_id, group="automations.retries")


def events_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Re-dispatch events no task has finished within REDISPATCH_AFTER of their last dispatch,
    and retries and delayed actions whose time passed without their schedule running. Safe to
    run any time: every task re-checks under a row lock whether there is work left."""
    now = now or timezone.now()
    stale = now - getattr(settings, "AUTOMATIONS_REDISPATCH_AFTER", REDISPATCH_AFTER)
    events = list(
        Event.objects.filter(status__in=[Event.Status.PENDING, Event.Status.PROCESSING])
        .filter(
            Q(last_dispatched_at__lt=stale)
            | Q(last_dispatched_at__isnull=True, occurred_at__lt=stale)
        )
        .order_by("occurred_at")
        .values_list("pk", "status", "last_dispatched_at")[:SWEEP_BATCH]
    )
    redispatched = 0
    for pk, status, last in events:
        # A pending event is marked as dispatched (conditionally: of two sweepers, one sends it)
        # so the next sweeps leave it alone while it waits in the queue. A processing event is
        # not: its last_dispatched_at is when its last run started, which tells the run we send
        # that the previous one is dead and may be taken over.
        if status == Event.Status.PENDING and not Event.objects.filter(
            pk=pk, status=status, last_dispatched_at=last
        ).update(last_dispatched_at=now):
            continue
        event_dispatch(pk)
        redispatched += 1
    # Events left pending by a chain of batches that broke (a cluster killed with the next
    # batch's task in hand): once no batch is under way, the oldest gets a task within a
    # minute or two, not REDISPATCH_AFTER. A batch under way wakes the next one itself.
    if event_wake(now=now, unless_running=True):
        redispatched += 1

    overdue = now - RETRY_GRACE
    log_ids = list(
        ActionLog.objects.filter(
            status__in=[ActionLog.Status.RETRYING, ActionLog.Status.RUNNING],
            next_attempt_at__lt=overdue,
            # The kinds with retries of their own (ActionKind.retry_setting).
            action_kind__in=[k.key for k in REGISTRY.values() if k.retry_setting],
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for log_id in log_ids:
        action_log_dispatch(log_id)
    # Delayed actions still waiting well after their time: their schedule was lost.
    from automations.engine.scheduled import scheduled_dispatch_overdue

    late = scheduled_dispatch_overdue(now=now, grace=RETRY_GRACE, limit=SWEEP_BATCH)
    if redispatched or log_ids or late:
        logger.warning(
            "Sweeper re-dispatched %s event(s), %s overdue action(s) and %s overdue scheduled "
            "action(s)",
            redispatched,
            len(log_ids),
            late,
        )
    # "actions": retries and delayed actions alike.
    return {"events": redispatched, "actions": len(log_ids) + late}


def ensure_sweeper_schedule(schedule_model=None) -> None:
    """Create the every-minute sweeper schedule unless it exists. Catch-up is off for the whole
    cluster (Q_CLUSTER catch_up False), so a stopped cluster does not run a burst of sweeps.
    Called by migration 0003 with the historical model."""
    if schedule_model is None:
        from django_q.models import Schedule as schedule_model
    schedule_model.objects.get_or_create(
        name=SWEEPER_SCHEDULE_NAME,
        defaults={
            "func": "automations.tasks.sweep_events",
            "schedule_type": "I",  # Schedule.MINUTES
            "minutes": 1,
            "repeats": -1,
            "next_run": timezone.now(),
        },
    )
