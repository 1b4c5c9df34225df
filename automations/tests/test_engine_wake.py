"""A burst of events queues one task, not one per event (events.event_wake): each task takes a
batch of pending events and, once it has committed that batch, queues the task for the next
one. These tests use the ORM broker as the cluster does (no sync mode) and run the queued tasks
the way a worker does (`work_off_queue`)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from automations import tasks
from automations.engine import events as engine_events
from automations.engine import runner
from automations.models import Event, Execution
from automations.tests.engine_factories import make_engine_automation, work_off_queue
from conftest import make_entitlement, make_license, make_member
from licenses.models import Entitlement, License
from members.services import member_deactivate

pytestmark = pytest.mark.django_db


@pytest.fixture
def revoking():
    """An automation that revokes the leaver's licenses (nothing leaves the portal)."""
    make_engine_automation(user_based=True)
    return make_license(kind=License.Kind.USER)


def _leavers(n: int, user_license) -> list:
    members = []
    for _ in range(n):
        member = make_member()
        make_entitlement(license=user_license, member=member)
        members.append(member)
    return members


def _deactivate(members, capture) -> None:
    with capture(execute=True):
        for member in members:
            member_deactivate(member=member, actor=None, reason="Last day")


def test_a_burst_queues_one_task_and_each_batch_queues_the_next(
    revoking, settings, django_capture_on_commit_callbacks
):
    settings.AUTOMATIONS_EVENT_BATCH = 2
    members = _leavers(5, revoking)

    _deactivate(members, django_capture_on_commit_callbacks)

    assert OrmQ.objects.count() == 1  # the first event's task; the four others wait for it
    assert Event.objects.filter(status=Event.Status.PENDING).count() == 5
    # Batches of 2, 2 and 1: three tasks, each queued by the one before it, and nothing after.
    assert work_off_queue() == 3
    assert set(Event.objects.values_list("status", "attempts")) == {(Event.Status.DONE, 1)}
    assert Execution.objects.filter(status="succeeded").count() == 5
    assert Entitlement.objects.live().count() == 0
    assert OrmQ.objects.count() == 0


def test_an_event_committed_while_a_batch_was_taken_gets_its_task_from_that_batch(
    revoking, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """The race the wake-up must survive: an event commits after a task's batch was chosen but
    while that task's event still looked pending and dispatched, so the event left its task to
    that one (its own wake-up queued nothing). The task, after committing, queues it."""
    first, late = _leavers(2, revoking)
    _deactivate([first], django_capture_on_commit_callbacks)
    assert OrmQ.objects.count() == 1
    taken = runner._events_start

    def then_a_late_event(event_id, now, *, batch):
        events = taken(event_id, now, batch=batch)
        monkeypatch.setattr(runner, "_events_start", taken)
        # Its on_commit wake-up is not run (not captured): as if it had found the task waiting.
        member_deactivate(member=late, actor=None, reason="Last day")
        return events

    monkeypatch.setattr(runner, "_events_start", then_a_late_event)
    # The first event's task took only the first event, then queued the late one's task, the
    # only way that one could be queued here.
    assert work_off_queue() == 2
    assert set(Event.objects.values_list("member", "status", "attempts")) == {
        (first.pk, Event.Status.DONE, 1),
        (late.pk, Event.Status.DONE, 1),
    }
    assert Entitlement.objects.live().count() == 0


@pytest.mark.parametrize(
    ("dispatched_ago", "queued"),
    [(timedelta(seconds=5), 0), (engine_events.WAKE_WINDOW + timedelta(seconds=1), 1)],
    ids=["a task is waiting", "the waiting task may be lost"],
)
def test_a_new_event_queues_its_own_task_only_when_none_is_waiting(
    revoking, dispatched_ago, queued, django_capture_on_commit_callbacks
):
    waiting, new = _leavers(2, revoking)
    _deactivate([waiting], django_capture_on_commit_callbacks)
    OrmQ.objects.all().delete()
    Event.objects.filter(member=waiting).update(last_dispatched_at=timezone.now() - dispatched_ago)

    _deactivate([new], django_capture_on_commit_callbacks)

    assert OrmQ.objects.count() == queued
    event = Event.objects.get(member=new)
    assert (event.last_dispatched_at is not None) == bool(queued)


def test_a_broker_error_on_the_next_wake_up_does_not_fail_the_batch(
    revoking, settings, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    """The batch's own events are done; the ones beyond it wait, unmarked, for the sweeper (or
    the next event's wake-up)."""
    settings.AUTOMATIONS_EVENT_BATCH = 1
    members = _leavers(2, revoking)
    _deactivate(members, django_capture_on_commit_callbacks)
    first = Event.objects.get(member=members[0])

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(engine_events, "event_dispatch", broker_down)
    tasks.process_event(str(first.pk))

    first.refresh_from_db()
    assert first.status == Event.Status.DONE
    second = Event.objects.get(member=members[1])
    assert (second.status, second.last_dispatched_at) == (Event.Status.PENDING, None)
    assert "Could not queue the pending events' next task" in caplog.text
    monkeypatch.undo()
    assert engine_events.events_sweep(now=timezone.now() + timedelta(minutes=10))["events"] == 1


def test_the_event_is_marked_before_its_task_is_queued(
    revoking, monkeypatch, django_capture_on_commit_callbacks
):
    """A worker may start the task before the wake-up returns. Marked after the enqueue, the
    row would be locked by that UPDATE just as the task takes its event (SKIP LOCKED): the task
    passed over its own event, saw the mark, queued nothing, and a 10,000-leaver burst stalled
    until the sweeper."""
    (member,) = _leavers(1, revoking)
    marks = []
    monkeypatch.setattr(
        engine_events,
        "event_dispatch",
        lambda event_id: marks.append(Event.objects.get(pk=event_id).last_dispatched_at),
    )

    _deactivate([member], django_capture_on_commit_callbacks)

    assert len(marks) == 1
    assert marks[0] is not None


def test_a_broker_error_on_the_first_wake_up_leaves_no_mark(
    revoking, monkeypatch, django_capture_on_commit_callbacks
):
    """Nothing was queued, so nothing may look queued: the next event queues its own task."""
    first, second = _leavers(2, revoking)

    def broker_down(event_id):
        raise ConnectionError("broker down")

    monkeypatch.setattr(engine_events, "event_dispatch", broker_down)
    _deactivate([first], django_capture_on_commit_callbacks)  # on_commit is robust: no error
    assert Event.objects.get(member=first).last_dispatched_at is None
    monkeypatch.undo()

    _deactivate([second], django_capture_on_commit_callbacks)

    assert OrmQ.objects.count() == 1
    assert work_off_queue() == 1  # the second's task takes the first event too
    assert set(Event.objects.values_list("status", flat=True)) == {Event.Status.DONE}
