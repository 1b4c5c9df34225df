"""The sweeper: events no task picked up and retries whose schedule was lost are dispatched
again; everything else is left alone. And the schedule that runs it every minute."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone
from django_q.models import Schedule

from automations import tasks
from automations.engine.common import attempt_lease
from automations.engine.events import (
    SWEEPER_SCHEDULE_NAME,
    WAKE_WINDOW,
    ensure_sweeper_schedule,
    events_sweep,
)
from automations.models import ActionLog, Automation, Event, Execution
from automations.tests.engine_factories import fast_retries, make_engine_automation, use_sync_q
from automations.tests.servers import WebhookReceiver
from conftest import make_member
from members.services import member_deactivate

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def sync_q(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)
    fast_retries(settings)


@pytest.fixture
def receiver():
    with WebhookReceiver() as hook:
        yield hook


def lost_event(receiver, django_capture_on_commit_callbacks) -> Event:
    """A deactivation whose enqueue never happened (crash between commit and enqueue)."""
    make_engine_automation(webhook_url=receiver.url())
    with django_capture_on_commit_callbacks(execute=False):
        member_deactivate(member=make_member(), actor=None, reason="Last day")
    return Event.objects.get()


def another_event(like: Event, **fields) -> Event:
    """An event of the same kind and snapshot for another member, written directly."""
    return Event.objects.create(
        kind=like.kind,
        member=make_member(),
        member_snapshot=like.member_snapshot,
        occurred_at=timezone.now(),
        **fields,
    )


def test_an_event_no_task_waits_for_is_dispatched_by_the_next_sweep(
    receiver, django_capture_on_commit_callbacks
):
    """A pending event whose task was lost with a killed cluster (the next batch's task of a
    chain, events.event_wake) gets one from the sweep after WAKE_WINDOW, not REDISPATCH_AFTER."""
    event = lost_event(receiver, django_capture_on_commit_callbacks)
    waiting = timezone.now() - timedelta(seconds=5)
    Event.objects.filter(pk=event.pk).update(last_dispatched_at=waiting)

    assert events_sweep() == {"events": 0, "actions": 0}  # a task queued moments ago takes it
    assert receiver.requests == []

    lost = timezone.now() - WAKE_WINDOW - timedelta(seconds=1)
    Event.objects.filter(pk=event.pk).update(last_dispatched_at=lost)
    assert events_sweep() == {"events": 1, "actions": 0}

    event.refresh_from_db()
    assert (event.status, event.attempts) == (Event.Status.DONE, 1)
    assert len(receiver.requests) == 1


def test_a_pending_event_is_left_to_a_batch_under_way(receiver, django_capture_on_commit_callbacks):
    """While a batch runs, it wakes the next one itself when it has committed: the sweep does
    not start a second chain beside it. Once that batch's lease is over, it does."""
    event = lost_event(receiver, django_capture_on_commit_callbacks)
    running = another_event(
        event,
        status=Event.Status.PROCESSING,
        attempts=1,
        last_dispatched_at=timezone.now() - timedelta(seconds=10),
    )

    assert events_sweep() == {"events": 0, "actions": 0}
    event.refresh_from_db()
    assert event.status == Event.Status.PENDING

    Event.objects.filter(pk=running.pk).update(
        last_dispatched_at=timezone.now() - attempt_lease() - timedelta(seconds=1)
    )
    assert events_sweep() == {"events": 1, "actions": 0}
    event.refresh_from_db()
    assert (event.status, event.attempts) == (Event.Status.DONE, 1)


def test_events_never_enqueued_are_dispatched_after_a_few_minutes(
    receiver, django_capture_on_commit_callbacks
):
    event = lost_event(receiver, django_capture_on_commit_callbacks)
    other = another_event(event)
    six_minutes_ago = timezone.now() - timedelta(minutes=6)
    Event.objects.update(occurred_at=six_minutes_ago)
    Automation.objects.update(created_at=six_minutes_ago - timedelta(minutes=1))

    # Each one stale on its own and dispatched in turn; here (sync mode) the first one's task
    # runs at once and takes both, so the second is no longer pending when its turn comes.
    assert events_sweep() == {"events": 1, "actions": 0}

    for each in (event, other):
        each.refresh_from_db()
        assert (each.status, each.attempts) == (Event.Status.DONE, 1)
    assert set(Execution.objects.values_list("status", flat=True)) == {"succeeded"}
    assert len(receiver.requests) == 2


def test_a_processing_event_whose_worker_died_is_taken_over(
    receiver, django_capture_on_commit_callbacks
):
    event = lost_event(receiver, django_capture_on_commit_callbacks)
    Event.objects.filter(pk=event.pk).update(
        status=Event.Status.PROCESSING,
        attempts=1,
        last_dispatched_at=timezone.now() - timedelta(minutes=2),
    )
    assert events_sweep()["events"] == 0  # started two minutes ago: not stale yet

    Event.objects.filter(pk=event.pk).update(
        last_dispatched_at=timezone.now() - timedelta(minutes=10)
    )
    assert events_sweep()["events"] == 1
    event.refresh_from_db()
    assert (event.status, event.attempts) == (Event.Status.DONE, 2)


def test_done_and_dead_events_are_left_alone(receiver, django_capture_on_commit_callbacks):
    event = lost_event(receiver, django_capture_on_commit_callbacks)
    long_ago = timezone.now() - timedelta(hours=1)
    for status in (Event.Status.DONE, Event.Status.DEAD):
        Event.objects.filter(pk=event.pk).update(status=status, occurred_at=long_ago)
        assert events_sweep()["events"] == 0
    assert receiver.requests == []


def test_an_overdue_retry_is_dispatched(receiver, django_capture_on_commit_callbacks):
    receiver.answer(503)
    make_engine_automation(webhook_url=receiver.url())
    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=make_member(), actor=None, reason="Last day")
    log = ActionLog.objects.get()
    assert log.status == ActionLog.Status.RETRYING
    # The one-off schedule got lost, and the retry time passed long ago.
    Schedule.objects.filter(func="automations.tasks.retry_action").delete()
    ActionLog.objects.filter(pk=log.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=5)
    )

    assert events_sweep() == {"events": 0, "actions": 1}

    log.refresh_from_db()
    assert (log.status, log.attempts) == (ActionLog.Status.SUCCEEDED, 2)
    assert Execution.objects.get().status == Execution.Status.SUCCEEDED


def test_sweep_task_reports_what_it_did():
    assert tasks.sweep_events() == {"events": 0, "actions": 0}


def test_sweeper_schedule_runs_every_minute_forever():
    Schedule.objects.filter(name=SWEEPER_SCHEDULE_NAME).delete()
    migration = importlib.import_module("automations.migrations.0003_sweeper_schedule")

    migration.create_sweeper(apps, None)
    migration.create_sweeper(apps, None)  # idempotent
    ensure_sweeper_schedule()

    schedule = Schedule.objects.get(name=SWEEPER_SCHEDULE_NAME)
    assert schedule.func == "automations.tasks.sweep_events"
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        Schedule.MINUTES,
        1,
        -1,
    )


def test_the_cluster_is_configured_for_the_engine(settings):
    q = settings.Q_CLUSTER
    assert q["timeout"] < q["retry"]
    assert q["catch_up"] is False
    assert q["max_attempts"] == Event.MAX_ATTEMPTS
