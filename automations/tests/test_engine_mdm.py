"""MDM lock orchestration: devices in custody at the event, PIN stored before sending and reused
on retry, vendor results recorded, asset lock state, skips, retries and non-retried auth failures.
The vendors are the fake Jamf and Kandji servers of assets/tests/mdm_servers.py (real HTTP on
127.0.0.1) and the built-in simulator."""

from __future__ import annotations

import re

import pytest
from django_q.models import Schedule

from assets.mdm.base import token_cache
from assets.models import Asset, MDMCommand
from assets.services import asset_check_in
from assets.tests.mdm_servers import JamfServer, KandjiServer
from automations.actions.mdm_lock import NOT_ENROLLED, SWITCHED_OFF
from automations.models import ActionLog, Execution
from automations.tests.engine_factories import (
    fast_retries,
    make_connection,
    make_device,
    make_engine_automation,
    mdm_commands,
    run_due_schedules,
    use_sync_q,
)
from conftest import make_member
from members.services import member_deactivate

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def sync_q(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)
    fast_retries(settings)
    mdm_commands(enabled=True)
    token_cache.clear()
    yield
    token_cache.clear()


@pytest.fixture
def deactivate(django_capture_on_commit_callbacks):
    def run(member):
        with django_capture_on_commit_callbacks(execute=True):
            member_deactivate(member=member, actor=None, reason="Last day")
        return Execution.objects.get(member=member)

    return run


@pytest.fixture
def jamf():
    with JamfServer() as server:
        yield server


@pytest.fixture
def kandji():
    with KandjiServer() as server:
        yield server


def jamf_connection(server: JamfServer, **fields):
    return make_connection(
        "jamf",
        base_url=server.url,
        credentials={"client_id": server.client_id, "client_secret": server.client_secret},
        **fields,
    )


def kandji_connection(server: KandjiServer, token: str | None = None, **fields):
    return make_connection(
        "kandji",
        base_url=server.url,
        credentials={"api_token": token or server.api_token},
        **fields,
    )


def lock_logs(execution) -> list[ActionLog]:
    return list(execution.logs.filter(action_kind="mdm_lock").order_by("asset_id"))


def test_simulator_locks_each_enrolled_device_with_a_stored_pin(deactivate):
    member = make_member()
    connection = make_connection(name="Demo MDM")
    laptop, phone = make_device(member, connection), make_device(member, connection)
    make_engine_automation(mdm=True)

    execution = deactivate(member)

    assert execution.status == Execution.Status.SUCCEEDED
    for log, asset in zip(lock_logs(execution), (laptop, phone), strict=True):
        assert (log.status, log.asset, log.attempts) == (ActionLog.Status.SUCCEEDED, asset, 1)
        assert log.insight.startswith("Lock acknowledged by the device via Demo MDM (command sim-")
        command = MDMCommand.objects.get(log=log)
        assert re.fullmatch(r"\d{6}", command.get_pin())
        assert command.get_pin() not in command.pin_encrypted
        assert command.status == MDMCommand.Status.ACKNOWLEDGED
        assert command.vendor_command_id.startswith("sim-")
        assert command.sent_at is not None
        assert command.message == "This device belongs to Example Corp. Call IT."
        asset.refresh_from_db()
        assert asset.lock_state == Asset.LockState.LOCKED
        assert asset.locked_at is not None


def test_unenrolled_device_is_skipped_with_an_insight(deactivate):
    member = make_member()
    make_device(member)
    make_engine_automation(mdm=True)

    (log,) = lock_logs(deactivate(member))

    assert log.status == ActionLog.Status.SKIPPED
    assert log.insight == NOT_ENROLLED
    assert not MDMCommand.objects.exists()


def test_switched_off_mdm_commands_skip_the_lock(deactivate):
    member = make_member()
    device = make_device(member, make_connection())
    make_engine_automation(mdm=True)
    mdm_commands(enabled=False)

    (log,) = lock_logs(deactivate(member))

    assert (log.status, log.insight) == (ActionLog.Status.SKIPPED, SWITCHED_OFF)
    device.refresh_from_db()
    assert device.lock_state == Asset.LockState.UNLOCKED


def test_devices_are_those_in_custody_at_the_event(django_capture_on_commit_callbacks):
    member = make_member()
    connection = make_connection()
    kept, returned = make_device(member, connection), make_device(member, connection)
    make_engine_automation(mdm=True)
    with django_capture_on_commit_callbacks() as callbacks:
        member_deactivate(member=member, actor=None, reason="Last day")
    # Handed back to IT before the worker got to it: still the leaver's device at the event.
    asset_check_in(asset=returned, actor=None)
    later = make_member()
    make_device(later, connection)  # someone else's device is never a target
    for callback in callbacks:
        callback()

    assert {log.asset_id for log in ActionLog.objects.all()} == {kept.pk, returned.pk}


def test_jamf_gets_the_same_pin_on_every_retry(jamf, deactivate):
    jamf.fail(503, path="/api/v2/mdm/commands", times=2, method="POST")
    member = make_member()
    device = make_device(member, jamf_connection(jamf), device_id="mgmt-mac-1")
    make_engine_automation(mdm=True)

    execution = deactivate(member)
    (log,) = lock_logs(execution)
    assert log.status == ActionLog.Status.RETRYING
    assert "HTTP 503" in log.insight
    command = MDMCommand.objects.get(log=log)
    pin = command.get_pin()
    device.refresh_from_db()
    assert device.lock_state == Asset.LockState.PENDING

    run_due_schedules()

    log.refresh_from_db()
    assert (log.status, log.attempts) == (ActionLog.Status.SUCCEEDED, 3)
    sent = [r.json["commandData"]["pin"] for r in jamf.requests_to("/api/v2/mdm/commands", "POST")]
    assert sent == [pin, pin, pin]
    assert jamf.commands == [
        {
            "commandType": "DEVICE_LOCK",
            "pin": pin,
            "message": "This device belongs to Example Corp. Call IT.",
            "phoneNumber": "+1 555 0100",
        }
    ]
    command.refresh_from_db()
    assert MDMCommand.objects.count() == 1
    assert (command.get_pin(), command.status) == (pin, MDMCommand.Status.SENT)
    assert command.vendor_command_id
    assert jamf.problems == []
    device.refresh_from_db()
    assert device.lock_state == Asset.LockState.LOCKED
    assert Execution.objects.get().status == Execution.Status.SUCCEEDED


def test_kandji_pin_replaces_ours(kandji, deactivate):
    member = make_member()
    make_device(member, kandji_connection(kandji), device_id="k-mac-1")
    make_engine_automation(mdm=True)

    (log,) = lock_logs(deactivate(member))

    assert log.status == ActionLog.Status.SUCCEEDED
    command = MDMCommand.objects.get()
    assert command.get_pin() == kandji.pins["k-mac-1"]
    assert kandji.problems == []


def test_rejected_token_is_not_retried_and_names_the_connection(kandji, deactivate):
    member = make_member()
    device = make_device(
        member, kandji_connection(kandji, token="stale", name="Kandji HQ"), device_id="k-mac-1"
    )
    make_engine_automation(mdm=True)

    execution = deactivate(member)

    (log,) = lock_logs(execution)
    assert (log.status, log.attempts) == (ActionLog.Status.FAILED, 1)
    assert log.insight.startswith("Kandji rejected the API token (HTTP 401)")
    assert "“Kandji HQ”" in log.insight
    assert not Schedule.objects.filter(func="automations.tasks.retry_action").exists()
    assert execution.status == Execution.Status.FAILED
    assert MDMCommand.objects.get().status == MDMCommand.Status.FAILED
    device.refresh_from_db()
    assert device.lock_state == Asset.LockState.FAILED


def test_unknown_device_fails_without_retry(jamf, deactivate):
    member = make_member()
    make_device(member, jamf_connection(jamf), device_id="mgmt-unknown")
    make_engine_automation(mdm=True)

    (log,) = lock_logs(deactivate(member))

    assert log.status == ActionLog.Status.FAILED
    assert "not found" in log.insight
    assert len(jamf.requests_to("/api/v2/mdm/commands", "POST")) == 1


def test_rate_limit_honours_retry_after(kandji, deactivate):
    from django.utils import timezone

    kandji.fail(429, retry_after="90", path="/action/lock")
    member = make_member()
    make_device(member, kandji_connection(kandji), device_id="k-iphone-1")
    make_engine_automation(mdm=True)

    (log,) = lock_logs(deactivate(member))

    assert log.status == ActionLog.Status.RETRYING
    assert 80 < (log.next_attempt_at - timezone.now()).total_seconds() <= 91


def test_hanging_mdm_times_out_and_retries(jamf, deactivate, settings):
    settings.MDM_READ_TIMEOUT = 0.3
    jamf.hang_seconds = 1.5
    jamf.hang(path="/api/v2/mdm/commands", method="POST")
    member = make_member()
    make_device(member, jamf_connection(jamf), device_id="mgmt-ios-1", platform="ios")
    make_engine_automation(mdm=True)

    (log,) = lock_logs(deactivate(member))
    assert log.status == ActionLog.Status.RETRYING
    run_due_schedules()
    log.refresh_from_db()
    assert log.status == ActionLog.Status.SUCCEEDED


def test_gives_up_after_the_last_attempt(jamf, deactivate):
    jamf.fail(500, path="/api/v2/mdm/commands", times=20, method="POST")
    member = make_member()
    device = make_device(member, jamf_connection(jamf), device_id="mgmt-mac-1")
    make_engine_automation(mdm=True)

    deactivate(member)
    run_due_schedules()

    log = ActionLog.objects.get()
    assert (log.status, log.attempts) == (ActionLog.Status.FAILED, 7)
    assert "The lock was tried 7 times over" in log.insight
    assert len(jamf.requests_to("/api/v2/mdm/commands", "POST")) == 7
    device.refresh_from_db()
    assert device.lock_state == Asset.LockState.FAILED


def test_one_failing_device_does_not_stop_the_others(deactivate):
    member = make_member()
    connection = make_connection()
    broken = make_device(member, connection, device_id="fail-auth-1")
    fine = make_device(member, connection)
    make_engine_automation(mdm=True)

    execution = deactivate(member)

    statuses = {log.asset_id: log.status for log in lock_logs(execution)}
    assert statuses == {broken.pk: "failed", fine.pk: "succeeded"}
    assert execution.status == Execution.Status.PARTIALLY_FAILED


def test_two_automations_lock_a_device_once(django_capture_on_commit_callbacks):
    member = make_member()
    make_device(member, make_connection())
    first = make_engine_automation(mdm=True, name="Offboarding A")
    make_engine_automation(mdm=True, name="Offboarding B")

    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=member, actor=None, reason="Last day")

    logs = ActionLog.objects.order_by("execution__automation__name")
    assert [log.status for log in logs] == ["succeeded", "skipped"]
    assert logs[1].insight == (
        f"Already locked by execution {logs[0].execution_id} (automation “{first.name}”), PIN kept."
    )
    assert MDMCommand.objects.count() == 1


def test_a_lock_being_retried_is_left_to_its_automation(jamf, django_capture_on_commit_callbacks):
    jamf.fail(503, path="/api/v2/mdm/commands", method="POST")
    member = make_member()
    make_device(member, jamf_connection(jamf), device_id="mgmt-mac-1")
    make_engine_automation(mdm=True, name="Offboarding A")
    make_engine_automation(mdm=True, name="Offboarding B")

    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=member, actor=None, reason="Last day")
    run_due_schedules()

    statuses = dict(ActionLog.objects.values_list("execution__automation_name", "status"))
    assert statuses == {"Offboarding A": "succeeded", "Offboarding B": "skipped"}
    pins = {r.json["commandData"]["pin"] for r in jamf.requests_to("/api/v2/mdm/commands", "POST")}
    assert len(jamf.requests_to("/api/v2/mdm/commands", "POST")) == 2  # the 503 and its retry
    assert len(jamf.commands) == 1
    assert {c.get_pin() for c in MDMCommand.objects.all()} == pins


def test_the_second_automation_defers_to_the_first_even_if_that_lock_fails(
    jamf, django_capture_on_commit_callbacks
):
    jamf.fail(400, path="/api/v2/mdm/commands")  # a refusal: not retried
    member = make_member()
    make_device(member, jamf_connection(jamf), device_id="mgmt-mac-1")
    make_engine_automation(mdm=True, name="Offboarding A")
    make_engine_automation(mdm=True, name="Offboarding B")

    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=member, actor=None, reason="Last day")
    # A's failure is A's to show (and to retry); B does not send a second command.
    statuses = dict(ActionLog.objects.values_list("execution__automation_name", "status"))
    assert statuses == {"Offboarding A": "failed", "Offboarding B": "skipped"}
    assert len(jamf.requests_to("/api/v2/mdm/commands", "POST")) == 1
