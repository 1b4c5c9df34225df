"""Two `manage.py qcluster` processes started separately (as on two hosts) share one Redis
broker and one PostgreSQL database; a burst of deactivations is drained with one of them
SIGKILLed halfway: every execution, revocation, lock and webhook happens exactly once.

Needs PostgreSQL (the test database) and Redis (TEST_REDIS_URL, default db 3 on 127.0.0.1);
skipped otherwise."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.db import connection

from assets.models import MDMCommand
from automations.models import ActionLog, Event, Execution
from automations.tests.engine_factories import (
    make_connection,
    make_device,
    make_engine_automation,
    mdm_commands,
)
from automations.tests.test_qcluster import cluster_env, stop
from conftest import make_entitlement, make_license, make_member
from licenses.models import Entitlement, License

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/3")
BURST = 150
FINISHED = ("succeeded", "partially_failed", "failed")


def _redis():
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
        return client
    except Exception:  # noqa: BLE001 - any failure means: no Redis to test with
        return None


requires_both = pytest.mark.skipif(
    connection.vendor != "postgresql" or _redis() is None,
    reason="two clusters share a PostgreSQL database and a Redis broker",
)


class SlowReceiver(BaseHTTPRequestHandler):
    """Answers each webhook after 30 ms and keeps its webhook-id."""

    ids: list[str] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(0.03)
        with SlowReceiver.lock:
            SlowReceiver.ids.append(self.headers.get("webhook-id", ""))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        return


@pytest.fixture
def receiver():
    SlowReceiver.ids = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowReceiver, bind_and_activate=False)
    server.request_queue_size = 1024  # the default backlog, 5, drops a burst's connections
    server.server_bind()
    server.server_activate()
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    server.shutdown()


def redis_env(name: str) -> dict[str, str]:
    return {
        **cluster_env(),
        "Q_BROKER": "redis",
        "REDIS_URL": REDIS_URL,
        "Q_CLUSTER_NAME": name,
        "Q_WORKERS": "1",
        "LOG_LEVEL": "WARNING",
    }


def in_child(env: dict[str, str], code: str) -> str:
    """Run Django code in a process with the clusters' settings (so it enqueues into Redis)."""
    script = "import django\ndjango.setup()\n" + code
    done = subprocess.run(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", script],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def start(env: dict[str, str], log) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
        [sys.executable, "manage.py", "qcluster"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait(condition, what: str, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"Timed out waiting for {what}.")


def idle(progress, quiet: float = 3.0) -> bool:
    """Nothing queued and no progress for `quiet` seconds: the survivor has done all it can on
    its own. The queue alone says little: a burst waits as one task (events.event_wake), and
    the survivor may be mid-batch with nothing queued; setting its leases back then would have
    its live attempts taken over."""
    before = progress()
    time.sleep(quiet)
    return before[0] == 0 and progress() == before


@requires_both
def test_two_clusters_drain_a_burst_exactly_once_when_one_is_killed(receiver, tmp_path):
    name = f"as_scale_test_{os.getpid()}"
    queue = f"django_q:{name}:q"
    redis = _redis()
    redis.delete(queue)
    make_engine_automation(webhook_url=receiver, user_based=True, device_based=True, mdm=True)
    mdm = make_connection()
    mdm_commands(enabled=True)
    seat = make_license(kind=License.Kind.USER, seats=BURST)
    agent = make_license(kind=License.Kind.DEVICE, seats=BURST)
    members = []
    for _ in range(BURST):
        member = make_member()
        make_entitlement(license=seat, member=member)
        make_entitlement(license=agent, asset=make_device(member, mdm))
        members.append(member.pk)
    env = redis_env(name)
    ids = ",".join(map(str, members))
    # Deactivated before either cluster starts: the burst waits in Redis.
    in_child(
        env,
        "from members.services import member_deactivate\n"
        f"for pk in [{ids}]:\n"
        "    member_deactivate(member=pk, actor=None, reason='Burst')\n",
    )
    # One task waits for the whole burst (events.event_wake): each batch queues the next.
    assert redis.llen(queue) == 1

    done = Execution.objects.filter(status__in=FINISHED)
    with (tmp_path / "a.log").open("ab") as log_a, (tmp_path / "b.log").open("ab") as log_b:
        first, second = start(env, log_a), start(env, log_b)
        try:
            wait(lambda: done.count() >= 1, "the first executions")
            stop(first, signal.SIGKILL)
            killed_at = done.count()
            logs = ActionLog.objects.exclude(status__in=["running", "pending"])
            wait(
                lambda: idle(lambda: (redis.llen(queue), done.count(), logs.count())),
                "the survivor to finish what it could",
            )
            # What the killed cluster held: its leases run out (the clocks are set back, as in
            # test_qcluster), and the sweeper re-dispatches through the shared broker.
            in_child(
                env,
                "from datetime import timedelta\n"
                "from django.utils import timezone\n"
                "from automations.engine.events import events_sweep\n"
                "from automations.models import ActionLog, Event\n"
                "now = timezone.now()\n"
                "Event.objects.exclude(status='done').update("
                "last_dispatched_at=now - timedelta(minutes=10))\n"
                "ActionLog.objects.filter(status='running').update("
                "next_attempt_at=now - timedelta(seconds=1))\n"
                "while events_sweep()['events']:\n"
                "    pass\n",
            )
            wait(lambda: done.count() >= BURST, "every execution")
        finally:
            stop(first, signal.SIGKILL)
            stop(second, signal.SIGINT)
    redis.delete(queue)

    assert 0 < killed_at < BURST  # killed halfway, not before or after the work
    assert Execution.objects.count() == BURST  # one automation: one execution per member
    assert done.count() == BURST
    assert set(Event.objects.values_list("status", flat=True)) == {Event.Status.DONE}
    assert Entitlement.objects.live().count() == 0
    revocations = ActionLog.objects.filter(action_kind="revoke_licenses", status="succeeded")
    assert revocations.count() == 2 * BURST  # the seat and the device's agent, once each
    assert MDMCommand.objects.count() == BURST  # one lock per device
    assert set(MDMCommand.objects.values_list("status", flat=True)) == {"acknowledged"}
    webhooks = ActionLog.objects.filter(action_kind="webhook")
    assert webhooks.count() == BURST
    assert set(webhooks.values_list("status", flat=True)) == {"succeeded"}
    # Delivered at least once each; a request lost with the killed worker is sent again with the
    # same webhook-id, so the receiver sees every delivery exactly once by id.
    assert len(set(SlowReceiver.ids)) == BURST
