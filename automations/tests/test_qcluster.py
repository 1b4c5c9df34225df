"""A real `manage.py qcluster` process against the test database (a file on SQLite, the test
database on PostgreSQL): the execution finishes without help, and a worker SIGKILLed in the
middle of an execution loses nothing and does nothing twice once the cluster is back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from standardwebhooks import Webhook

from assets.models import MDMCommand
from automations.actions.webhook import LOST_ATTEMPT
from automations.engine.events import events_sweep
from automations.models import ActionLog, Event, Execution
from automations.tests.engine_factories import (
    SECRET,
    make_connection,
    make_device,
    make_engine_automation,
    mdm_commands,
)
from automations.tests.servers import WebhookReceiver
from conftest import make_entitlement, make_license, make_member
from licenses.models import Entitlement, License
from members.services import member_deactivate

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 90  # seconds; the cluster needs a few to start


def cluster_env() -> dict[str, str]:
    """The environment for a cluster that uses this test's database."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "assetsonar.test_settings",
        "DEBUG": "1",
        "Q_WORKERS": "1",
        "Q_BROKER": "orm",
        "Q_SYNC": "0",
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "INFO",
    }
    if db["ENGINE"].endswith("sqlite3"):
        # Empty, not unset: a developer's .env must not point the cluster elsewhere.
        env["DATABASE_URL"] = ""
        env["SQLITE_PATH"] = str(db["NAME"])
    else:
        auth = quote(db["USER"] or "", safe="")
        if db["PASSWORD"]:
            auth += ":" + quote(db["PASSWORD"], safe="")
        env["DATABASE_URL"] = (
            f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    return env


@contextmanager
def qcluster(log: Path):
    """Run `manage.py qcluster` in its own process group until the block ends."""
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
            [sys.executable, "manage.py", "qcluster"],
            cwd=settings.BASE_DIR,
            env=cluster_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        # A graceful stop waits for the broker poll to time out; the tests have what they need.
        stop(process, signal.SIGKILL)


def stop(process: subprocess.Popen, sig: int) -> None:
    """Signal the cluster's whole process group (the cluster, its workers, monitor, pusher)."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def wait_until(condition, log: Path, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise AssertionError(f"Timed out waiting for {what}. Cluster log:\n{tail}")


def finished_execution():
    return Execution.objects.filter(
        status__in=[
            Execution.Status.SUCCEEDED,
            Execution.Status.PARTIALLY_FAILED,
            Execution.Status.FAILED,
        ]
    ).first()


@pytest.fixture
def receiver():
    with WebhookReceiver() as hook:
        yield hook


@pytest.fixture
def leaver():
    member = make_member(full_name="Jordan Rivera")
    connection_ = make_connection()
    devices = [make_device(member, connection_), make_device(member, connection_)]
    for kind in (License.Kind.USER, License.Kind.CLOUD):
        make_entitlement(license=make_license(kind=kind), member=member)
    make_entitlement(license=make_license(kind=License.Kind.DEVICE), asset=devices[0])
    mdm_commands(enabled=True)
    return member


def test_a_real_cluster_runs_the_execution(receiver, leaver, tmp_path):
    make_engine_automation(webhook_url=receiver.url(), user_based=True, device_based=True, mdm=True)
    log = tmp_path / "qcluster.log"

    with qcluster(log):
        member_deactivate(member=leaver, actor=None, reason="Last working day")
        execution = wait_until(finished_execution, log, "the execution")

    assert execution.status == Execution.Status.SUCCEEDED
    (request,) = receiver.requests
    assert Webhook(SECRET).verify(request.body, request.headers)["type"] == "member.deactivated"
    assert Entitlement.objects.live().count() == 0
    assert MDMCommand.objects.count() == 2
    event = Event.objects.get()
    assert (event.status, event.attempts) == (Event.Status.DONE, 1)


def test_worker_killed_mid_execution_acts_exactly_once_per_target(receiver, leaver, tmp_path):
    """The webhook receiver hangs, the cluster is SIGKILLed while the worker waits on it, the
    cluster comes back: every target is acted on exactly once, the webhook is delivered with the
    same webhook-id, and the lost attempt is in the history."""
    make_engine_automation(webhook_url=receiver.url(), user_based=True, device_based=True, mdm=True)
    receiver.hang()
    log = tmp_path / "qcluster.log"

    with qcluster(log) as first:
        member_deactivate(member=leaver, actor=None, reason="Last working day")
        wait_until(lambda: receiver.requests, log, "the webhook request")
        # The locks do not wait for the hanging receiver: recorded while it hangs.
        wait_until(
            lambda: MDMCommand.objects.filter(status="acknowledged").count() == 2,
            log,
            "the locks recorded while the webhook hangs",
        )
        # The run was counted and committed before the request went out.
        event = Event.objects.get()
        assert (event.status, event.attempts) == (Event.Status.PROCESSING, 1)
        webhook_log = ActionLog.objects.get(action_kind="webhook")
        assert (webhook_log.status, webhook_log.attempts) == (ActionLog.Status.RUNNING, 1)
        stop(first, signal.SIGKILL)

    # The first transaction committed before anything was sent: the licenses are revoked. The
    # locks did not wait for the hanging receiver: sent and recorded before the kill.
    assert Entitlement.objects.live().count() == 0
    pins = {c.asset_id: c.get_pin() for c in MDMCommand.objects.all()}
    assert len(pins) == 2
    assert set(MDMCommand.objects.values_list("status", flat=True)) == {"acknowledged"}
    receiver.release()

    # Time passes (as if): the run's lease and the sweeper's patience run out.
    Event.objects.update(last_dispatched_at=timezone.now() - timedelta(minutes=10))
    ActionLog.objects.filter(status=ActionLog.Status.RUNNING).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    assert events_sweep()["events"] == 1

    with qcluster(log):
        execution = wait_until(finished_execution, log, "the execution after the restart")

    assert execution.status == Execution.Status.SUCCEEDED
    event = Event.objects.get()
    assert (event.status, event.attempts) == (Event.Status.DONE, 2)

    webhook_log = ActionLog.objects.get(action_kind="webhook")
    assert (webhook_log.status, webhook_log.attempts) == (ActionLog.Status.SUCCEEDED, 2)
    lost, delivered = webhook_log.webhook_attempts.all()
    assert (lost.error, delivered.status_code) == (LOST_ATTEMPT, 200)
    assert len(receiver.requests) == 2
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1

    revocations = ActionLog.objects.filter(action_kind="revoke_licenses")
    assert revocations.count() == 3
    assert sorted(revocations.values_list("entitlement_id", flat=True)) == sorted(
        Entitlement.objects.values_list("pk", flat=True)
    )
    assert Entitlement.objects.live().count() == 0
    locks = ActionLog.objects.filter(action_kind="mdm_lock")
    assert {log.status for log in locks} == {ActionLog.Status.SUCCEEDED}
    # Sent once each, before the kill, with the PIN stored first; not sent again.
    assert {c.asset_id: c.get_pin() for c in MDMCommand.objects.all()} == pins
    assert set(MDMCommand.objects.values_list("status", flat=True)) == {"acknowledged"}
