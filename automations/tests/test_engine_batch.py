"""One task runs its event with other pending events (the batch), and every event still gets
its own attempt count, executions, logs and statuses; the other events' tasks then do nothing."""

from __future__ import annotations

import pytest
from standardwebhooks import Webhook

from assets.models import Asset, MDMCommand
from automations import tasks
from automations.models import ActionLog, Event, Execution
from automations.tests.engine_factories import (
    SECRET,
    make_connection,
    make_device,
    make_engine_automation,
    mdm_commands,
    use_sync_q,
)
from automations.tests.servers import WebhookReceiver
from conftest import make_entitlement, make_license, make_member
from licenses.models import Entitlement, License
from members.services import member_deactivate

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def sync_q(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)


@pytest.fixture
def receiver():
    with WebhookReceiver() as hook:
        yield hook


def _leaver(connection, user_license):
    member = make_member()
    make_device(member, connection)
    make_device(member, connection)
    make_entitlement(license=user_license, member=member)
    return member


def test_one_task_runs_the_pending_events_each_on_its_own(
    receiver, django_capture_on_commit_callbacks
):
    connection = make_connection()
    user_license = make_license(kind=License.Kind.USER)
    mdm_commands(enabled=True)
    for name in ("First", "Second"):
        make_engine_automation(webhook_url=receiver.url(), name=name, user_based=True, mdm=True)
    members = [_leaver(connection, user_license) for _ in range(3)]
    with django_capture_on_commit_callbacks() as callbacks:
        for member in members:
            member_deactivate(member=member, actor=None, reason="Last day")
    events = list(Event.objects.order_by("occurred_at"))

    tasks.process_event(str(events[0].pk))  # takes the two other pending events with it

    for event in events:
        event.refresh_from_db()
        assert (event.status, event.attempts) == (Event.Status.DONE, 1)
        assert event.executions.count() == 2
    assert set(Execution.objects.values_list("status", flat=True)) == {"succeeded"}
    assert Entitlement.objects.live().count() == 0
    # Per event: the first automation locks both devices, the second leaves them to it.
    for event in events:
        locks = ActionLog.objects.filter(execution__event=event, action_kind="mdm_lock")
        assert sorted(locks.values_list("status", flat=True)) == [
            "skipped",
            "skipped",
            "succeeded",
            "succeeded",
        ]
    assert MDMCommand.objects.count() == 6
    assert Asset.objects.filter(lock_state=Asset.LockState.LOCKED).count() == 6
    assert len(receiver.requests) == 6
    for request in receiver.requests:
        Webhook(SECRET).verify(request.body, request.headers)

    before = sorted(ActionLog.objects.values_list("key", "status", "attempts"))
    for callback in callbacks:  # the three events' own tasks: nothing left to do
        callback()
    assert sorted(ActionLog.objects.values_list("key", "status", "attempts")) == before
    assert len(receiver.requests) == 6
    assert set(Event.objects.values_list("attempts", flat=True)) == {1}


def test_a_batch_decrypts_each_webhook_secret_once_and_signs_every_delivery(
    receiver, monkeypatch, django_capture_on_commit_callbacks
):
    from automations.models import Action

    decrypted = []
    get_secret = Action.get_secret

    def counted(action):
        decrypted.append(action.pk)
        return get_secret(action)

    monkeypatch.setattr(Action, "get_secret", counted)
    for name in ("First", "Second"):
        make_engine_automation(webhook_url=receiver.url(), name=name)
    with django_capture_on_commit_callbacks() as callbacks:
        for member in [make_member() for _ in range(4)]:
            member_deactivate(member=member, actor=None, reason="Last day")

    callbacks[0]()  # the batch takes the four events

    assert sorted(decrypted) == sorted(Action.objects.values_list("pk", flat=True))
    assert len(receiver.requests) == 8
    ids = set()
    for request in receiver.requests:
        Webhook(SECRET).verify(request.body, request.headers)
        ids.add(request.headers["webhook-id"])
    assert len(ids) == 8


def test_a_batch_that_fails_runs_the_task_event_alone_and_leaves_the_others_pending(
    receiver, django_capture_on_commit_callbacks, monkeypatch
):
    from automations.engine import runner

    connection = make_connection()
    user_license = make_license(kind=License.Kind.USER)
    mdm_commands(enabled=True)
    make_engine_automation(webhook_url=receiver.url(), user_based=True, mdm=True)
    members = [_leaver(connection, user_license) for _ in range(2)]
    with django_capture_on_commit_callbacks() as callbacks:
        for member in members:
            member_deactivate(member=member, actor=None, reason="Last day")
    first, second = Event.objects.order_by("occurred_at")

    def broken(**kwargs):
        raise RuntimeError("database went away")

    assert len(callbacks) == 2  # each event's wake-up (the second finds the first's task waiting)
    with monkeypatch.context() as patched:
        patched.setattr(runner.REGISTRY["revoke_licenses"], "prepare", broken)
        with (
            django_capture_on_commit_callbacks() as handed_back,
            pytest.raises(runner.ActionCrashed),
        ):
            tasks.process_event(str(first.pk))

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.attempts) == (Event.Status.PROCESSING, 1)
    assert (second.status, second.attempts) == (Event.Status.PENDING, 0)
    assert len(receiver.requests) == 1

    assert len(handed_back) == 1  # the second event, queued again
    for callback in handed_back:
        callback()
    second.refresh_from_db()
    assert (second.status, second.attempts) == (Event.Status.DONE, 1)
    assert len(receiver.requests) == 2


def test_a_batch_counts_its_revoked_seats_once_at_the_end(django_capture_on_commit_callbacks):
    """The license rows every batch shares are locked by one UPDATE at the end of the batch's
    first transaction (engine.common.write_last), not at the first revocation: two workers'
    batches then do not queue behind each other's whole preparation. The counts stay exact."""
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    shared = make_license(kind=License.Kind.USER, seats=50)
    other = make_license(kind=License.Kind.USER, seats=50)
    make_engine_automation(name="Revoke", user_based=True)
    members = []
    for _ in range(4):
        member = make_member()
        make_entitlement(license=shared, member=member)
        make_entitlement(license=other, member=member)
        members.append(member)
    with django_capture_on_commit_callbacks():
        for member in members:
            member_deactivate(member=member, actor=None, reason="Last day")
    first = Event.objects.order_by("occurred_at").first()

    with CaptureQueriesContext(db) as queries:
        tasks.process_event(str(first.pk))

    statements = [q["sql"] for q in queries.captured_queries]
    seat_updates = [i for i, sql in enumerate(statements) if 'UPDATE "licenses_license"' in sql]
    revocations = [i for i, sql in enumerate(statements) if 'UPDATE "licenses_entitlement"' in sql]
    assert len(revocations) == 1  # one for the whole batch, each event's with its own reason
    assert len(seat_updates) == 1  # one for the whole batch
    assert seat_updates[0] > max(revocations)
    shared.refresh_from_db()
    other.refresh_from_db()
    assert (shared.seats_used, other.seats_used) == (0, 0)
    for member in members:
        member.refresh_from_db()
        assert member.live_entitlements_count == 0
        execution = Execution.objects.get(member=member)
        reasons = set(
            Entitlement.objects.filter(member=member).values_list("revoked_reason", flat=True)
        )
        assert reasons == {
            f"Revoked by automation “Revoke” (execution {execution.pk}) after the member was "
            "deactivated."
        }


def test_a_batch_that_fails_queues_its_other_events_again(
    receiver, django_capture_on_commit_callbacks, monkeypatch
):
    """Their own tasks may have passed them over while the batch held them (a task does not
    wait for an event another run holds), so the fallback hands them back to the queue."""
    from automations.engine import runner

    make_engine_automation(webhook_url=receiver.url())
    with django_capture_on_commit_callbacks():
        for member in [make_member() for _ in range(3)]:
            member_deactivate(member=member, actor=None, reason="Last day")
    first, *others = Event.objects.order_by("occurred_at")

    def broken(**kwargs):
        raise RuntimeError("database went away")

    with monkeypatch.context() as patched:
        patched.setattr(runner.REGISTRY["webhook"], "prepare", broken)
        with (
            django_capture_on_commit_callbacks() as handed_back,
            pytest.raises(runner.ActionCrashed),
        ):
            tasks.process_event(str(first.pk))
    assert [e.status for e in Event.objects.filter(pk__in=[o.pk for o in others])] == [
        Event.Status.PENDING
    ] * 2
    assert len(handed_back) == 2

    for callback in handed_back:
        callback()
    for event in others:
        event.refresh_from_db()
        assert (event.status, event.attempts) == (Event.Status.DONE, 1)
    assert len(receiver.requests) == 2


@pytest.mark.django_db(transaction=True)
def test_a_task_does_not_wait_for_an_event_another_run_holds(receiver, monkeypatch):
    """Another worker's batch holds the event's row (its first transaction): the task leaves
    the event to it at once instead of idling until that transaction ends."""
    import threading

    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no row locks (one writer at a time)")
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)  # the deactivation's task waits in the broker
    make_engine_automation(webhook_url=receiver.url())
    member = make_member()
    member_deactivate(member=member, actor=None, reason="Last day")
    event = Event.objects.get(member=member)
    held, release = threading.Event(), threading.Event()

    def other_batch():
        with transaction.atomic():
            Event.objects.select_for_update().filter(pk=event.pk).first()
            held.set()
            release.wait(30)
        connection.close()

    holder = threading.Thread(target=other_batch)
    holder.start()
    try:
        assert held.wait(10)
        tasks.process_event(str(event.pk))  # returns at once: the row is held
        event.refresh_from_db()
        assert (event.status, event.attempts) == (Event.Status.PENDING, 0)
    finally:
        release.set()
        holder.join()
    tasks.process_event(str(event.pk))
    event.refresh_from_db()
    assert (event.status, event.attempts) == (Event.Status.DONE, 1)
