"""A real `manage.py worker` (our supervisor around django-q2's cluster) against the test
database and the fake vendor servers: SIGKILL between a vendor's acceptance and the record, stop
signals to the process group / the supervisor / the cluster / one worker, a webhook receiver
that hangs while the locks go out, two deactivations in quick succession."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from assets.models import MDMCommand
from automations.engine.events import events_sweep
from automations.models import ActionLog, Event, Execution
from automations.tests.engine_factories import (
    make_connection,
    make_device,
    make_engine_automation,
    mdm_commands,
)
from automations.tests.servers import WebhookReceiver
from automations.tests.test_engine_locks import Vendor
from automations.tests.test_qcluster import cluster_env, wait_until
from conftest import make_member
from members.services import member_deactivate, member_reactivate

pytestmark = pytest.mark.django_db(transaction=True)

STOP_LIMIT = 10.0  # seconds: what systemd and Docker wait before their own SIGKILL


def process_tree(root: int) -> list[int]:
    """`root` and every process below it (from /proc), root first."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop(0)
        found.append(pid)
        frontier += [child for child, parent in parents.items() if parent == pid]
    return found


def alive(pids: list[int]) -> list[int]:
    """Those still running (a zombie has finished)."""
    left = []
    for pid in pids:
        with contextlib.suppress(OSError):
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                left.append(pid)
    return left


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the supervisor and every process of its cluster at once."""
    for pid in process_tree(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


@contextmanager
def worker(log: Path, **env: str):
    """Run `manage.py worker` in a session of its own until the block ends."""
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
            [sys.executable, "manage.py", "worker"],
            cwd=settings.BASE_DIR,
            env={**cluster_env(), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            kill_tree(process)


def cluster_ready(process: subprocess.Popen, log: Path, workers: int = 1) -> list[int]:
    """Wait until the cluster runs (supervisor, cluster, sentinel, workers, monitor, pusher)."""

    def check():
        tree = process_tree(process.pid)
        return tree if len(tree) >= 5 + workers else None

    return wait_until(check, log, "the cluster's processes")


def all_finished(count: int):
    def check():
        done = Execution.objects.filter(finished_at__isnull=False).count()
        return (
            done >= count
            and not ActionLog.objects.filter(status__in=["pending", "running", "retrying"]).exists()
        )

    return check


def as_if_time_passed() -> None:
    """The leases of what the killed worker held run out, and the sweeper runs."""
    Event.objects.exclude(status=Event.Status.DONE).update(
        last_dispatched_at=timezone.now() - timedelta(minutes=10)
    )
    ActionLog.objects.filter(status=ActionLog.Status.RUNNING).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    events_sweep()


@pytest.fixture
def vendor(request, settings):
    v = Vendor(request.param, settings)
    yield v
    v.close()


def vendor_env(vendor: Vendor) -> dict[str, str]:
    return {"TEST_MDM_INTUNE_LOGIN_URL": vendor.server.url} if vendor.name == "intune" else {}


@pytest.mark.parametrize("vendor", ["jamf", "intune", "kandji"], indirect=True)
def test_sigkill_between_vendor_acceptance_and_record_locks_each_device_once(vendor, tmp_path):
    """The vendor accepts the first lock and, before answering, the whole cluster is SIGKILLed:
    the restarted cluster asks the vendor, records the lock it finds (with its PIN) and sends
    only the locks that are provably absent."""
    members = [make_member(), make_member()]
    devices = {m.pk: vendor.give(m) for m in members[:1]}
    make_engine_automation(mdm=True)
    mdm_commands(enabled=True)
    log = tmp_path / "worker.log"
    killed = threading.Event()

    with worker(log, **vendor_env(vendor)) as first:
        cluster_ready(first, log)

        def kill(request) -> None:
            if not killed.is_set():
                killed.set()
                kill_tree(first)

        vendor.server.on_accept = kill
        member_deactivate(member=members[0], actor=None, reason="Last day")
        wait_until(killed.is_set, log, "the vendor's first acceptance")
    vendor.server.on_accept = None
    accepted_before_restart = {d: vendor.locks_of(d) for d, _ in vendor.devices}
    assert sum(accepted_before_restart.values()) >= 1
    assert not MDMCommand.objects.filter(status__in=["sent", "acknowledged"]).exists()

    as_if_time_passed()
    with worker(log, **vendor_env(vendor)):
        wait_until(all_finished(1), log, "the execution after the restart")

    execution = Execution.objects.get()
    assert execution.status == Execution.Status.SUCCEEDED, execution.insight
    for asset, (device_id, platform) in zip(devices[members[0].pk], vendor.devices, strict=True):
        assert vendor.locks_of(device_id) == 1, device_id
        command = MDMCommand.objects.get(asset=asset)
        pin = vendor.pin_of(device_id, platform)
        assert (command.get_pin() if command.pin_encrypted else "") == pin  # the first PIN
        if accepted_before_restart[device_id]:
            assert command.log.insight.startswith("Lock found at ")
    assert vendor.server.problems == []


@pytest.mark.parametrize(
    "target", ["group", "signal storm", "every process", "supervisor", "cluster", "worker"]
)
def test_stop_signal_stops_within_ten_seconds_and_a_restart_loses_nothing(target, tmp_path):
    """A burst is under way when SIGTERM (SIGINT for the supervisor) arrives: the worker is gone
    in under 10 s, nothing of it is left running, the tasks it had fetched are back in the
    broker, and a new one finishes every execution with each device locked once."""
    connection = make_connection()
    members = [make_member() for _ in range(24)]
    for member in members:
        make_device(member, connection)
    mdm_commands(enabled=True)
    log = tmp_path / "worker.log"
    with WebhookReceiver() as receiver:
        make_engine_automation(webhook_url=receiver.url(), mdm=True)
        # The broker would give a fetched task to another cluster only after 10 minutes: what
        # the restarted worker runs at once was handed back by the stop.
        with worker(log, Q_WORKERS="2", Q_RETRY="600") as first:
            tree = cluster_ready(first, log, workers=2)
            for member in members:
                member_deactivate(member=member, actor=None, reason="Last day")
            wait_until(lambda: receiver.requests, log, "the first webhook")
            started = time.monotonic()
            if target == "group":  # the cluster's own group: the processes django-q2 made
                os.killpg(os.getpgid(tree[1]), signal.SIGTERM)
            elif target == "signal storm":  # an impatient operator: the group, again and again
                # Each process forwards its signal to the main one, so this is dozens of signals
                # there in a row; a handler that takes a lock deadlocked on this (issue 8).
                for _ in range(10):
                    os.killpg(os.getpgid(tree[1]), signal.SIGTERM)
                    time.sleep(0.01)
            elif target == "every process":  # systemd's KillMode=control-group
                for pid in tree:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
            elif target == "supervisor":
                os.kill(first.pid, signal.SIGINT)  # Ctrl+C from `make run`
            elif target == "cluster":
                os.kill(tree[1], signal.SIGTERM)
            else:
                os.kill(tree[-1], signal.SIGTERM)
            first.wait(timeout=STOP_LIMIT)
            stopped = time.monotonic() - started
            time.sleep(0.3)
            assert alive(tree) == []
        assert stopped < STOP_LIMIT

        if "still busy at the deadline" in log.read_text(errors="replace"):
            as_if_time_passed()  # a task killed at the deadline: the crash path, tested above
        with worker(log, Q_WORKERS="2", Q_RETRY="600"):
            wait_until(all_finished(len(members)), log, "every execution after the restart")

    assert Execution.objects.filter(status=Execution.Status.SUCCEEDED).count() == len(members)
    assert MDMCommand.objects.count() == len(members)  # one lock per device
    assert Event.objects.exclude(status=Event.Status.DONE).count() == 0
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == len(members)


def test_hanging_webhook_does_not_delay_the_lock(tmp_path):
    """The receiver holds its answer for 15 s; the device lock is sent and recorded within a
    second of the webhook going out."""
    with Vendor_("jamf") as jamf, WebhookReceiver() as receiver:
        receiver.hang_seconds = 15
        receiver.hang()
        member = make_member()
        (mac, _) = jamf.give(member)
        make_engine_automation(webhook_url=receiver.url(), mdm=True)
        mdm_commands(enabled=True)
        log = tmp_path / "worker.log"
        with worker(log) as process:
            cluster_ready(process, log)
            member_deactivate(member=member, actor=None, reason="Last day")
            (hook,) = receiver.wait_for(1, timeout=60)
            wait_until(
                lambda: MDMCommand.objects.filter(asset=mac, status="sent").exists(),
                log,
                "the lock recorded",
                timeout=5,
            )
            recorded = time.monotonic()
            assert recorded - hook.at < 1.0
            lock_request = jamf.server.requests_to("/api/v2/mdm/commands", "POST")[0]
            assert abs(lock_request.at - hook.at) < 1.0
            assert ActionLog.objects.get(action_kind="webhook").status == "running"
            receiver.release()


def test_two_quick_deactivations_on_two_workers_send_one_lock(tmp_path):
    with Vendor_("jamf") as jamf:
        member = make_member()
        devices = jamf.give(member)
        make_engine_automation(mdm=True)
        mdm_commands(enabled=True)
        log = tmp_path / "worker.log"
        # One event per task: each deactivation is prepared by its own worker, at the same time.
        with worker(log, Q_WORKERS="2", TEST_AUTOMATIONS_EVENT_BATCH="1") as process:
            cluster_ready(process, log, workers=2)
            member_deactivate(member=member, actor=None, reason="Last day")
            member_reactivate(member=member, actor=None)
            member_deactivate(member=member, actor=None, reason="Last day, again")
            wait_until(all_finished(2), log, "both executions")

    for device_id, _ in jamf.devices:
        assert jamf.locks_of(device_id) == 1
    assert MDMCommand.objects.count() == len(devices)
    statuses = sorted(ActionLog.objects.values_list("status", flat=True))
    assert statuses == ["skipped", "skipped", "succeeded", "succeeded"]


@contextmanager
def Vendor_(name: str):  # noqa: N802 - reads as the class it wraps
    from django.conf import settings as live_settings

    vendor = Vendor(name, live_settings)
    try:
        yield vendor
    finally:
        vendor.close()


def test_a_killed_supervisor_takes_its_cluster_with_it(tmp_path):
    """SIGKILL to the supervisor alone: the cluster notices and stops, so a restarted worker never
    runs beside an orphaned one."""
    log = tmp_path / "worker.log"
    with worker(log) as process:
        tree = cluster_ready(process, log)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
        wait_until(lambda: not alive(tree), log, "the orphaned cluster to stop", timeout=10)
