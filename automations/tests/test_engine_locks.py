"""One lock per device, reconciled with the vendor before anything is sent again; PINs only
where the device has them; lockable devices only; honest statuses for skipped targets.

The vendors are the fake Jamf, Intune and Kandji servers of assets/tests/mdm_servers.py (real
HTTP on 127.0.0.1). "The answer was lost" is made deterministic with the servers' `on_accept`
hook: the vendor records the lock, then holds its answer past the client's read timeout, so the
engine cannot know whether the lock arrived (as when its worker is killed at that moment; the
real-cluster version is in test_qcluster.py)."""

from __future__ import annotations

import time

import pytest

from assets.mdm.base import token_cache
from assets.models import Asset, MDMCommand
from assets.services import asset_mark_unlocked
from assets.tests.mdm_servers import IntuneServer, JamfServer, KandjiServer
from automations.actions.mdm_lock import NOT_ENROLLED
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
from automations.tests.servers import WebhookReceiver
from conftest import make_asset, make_member
from members.services import member_deactivate, member_reactivate

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
        return Execution.objects.filter(member=member).latest("pk")

    return run


class Vendor:
    """One fake vendor with a connection to it and its devices (a Mac or PC, and a phone)."""

    def __init__(self, name: str, settings) -> None:
        self.name = name
        if name == "jamf":
            self.server = JamfServer()
            credentials = {
                "client_id": self.server.client_id,
                "client_secret": self.server.client_secret,
            }
            self.devices = [("mgmt-mac-1", "macos"), ("mgmt-ios-1", "ios")]
        elif name == "intune":
            self.server = IntuneServer()
            settings.MDM_INTUNE_LOGIN_URL = self.server.url
            credentials = {
                "tenant_id": self.server.tenant_id,
                "client_id": self.server.client_id,
                "client_secret": self.server.client_secret,
            }
            self.devices = [("dev-win-1", "windows"), ("dev-ios-1", "ios")]
        else:
            self.server = KandjiServer()
            credentials = {"api_token": self.server.api_token}
            self.devices = [("k-mac-1", "macos"), ("k-iphone-1", "ios")]
        self.server.__enter__()
        self.connection = make_connection(name, base_url=self.server.url, credentials=credentials)

    def close(self) -> None:
        self.server.__exit__(None, None, None)

    def give(self, member) -> list[Asset]:
        return [
            make_device(
                member,
                self.connection,
                device_id=device_id,
                platform=platform,
                category="laptop" if platform in ("macos", "windows") else "phone",
            )
            for device_id, platform in self.devices
        ]

    def locks_of(self, device_id: str) -> int:
        """How many lock commands the vendor accepted for the device."""
        server = self.server
        if self.name == "jamf":
            return sum(c["client"]["managementId"] == device_id for c in server.history)
        if self.name == "intune":
            return server.locked.count(device_id)
        return server.locks.count(device_id)

    def pin_of(self, device_id: str, platform: str) -> str:
        """The PIN the device got: the one in Jamf's command, Kandji's, none elsewhere."""
        if self.name == "jamf" and platform == "macos":
            server = self.server
            pins = [
                data.get("pin", "")
                for listed, data in zip(server.history, server.commands, strict=True)
                if listed["client"]["managementId"] == device_id
            ]
            return pins[0] if pins else ""
        if self.name == "kandji" and platform == "macos":
            return self.server.pins.get(device_id, "")
        return ""

    def lock_path(self, device_id: str) -> str:
        return {
            "jamf": "/api/v2/mdm/commands",
            "intune": f"/v1.0/deviceManagement/managedDevices/{device_id}/remoteLock",
            "kandji": f"/api/v1/devices/{device_id}/action/lock",
        }[self.name]


@pytest.fixture(params=["jamf", "intune", "kandji"])
def vendor(request, settings):
    v = Vendor(request.param, settings)
    yield v
    v.close()


def test_answer_lost_after_acceptance_is_reconciled_not_sent_again(vendor, deactivate):
    member = make_member()
    devices = vendor.give(member)
    make_engine_automation(mdm=True)
    # The vendor takes the lock, then answers too late: the engine cannot tell it arrived.
    vendor.server.on_accept = lambda request: time.sleep(0.8)

    execution = deactivate(member)
    assert {log.status for log in execution.logs.all()} == {ActionLog.Status.RETRYING}
    vendor.server.on_accept = None
    run_due_schedules()

    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED
    for asset, (device_id, platform) in zip(devices, vendor.devices, strict=True):
        assert vendor.locks_of(device_id) == 1, device_id
        command = MDMCommand.objects.get(asset=asset)
        assert command.status in (MDMCommand.Status.SENT, MDMCommand.Status.ACKNOWLEDGED)
        assert command.log.insight.startswith("Lock found at ")
        assert "recorded without sending it again" in command.log.insight
        assert command.sent_at is not None
        # The PIN kept is the one the device has (none where the lock takes none).
        pin = vendor.pin_of(device_id, platform)
        assert (command.get_pin() if command.pin_encrypted else "") == pin
        assert command.pin_on_device == bool(pin)
    assert vendor.server.problems == []


def test_vendor_that_cannot_tell_gets_the_lock_again_with_the_reason(deactivate, settings):
    jamf = Vendor("jamf", settings)
    try:
        member = make_member()
        (mac, _) = jamf.give(member)
        make_engine_automation(mdm=True)
        jamf.server.on_accept = lambda request: time.sleep(0.8)
        deactivate(member)
        jamf.server.on_accept = None
        jamf.server.fail(403, path="/api/v2/mdm/commands", method="GET", times=5)

        run_due_schedules()

        command = MDMCommand.objects.get(asset=mac)
        assert command.status == MDMCommand.Status.SENT
        assert "could not say whether an earlier attempt's lock arrived" in command.log.insight
        assert "sent again" in command.log.insight
        # Sent twice, with the same PIN: the device has it whichever arrived.
        pins = {c["pin"] for c in jamf.server.commands if "pin" in c}
        assert pins == {command.get_pin()}
    finally:
        jamf.close()


def test_two_quick_deactivations_make_one_lock_and_keep_the_first_pin(vendor, deactivate):
    member = make_member()
    devices = vendor.give(member)
    make_engine_automation(mdm=True)

    first = deactivate(member)
    member_reactivate(member=member, actor=None)
    second = deactivate(member)

    assert first.pk != second.pk
    for device_id, _ in vendor.devices:
        assert vendor.locks_of(device_id) == 1
    assert MDMCommand.objects.count() == len(devices)
    reused = list(second.logs.all())
    assert {log.status for log in reused} == {ActionLog.Status.SKIPPED}
    assert {log.insight for log in reused} == {
        f"Already locked by execution {first.pk} (automation “{first.automation_name}”), PIN kept."
    }
    second.refresh_from_db()
    assert second.status == Execution.Status.SUCCEEDED  # the devices are locked: goal met


def test_a_second_lock_after_the_first_failed_reuses_its_pin(deactivate, settings):
    jamf = Vendor("jamf", settings)
    try:
        member = make_member()
        (mac, _) = jamf.give(member)
        make_engine_automation(mdm=True)
        jamf.server.fail(400, path="/api/v2/mdm/commands", method="POST", times=2)
        first = deactivate(member)
        member_reactivate(member=member, actor=None)

        deactivate(member)

        failed, sent = MDMCommand.objects.filter(asset=mac).order_by("pk")
        assert (failed.status, sent.status) == ("failed", "sent")
        assert failed.get_pin() == sent.get_pin()  # it may have reached the device after all
        assert not failed.pin_on_device and sent.pin_on_device
        assert first.logs.get(asset=mac).status == ActionLog.Status.FAILED
    finally:
        jamf.close()


def test_pins_only_where_the_lock_carries_one(vendor, deactivate):
    member = make_member()
    devices = vendor.give(member)
    make_engine_automation(mdm=True)

    deactivate(member)

    for asset, (device_id, platform) in zip(devices, vendor.devices, strict=True):
        command = MDMCommand.objects.get(asset=asset)
        carries = (vendor.name, platform) in {("jamf", "macos"), ("kandji", "macos")}
        assert command.pin_on_device == carries, (vendor.name, platform)
        if not carries:
            assert command.pin_encrypted == ""  # none generated, none kept
        else:
            assert command.get_pin() == vendor.pin_of(device_id, platform)
    assert vendor.server.problems == []


def test_only_lockable_devices_are_targets(deactivate):
    member = make_member()
    connection = make_connection()
    laptop = make_device(member, connection)
    make_device(member, connection, category="monitor", platform="none")
    make_device(member, connection, category="other", platform="macos")
    make_asset(custodian=member, category="laptop", platform="none")  # no operating system
    make_engine_automation(mdm=True)

    execution = deactivate(member)

    (log,) = execution.logs.all()
    assert (log.asset_id, log.status) == (laptop.pk, ActionLog.Status.SUCCEEDED)
    assert execution.status == Execution.Status.SUCCEEDED


def test_410_mid_burst_leaves_every_later_execution_partially_failed(deactivate):
    with WebhookReceiver() as receiver:
        receiver.answer(200, times=2)
        receiver.answer(410)
        automation = make_engine_automation(webhook_url=receiver.url(), mdm=True)
        members = [make_member() for _ in range(6)]
        for member in members:
            make_device(member, make_connection())

        executions = [deactivate(member) for member in members]

    statuses = [Execution.objects.get(pk=e.pk).status for e in executions]
    assert statuses == ["succeeded", "succeeded"] + ["partially_failed"] * 4
    assert len(receiver.requests) == 3
    action = automation.actions.get(kind="webhook")
    for execution in executions[3:]:
        execution.refresh_from_db()
        hook = execution.logs.get(action_kind="webhook")
        assert hook.status == ActionLog.Status.SKIPPED
        assert hook.insight.startswith("Webhook disabled on ")
        assert (
            "after the receiver answered 410 Gone; re-enable it in the automation" in hook.insight
        )
        assert execution.insight == hook.insight
        assert execution.logs.get(action_kind="mdm_lock").status == ActionLog.Status.SUCCEEDED
    assert action.disabled_at is not None


def test_every_skip_that_acts_on_nothing_is_not_a_success(deactivate):
    member = make_member()
    make_device(member)  # lockable, not enrolled
    make_engine_automation(mdm=True)

    execution = deactivate(member)

    (log,) = execution.logs.all()
    assert (log.status, log.insight) == (ActionLog.Status.SKIPPED, NOT_ENROLLED)
    assert execution.status == Execution.Status.FAILED


def test_a_device_unlocked_since_gets_a_new_lock_and_a_new_pin(deactivate):
    member = make_member()
    laptop = make_device(member, make_connection())
    make_engine_automation(mdm=True)
    deactivate(member)
    member_reactivate(member=member, actor=None)
    assert deactivate(member).logs.get().status == ActionLog.Status.SKIPPED  # still locked: kept
    asset_mark_unlocked(asset=laptop, note="Unlocked at the desk", actor=None)
    member_reactivate(member=member, actor=None)

    second = deactivate(member)

    first_lock, second_lock = MDMCommand.objects.filter(asset=laptop).order_by("pk")
    assert second.logs.get().status == ActionLog.Status.SUCCEEDED
    assert second_lock.pin_on_device and first_lock.get_pin() != second_lock.get_pin()
