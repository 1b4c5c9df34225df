"""The engine end to end through django-q2 (sync mode, on-commit callbacks executed): executions,
statuses, insights, independence of actions, idempotency and the dead letter."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks import Webhook

from assets.models import Asset, MDMCommand
from automations import tasks
from automations.engine import runner
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
from automations.triggers import MEMBER_REACTIVATED
from conftest import make_asset, make_entitlement, make_license, make_member
from licenses.models import Entitlement, License
from members.services import member_deactivate, member_reactivate

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def sync_q(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)


@pytest.fixture
def receiver():
    with WebhookReceiver() as hook:
        yield hook


@pytest.fixture
def deactivate(django_capture_on_commit_callbacks):
    def run(member, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            member_deactivate(member=member, actor=kwargs.get("actor"), reason="Last day")
        return Event.objects.filter(member=member).latest("occurred_at")

    return run


@pytest.fixture
def leaver():
    """A member with licenses of every kind and three devices, two of them enrolled."""
    member = make_member(full_name="Jordan Rivera", department="Engineering")
    connection = make_connection()
    devices = [
        make_device(member, connection),
        make_device(member, connection),
        make_device(member),
    ]
    user_license = make_license(kind=License.Kind.USER)
    cloud_license = make_license(kind=License.Kind.CLOUD)
    device_license = make_license(kind=License.Kind.DEVICE)
    make_entitlement(license=user_license, member=member)
    make_entitlement(license=cloud_license, member=member)
    make_entitlement(license=user_license, member=member, asset=devices[0])
    make_entitlement(license=device_license, asset=devices[1])
    mdm_commands(enabled=True)
    return member


def test_deactivation_runs_all_three_actions(receiver, leaver, deactivate, it_manager):
    automation = make_engine_automation(
        webhook_url=receiver.url(), user_based=True, user_machine=True, device_based=True, mdm=True
    )

    event = deactivate(leaver, actor=it_manager)

    execution = Execution.objects.get()
    assert (execution.automation, execution.event, execution.member) == (automation, event, leaver)
    # One of the devices is not enrolled: not locked, so the execution is not a success.
    assert execution.status == Execution.Status.PARTIALLY_FAILED
    assert execution.insight.startswith("Device is not enrolled in an MDM")
    assert execution.started_at <= execution.finished_at
    event.refresh_from_db()
    assert (event.status, event.attempts, event.actor) == (Event.Status.DONE, 1, it_manager)

    (request,) = receiver.requests
    payload = Webhook(SECRET).verify(request.body, request.headers)
    assert payload["type"] == "member.deactivated"
    assert payload["data"]["member"]["full_name"] == "Jordan Rivera"
    assert payload["data"]["automation"] == {"id": automation.pk, "name": automation.name}

    assert Entitlement.objects.live().filter(member=leaver).count() == 0
    assert Entitlement.objects.live().count() == 0
    revoked = ActionLog.objects.filter(action_kind="revoke_licenses")
    assert revoked.count() == 4
    assert {log.status for log in revoked} == {ActionLog.Status.SUCCEEDED}

    locks = ActionLog.objects.filter(action_kind="mdm_lock").order_by("asset_id")
    assert [log.status for log in locks] == ["succeeded", "succeeded", "skipped"]
    assert locks[2].insight.startswith("Device is not enrolled in an MDM")
    assert MDMCommand.objects.count() == 2
    assert Asset.objects.filter(lock_state=Asset.LockState.LOCKED).count() == 2


def test_conditions_see_the_member_as_recorded_at_the_event(
    receiver, django_capture_on_commit_callbacks
):
    member = make_member(department="Sales")
    make_engine_automation(webhook_url=receiver.url(), conditions=[("department", "is", "Sales")])
    with django_capture_on_commit_callbacks() as callbacks:
        member_deactivate(member=member, actor=None, reason="Moved on")
    # Changed after the event, before the worker ran: the snapshot still says Sales.
    member.refresh_from_db()
    member.department = "Marketing"
    member.save()
    for callback in callbacks:
        callback()

    assert Execution.objects.get().status == Execution.Status.SUCCEEDED
    assert len(receiver.requests) == 1


def test_only_enabled_matching_automations_for_the_event_kind_run(receiver, deactivate):
    member = make_member(department="Engineering")
    make_engine_automation(webhook_url=receiver.url(), name="Runs")
    make_engine_automation(webhook_url=receiver.url(), name="Disabled", enabled=False)
    make_engine_automation(
        webhook_url=receiver.url(),
        name="Other department",
        conditions=[("department", "is", "Sales")],
    )
    make_engine_automation(
        webhook_url=receiver.url(), name="On reactivation", trigger_event=MEMBER_REACTIVATED
    )

    deactivate(member)

    assert list(Execution.objects.values_list("automation_name", flat=True)) == ["Runs"]


def test_reactivation_runs_reactivation_automations(
    receiver, deactivate, django_capture_on_commit_callbacks
):
    member = make_member()
    make_engine_automation(webhook_url=receiver.url(), trigger_event=MEMBER_REACTIVATED)
    deactivate(member)
    assert not Execution.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        member_reactivate(member=member, actor=None)

    execution = Execution.objects.get()
    assert execution.event.kind == MEMBER_REACTIVATED
    assert (
        Webhook(SECRET).verify(receiver.requests[0].body, receiver.requests[0].headers)["type"]
        == MEMBER_REACTIVATED
    )


def test_an_event_without_automations_is_done_with_no_execution(deactivate):
    event = deactivate(make_member())
    assert event.status == Event.Status.DONE
    assert not Execution.objects.exists()


def test_failed_webhook_does_not_stop_revocation_or_lock(receiver, leaver, deactivate):
    receiver.answer(404)
    make_engine_automation(webhook_url=receiver.url(), user_based=True, mdm=True)

    deactivate(leaver)

    execution = Execution.objects.get()
    assert execution.status == Execution.Status.PARTIALLY_FAILED
    assert "404" in execution.insight
    assert Entitlement.objects.live().filter(member=leaver, asset=None).count() == 0
    assert MDMCommand.objects.count() == 2


def test_execution_fails_when_every_action_fails(receiver, deactivate):
    receiver.answer(403)
    make_engine_automation(webhook_url=receiver.url())

    deactivate(make_member())

    execution = Execution.objects.get()
    assert execution.status == Execution.Status.FAILED
    assert execution.insight == (
        "The endpoint refused the request (HTTP 403): check the authorization header of this "
        "webhook in the automation."
    )


def test_running_the_same_task_twice_acts_once_on_every_target(receiver, leaver, deactivate):
    make_engine_automation(
        webhook_url=receiver.url(), user_based=True, user_machine=True, device_based=True, mdm=True
    )
    event = deactivate(leaver)
    before = _acted(leaver)

    tasks.process_event(str(event.pk))  # a duplicate delivery of the same task
    # A redelivery after a worker died just before marking the event done.
    Event.objects.filter(pk=event.pk).update(
        status=Event.Status.PROCESSING, last_dispatched_at=timezone.now() - timedelta(hours=1)
    )
    tasks.process_event(str(event.pk))

    assert _acted(leaver) == before
    assert len(receiver.requests) == 1
    event.refresh_from_db()
    assert (event.status, event.attempts) == (Event.Status.DONE, 2)


def _acted(member):
    return {
        "logs": sorted(ActionLog.objects.values_list("key", "status", "attempts")),
        "revoked": sorted(
            Entitlement.objects.filter(revoked_at__isnull=False).values_list("pk", "revoked_at")
        ),
        "commands": sorted(MDMCommand.objects.values_list("asset_id", "pin_encrypted")),
    }


def test_a_live_run_is_not_doubled(receiver, deactivate, django_capture_on_commit_callbacks):
    member = make_member()
    make_engine_automation(webhook_url=receiver.url())
    with django_capture_on_commit_callbacks() as callbacks:
        member_deactivate(member=member, actor=None, reason="Last day")
    event = Event.objects.get()
    # Another worker started this event a moment ago.
    Event.objects.filter(pk=event.pk).update(
        status=Event.Status.PROCESSING, attempts=1, last_dispatched_at=timezone.now()
    )
    for callback in callbacks:
        callback()

    event.refresh_from_db()
    assert (event.status, event.attempts) == (Event.Status.PROCESSING, 1)
    assert receiver.requests == []


def test_crashing_action_leaves_the_others_done_and_the_event_for_another_run(
    receiver, leaver, deactivate, monkeypatch
):
    make_engine_automation(webhook_url=receiver.url(), user_based=True, mdm=True)

    def broken(**kwargs):
        raise RuntimeError("database went away")

    with monkeypatch.context() as patched:
        patched.setattr(runner.REGISTRY["revoke_licenses"], "prepare", broken)
        event = deactivate(leaver)

    event.refresh_from_db()
    assert (event.status, event.attempts) == (Event.Status.PROCESSING, 1)
    assert "database went away" in event.last_error
    execution = Execution.objects.get()
    assert execution.status == Execution.Status.RUNNING
    assert "“Revoke licenses”" in execution.insight
    assert len(receiver.requests) == 1
    assert MDMCommand.objects.count() == 2

    Event.objects.filter(pk=event.pk).update(last_dispatched_at=timezone.now() - timedelta(hours=1))
    tasks.process_event(str(event.pk))

    event.refresh_from_db()
    assert (event.status, event.attempts) == (Event.Status.DONE, 2)
    execution.refresh_from_db()
    # All done but the leaver's unenrolled device, which nothing locked.
    assert execution.status == Execution.Status.PARTIALLY_FAILED
    assert execution.insight.startswith("Device is not enrolled")
    assert len(receiver.requests) == 1
    assert MDMCommand.objects.count() == 2
    assert Entitlement.objects.live().filter(member=leaver, asset=None).count() == 0


def test_event_dead_lettered_after_five_attempts(receiver, django_capture_on_commit_callbacks):
    member = make_member()
    make_engine_automation(webhook_url=receiver.url())
    with django_capture_on_commit_callbacks():
        member_deactivate(member=member, actor=None, reason="Last day")
    event = Event.objects.get()
    # Five runs started and none finished (each worker was killed).
    Event.objects.filter(pk=event.pk).update(
        status=Event.Status.PROCESSING,
        attempts=Event.MAX_ATTEMPTS,
        last_dispatched_at=timezone.now() - timedelta(hours=1),
    )

    tasks.process_event(str(event.pk))

    event.refresh_from_db()
    assert event.status == Event.Status.DEAD
    execution = Execution.objects.get()
    assert execution.status == Execution.Status.FAILED
    assert execution.insight.startswith(
        "The background job for this event stopped 5 times before finishing"
    )
    assert execution.finished_at is not None
    assert receiver.requests == []
    tasks.process_event(str(event.pk))
    assert Event.objects.get().attempts == Event.MAX_ATTEMPTS


def test_unenrolled_only_member_gets_skipped_locks_and_a_failed_execution(deactivate):
    member = make_member()
    make_asset(custodian=member)
    make_engine_automation(mdm=True)
    mdm_commands(enabled=True)

    deactivate(member)

    execution = Execution.objects.get()
    # Nothing was locked: a skip that leaves the target as it was is not a success.
    assert execution.status == Execution.Status.FAILED
    (log,) = execution.logs.all()
    assert (log.status, log.target_type) == (ActionLog.Status.SKIPPED, "asset")
    assert execution.insight == log.insight


def test_a_retry_does_not_settle_an_execution_whose_event_run_is_unfinished(
    receiver, leaver, deactivate, monkeypatch, settings
):
    from automations.tests.engine_factories import fast_retries, run_due_schedules

    fast_retries(settings)
    receiver.answer(503)
    make_engine_automation(webhook_url=receiver.url(), user_based=True)

    def broken(**kwargs):
        raise RuntimeError("database went away")

    with monkeypatch.context() as patched:
        patched.setattr(runner.REGISTRY["revoke_licenses"], "prepare", broken)
        event = deactivate(leaver)
        run_due_schedules()  # the webhook's retry succeeds meanwhile

    assert ActionLog.objects.get(action_kind="webhook").status == ActionLog.Status.SUCCEEDED
    assert Execution.objects.get().status == Execution.Status.RUNNING

    Event.objects.filter(pk=event.pk).update(last_dispatched_at=timezone.now() - timedelta(hours=1))
    tasks.process_event(str(event.pk))

    assert Execution.objects.get().status == Execution.Status.SUCCEEDED
    assert Entitlement.objects.live().filter(member=leaver, asset=None).count() == 0


def test_a_crash_while_recording_one_outcome_keeps_the_others(
    receiver, leaver, deactivate, monkeypatch
):
    from automations.actions import webhook

    make_engine_automation(webhook_url=receiver.url(), user_based=True, mdm=True)

    def broken(log, action, result):
        raise RuntimeError("disk full")

    with monkeypatch.context() as patched:
        patched.setattr(webhook, "_record", broken)
        event = deactivate(leaver)

    event.refresh_from_db()
    assert event.status == Event.Status.PROCESSING
    assert "disk full" in event.last_error
    webhook_log = ActionLog.objects.get(action_kind="webhook")
    assert webhook_log.status == ActionLog.Status.RUNNING  # taken over once its lease ends
    locks = ActionLog.objects.filter(action_kind="mdm_lock").order_by("asset_id")
    assert [log.status for log in locks] == ["succeeded", "succeeded", "skipped"]

    ActionLog.objects.filter(pk=webhook_log.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    Event.objects.filter(pk=event.pk).update(last_dispatched_at=timezone.now() - timedelta(hours=1))
    tasks.process_event(str(event.pk))

    # All done but the unenrolled device.
    assert Execution.objects.get().status == Execution.Status.PARTIALLY_FAILED
    assert len(receiver.requests) == 2  # at least once: the unrecorded delivery went again
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    assert MDMCommand.objects.count() == 2
