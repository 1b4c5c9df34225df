"""Offboarding throughput on PostgreSQL with real django-q2 clusters: the engine's drain rate
against a no-op floor, for each broker and number of workers, plus two clusters sharing one
broker with one of them killed halfway.

    .venv/bin/python bench/offboarding.py        # 1,000 leavers, both brokers, 1 and 2 workers
    .venv/bin/python bench/offboarding.py --sizes 10000 --workers 2 --kill-burst 0
    .venv/bin/python bench/offboarding.py --keepalive 4,0   # kept connections against new ones
    BENCH_DATABASE_URL=postgres://user@host:5432/name REDIS_URL=redis://127.0.0.1:6379/3 ...

For every run (broker x workers x size N), with DEBUG off:

1. Floor: N no-op tasks are queued while the cluster is stopped; the cluster is started; the
   floor is the first no-op's start to the last one's end (django-q2's result rows, which both
   brokers write; Q_SAVE_LIMIT=0 keeps them all).
2. Drain: the cluster is stopped; N members (2 MDM-enrolled devices and 5 entitlements each) are
   deactivated through `member_deactivate` by parallel client processes (the real trigger:
   post_save receiver, event row, on_commit enqueue into the run's broker); the cluster is
   started; the drain is the first execution's start to the last execution's end. 2 automations
   with all three actions: a webhook to a receiver in this process, license revocation, and an
   MDM lock through a Jamf Pro fake in this process that answers after --mdm-delay-ms and counts
   the lock requests in flight (the per-connection cap, 5, must hold).
3. Once the executions are done, the cluster runs the tasks still queued (a burst queues one
   task, and each batch the next one's, events.event_wake; a late one finds its event done)
   and is stopped; what is left in the broker
   is listed by function. `left` counts the run's own tasks (0 expected): a task that raised
   stays on the ORM broker (django-q2 acknowledges only successes) and is reported with its
   error; a sweeper task the scheduler queued as the cluster stopped is reported apart.

Then, with --kill-burst B: two `qcluster` processes started separately (as on two hosts) share
the Redis broker and the database; B members are deactivated first; one cluster is SIGKILLed
when half the executions are done; the other drains the rest, the sweeper re-dispatches what
the killed one held (its REDISPATCH_AFTER is skipped by calling events_sweep with a later
clock), and every execution, revocation and lock must exist exactly once.

Finally the request cost, apart from the engine: `member_deactivate` (the service behind every
deactivation path) against a minimal member save (read, change one field, save it), medians of
--request-samples each, interleaved.

Targets (issue 12): drain <= 1.5x the floor of the same cluster; with Redis, 2 workers >= 1.6x
the throughput of 1; the kill loses and doubles nothing; at most 5 lock requests in flight.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
PY = ROOT / ".venv" / "bin" / "python"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/as_scale_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/3"
GROUP_NOOP = "bench-noop"
MDM_LIMIT = 5
FINISHED = ("succeeded", "partially_failed", "failed")


def noop() -> None:
    """The floor: a task that does nothing (run by the cluster as `offboarding.noop`)."""


# --- Receivers: webhook and Jamf Pro -------------------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    """Answers every webhook delivery with 200; counts them and their webhook-ids. HTTP/1.1,
    connections kept open between requests, answers not held back by Nagle's algorithm: what a
    web server in front of a real receiver does."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    count = 0
    ids: set[str] = set()
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with Receiver.lock:
            Receiver.count += 1
            Receiver.ids.add(self.headers.get("webhook-id", ""))
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_POST  # noqa: N815

    def handle(self) -> None:
        # A kept connection whose worker was killed (the kill run) is reset, not closed.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature of the base
        return


def start_receiver() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver, bind_and_activate=False)
    # The default listen backlog, 5, overflows when two workers' send pools connect at once
    # while this process is busy: dropped connections, webhooks retried a minute later, and
    # a drain measured at 60 s (2 December's and this morning's 2-worker runs).
    server.request_queue_size = 1024
    server.server_bind()
    server.server_activate()
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_jamf(delay: float):
    """The Jamf Pro fake of the test suite, answering lock commands for any device after
    `delay` seconds, with a gauge of the lock requests it is answering at once."""
    from assets.tests.mdm_servers import JamfServer

    class GaugedJamf(JamfServer):
        keep_alive = True  # connections kept open, as Jamf Pro's servers do

        def __init__(self) -> None:
            super().__init__()
            self.in_flight = self.most_in_flight = self.locks = 0
            self.gauge = threading.Lock()

        def route(self, request):
            if request.path != "/api/v2/mdm/commands":
                return super().route(request)
            body = request.json or {}
            for client in body.get("clientData") or []:
                self.devices.add(client.get("managementId", ""))
            with self.gauge:
                self.in_flight += 1
                self.locks += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                time.sleep(delay)
                return super().route(request)
            finally:
                with self.gauge:
                    self.in_flight -= 1

        def reset(self) -> None:
            with self.gauge:
                self.most_in_flight = self.locks = 0

    server = GaugedJamf()
    server.__enter__()
    return server


# --- Environment and database --------------------------------------------------------------------


def bench_env(
    database_url: str, *, broker: str, workers: int, redis_url: str, name: str, keepalive: int = 4
) -> dict:
    """The environment of the clusters and the client processes: same database and settings,
    DEBUG off, the run's broker and number of workers."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "assetsonar.settings",
            "DATABASE_URL": database_url,
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "SECRET_KEY": os.environ.get("BENCH_SECRET_KEY") or secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
            "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
            "WEBHOOK_ALLOW_HTTP": "true",
            "Q_WORKERS": str(workers),
            "Q_BROKER": broker,
            "REDIS_URL": redis_url,
            "Q_CLUSTER_NAME": name,
            "Q_SAVE_LIMIT": "0",
            "Q_SYNC": "false",
            "LOG_LEVEL": "WARNING",
            "OUTBOUND_KEEPALIVE": str(keepalive),
            # The cluster imports the no-op task from here (`offboarding.noop`).
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH)]),
        }
    )
    return env


def recreate_database(url: str, *, create: bool = True) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')


def populate(members: int, webhook_url: str, jamf) -> list[int]:
    """`members` members with 2 Jamf-enrolled devices (in custody) and 5 live entitlements
    each; 2 automations with all three actions; MDM commands on. Bulk inserts (no trigger
    fires: only a status change does), then the kept counts recomputed once."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from assets.models import Asset, CustodyRecord, MDMConnection
    from assetsonar.models import PortalSettings
    from assetsonar.tallies import tallies_recount
    from automations.models import Action, Automation
    from licenses.models import Entitlement, License
    from members.models import Member

    now = timezone.now()
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "x")
    settings_row = PortalSettings.load()
    settings_row.mdm_commands_enabled = True
    settings_row.save()
    mdm = MDMConnection(
        name="Bench Jamf",
        provider=MDMConnection.Provider.JAMF,
        base_url=jamf.url,
        max_concurrent_requests=MDM_LIMIT,
    )
    mdm.set_credentials({"client_id": jamf.client_id, "client_secret": jamf.client_secret})
    mdm.save()
    people = Member.objects.bulk_create(
        (
            Member(
                full_name=f"Bench Member {n:06d}",
                email=f"bench{n:06d}@bench.example",
                employee_id=f"B{n:06d}",
                department=("Engineering", "Sales", "Support")[n % 3],
                location="Berlin",
                title="Engineer",
            )
            for n in range(members)
        ),
        batch_size=5000,
    )
    assets = Asset.objects.bulk_create(
        (
            Asset(
                asset_tag=f"BA-{n:07d}",
                name=("MacBook Pro", "iPhone 15")[n % 2],
                category=(Asset.Category.LAPTOP, Asset.Category.PHONE)[n % 2],
                platform=(Asset.Platform.MACOS, Asset.Platform.IOS)[n % 2],
                serial_number=f"BSN{n:08d}",
                status=Asset.Status.IN_CUSTODY,
                custodian=people[n // 2],
                mdm_connection=mdm,
                mdm_device_id=f"bench-device-{n:07d}",
            )
            for n in range(2 * members)
        ),
        batch_size=5000,
    )
    CustodyRecord.objects.bulk_create(
        (CustodyRecord(asset=a, member_id=a.custodian_id, checked_out_at=now) for a in assets),
        batch_size=5000,
    )
    kinds = [License.Kind.USER, License.Kind.USER, License.Kind.CLOUD, License.Kind.USER]
    licenses = [
        License.objects.create(name=f"Bench app {n}", vendor="Bench", kind=kind, seats=members)
        for n, kind in enumerate(kinds)
    ]
    device_license = License.objects.create(
        name="Bench endpoint agent", vendor="Bench", kind=License.Kind.DEVICE, seats=members
    )

    def entitlements():
        for index, member in enumerate(people):
            laptop = assets[2 * index]
            # 3 user-based/cloud, 1 user-on-device, 1 device-based on the laptop.
            yield Entitlement(license=licenses[0], member=member, assigned_at=now)
            yield Entitlement(license=licenses[1], member=member, assigned_at=now)
            yield Entitlement(license=licenses[2], member=member, assigned_at=now)
            yield Entitlement(license=licenses[3], member=member, asset=laptop, assigned_at=now)
            yield Entitlement(license=device_license, asset=laptop, assigned_at=now)

    Entitlement.objects.bulk_create(entitlements(), batch_size=5000)
    tallies_recount()

    for n in (1, 2):
        automation = Automation.objects.create(
            name=f"Bench offboarding {n}", created_by=user, updated_by=user
        )
        webhook = Action(
            automation=automation,
            kind="webhook",
            position=0,
            config={"url": webhook_url, "method": "POST"},
        )
        webhook.set_secret("whsec_" + base64.b64encode(os.urandom(24)).decode())
        webhook.save()
        Action.objects.create(
            automation=automation,
            kind="revoke_licenses",
            position=1,
            config={"user_based": True, "user_machine": True, "device_based": True},
        )
        Action.objects.create(
            automation=automation,
            kind="mdm_lock",
            position=2,
            config={
                "message": "This device belongs to Bench Corp. Please return it to IT.",
                "phone": "+1 555 0100",
            },
        )
    return [m.pk for m in people]


# --- Clusters and clients ------------------------------------------------------------------------


def start_cluster(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
        [str(PY), "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        process_group=0,
        stdout=subprocess.DEVNULL,
        stderr=sys.stderr,
    )


def stop_cluster(cluster: subprocess.Popen, sig: int = signal.SIGINT) -> float:
    """Stop a cluster (SIGINT: its clean shutdown); seconds it took."""
    started = time.monotonic()
    if cluster.poll() is None:
        os.killpg(cluster.pid, sig)
        try:
            cluster.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait()
    return time.monotonic() - started


def run_clients(env: dict, command: str, ids: list[int], clients: int) -> float:
    """Run `command` over `ids` in `clients` processes of this script (with the run's broker);
    seconds until all are done."""
    started = time.monotonic()
    chunks = [ids[i::clients] for i in range(clients)]
    processes = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and this script
            [str(PY), str(Path(__file__)), command, ",".join(map(str, chunk))],
            cwd=ROOT,
            env=env,
            stderr=sys.stderr,
        )
        for chunk in chunks
        if chunk
    ]
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(f"A client process ({command}) failed.")
    return time.monotonic() - started


def client_main(command: str, arg: str) -> None:
    """A client process: deactivate the given members, or queue N no-op tasks."""
    sys.path[:0] = [str(ROOT), str(BENCH)]
    import django

    django.setup()
    if command == "_deactivate":
        from members.services import member_deactivate

        for pk in map(int, arg.split(",")):
            member_deactivate(member=pk, actor=None, reason="Benchmark leaver")
    elif command == "_sweep":
        from django.utils import timezone

        from automations.engine.events import SWEEP_BATCH, events_sweep
        from automations.models import ActionLog, Event

        ids = [int(pk) for pk in arg.split(",")]
        now = timezone.now()
        # The events left unfinished: what the sweeper is to re-dispatch (printed). It runs as
        # often as its batch needs to cover them, no more: a processing event is re-dispatched
        # by every sweep until its run ends (its mark is its run's start), so sweeping until
        # nothing is re-dispatched counted the same events several times (3,920 for 1,000).
        left = Event.objects.filter(
            member_id__in=ids, status__in=[Event.Status.PENDING, Event.Status.PROCESSING]
        ).update(last_dispatched_at=now - timedelta(minutes=10))
        ActionLog.objects.filter(
            execution__member_id__in=ids, status=ActionLog.Status.RUNNING
        ).update(next_attempt_at=now - timedelta(seconds=1))
        for _ in range(-(-left // SWEEP_BATCH)):
            events_sweep()
        print(left)
    elif command == "_noop":
        from django_q.tasks import async_task

        for _ in range(len(arg.split(","))):
            async_task("offboarding.noop", group=GROUP_NOOP)


def sweep(env: dict, members: list[int]) -> int:
    """Let the killed cluster's leases run out (as the test suite does: the clocks of what it
    held are set back) and run the sweeper in a client with the run's broker; how many events
    were left unfinished for it to re-dispatch."""
    out = subprocess.run(  # noqa: S603 - our own interpreter and this script
        [str(PY), str(Path(__file__)), "_sweep", ",".join(map(str, members))],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"Timed out after {timeout:.0f} s waiting for {what}.")


def queued(broker: str, redis_url: str, name: str) -> int:
    """Tasks waiting in the broker."""
    if broker == "redis":
        import redis

        return redis.Redis.from_url(redis_url).llen(f"django_q:{name}:q")
    from django_q.models import OrmQ

    return OrmQ.objects.filter(key=name).count()


# Queued by django-q2's scheduler (the every-minute sweeper), not by the run: one may be left
# when the cluster stops just after the scheduler enqueued it, and runs at the next start.
SCHEDULED = "automations.tasks.sweep_events"


def leftovers(broker: str, redis_url: str, name: str) -> Counter:
    """The tasks still in the broker, by function. On the ORM broker a task that raised stays
    (django-q2 acknowledges only successes unless ack_failures is set) and is delivered again
    after Q_RETRY; on Redis it is gone once fetched."""
    from django_q.models import OrmQ
    from django_q.signing import SignedPackage

    if broker == "redis":
        import redis

        payloads = redis.Redis.from_url(redis_url).lrange(f"django_q:{name}:q", 0, -1)
    else:
        payloads = list(OrmQ.objects.filter(key=name).values_list("payload", flat=True))
    found: Counter = Counter()
    for payload in payloads:
        try:
            text = payload.decode() if isinstance(payload, bytes) else payload
            found[str(SignedPackage.loads(text).get("func"))] += 1
        except Exception:  # noqa: BLE001 - counted as unreadable, whatever the reason
            found["(unreadable)"] += 1
    return found


def own_left(broker: str, args) -> int:
    """The run's own tasks still in the broker (the scheduler's sweeps apart)."""
    found = leftovers(broker, args.redis_url, args.name)
    return sum(n for func, n in found.items() if func != SCHEDULED)


def failed_tasks() -> list[str]:
    """Tasks that raised in this run (django-q2's result rows): function and the error's last
    line."""
    from django_q.models import Task

    return [
        f"{func}: {(str(result or '').strip().splitlines() or [''])[-1][:200]}"
        for func, result in Task.objects.filter(success=False).values_list("func", "result")
    ]


def purge(redis_url: str, name: str) -> None:
    import redis
    from django_q.models import OrmQ, Task

    redis.Redis.from_url(redis_url).delete(f"django_q:{name}:q")
    OrmQ.objects.all().delete()
    Task.objects.all().delete()


# --- One run -------------------------------------------------------------------------------------


def run(
    *, url: str, broker: str, workers: int, leavers: list[int], args, jamf, keepalive: int = 4
) -> dict[str, float | int | str]:
    from django.db import connection
    from django.db.models import Max, Min
    from django_q.models import Task

    from automations.models import Execution

    n = len(leavers)
    env = bench_env(
        url,
        broker=broker,
        workers=workers,
        redis_url=args.redis_url,
        name=args.name,
        keepalive=keepalive,
    )
    purge(args.redis_url, args.name)
    label = f"{broker} {workers}w {n}" + ("" if keepalive else " new-conn")

    print(f"[{label}] queueing {n} no-op tasks, cluster stopped…", flush=True)
    run_clients(env, "_noop", list(range(n)), 1)
    connection.close()
    cluster = start_cluster(env)
    try:
        wait_for(lambda: Task.objects.filter(group=GROUP_NOOP).count() >= n, 3600, f"{n} no-ops")
    finally:
        stop_cluster(cluster)
    span = Task.objects.filter(group=GROUP_NOOP).aggregate(a=Min("started"), b=Max("stopped"))
    floor = (span["b"] - span["a"]).total_seconds()
    purge(args.redis_url, args.name)

    print(f"[{label}] deactivating {n} members with the cluster stopped…", flush=True)
    before = Execution.objects.count()
    deactivating = run_clients(env, "_deactivate", leavers, args.clients)
    backlog = queued(broker, args.redis_url, args.name)
    jamf.reset()
    connection.close()
    cluster = start_cluster(env)
    expected = before + 2 * n
    try:
        wait_for(
            lambda: Execution.objects.filter(status__in=FINISHED).count() >= expected,
            7200,
            f"{2 * n} executions",
        )
        # A task may still be queued (a wake-up that finds its event taken, events.event_wake):
        # it is the run's work too, so the cluster runs it before it is stopped. A task
        # that raised stays on the ORM broker (redelivered after Q_RETRY): waited for 60 s at
        # most, then reported as left.
        with contextlib.suppress(SystemExit):
            wait_for(lambda: own_left(broker, args) == 0, 60, "the broker to empty")
    finally:
        stop_seconds = stop_cluster(cluster)
    span = Execution.objects.filter(member_id__in=leavers).aggregate(
        a=Min("started_at"), b=Max("finished_at")
    )
    drain = (span["b"] - span["a"]).total_seconds()
    found = leftovers(broker, args.redis_url, args.name)
    failed = failed_tasks()
    purge(args.redis_url, args.name)
    return {
        "run": label,
        "broker": broker,
        "workers": workers,
        "size": n,
        "keepalive": keepalive,
        "floor_s": floor,
        "drain_s": drain,
        "x_floor": drain / floor if floor else float("inf"),
        "events_per_s": n / drain if drain else 0.0,
        "deactivate_s": deactivating,
        "backlog": backlog,
        # The run's own tasks still queued (0 expected), apart from the scheduler's sweeps.
        "left_in_broker": sum(n for func, n in found.items() if func != SCHEDULED),
        "left_tasks": dict(found),
        "sweeps_left": found.get(SCHEDULED, 0),
        "failed_tasks": failed,
        "most_in_flight": jamf.most_in_flight,
        "locks": jamf.locks,
        "stop_s": stop_seconds,
    }


def kill_run(*, url: str, burst: list[int], args, jamf) -> dict:
    """Two clusters on one Redis and one database; one is SIGKILLed halfway."""
    from django.db import connection

    from assets.models import MDMCommand
    from automations.models import ActionLog, Execution
    from licenses.models import Entitlement

    n = len(burst)
    env = bench_env(url, broker="redis", workers=2, redis_url=args.redis_url, name=args.name)
    purge(args.redis_url, args.name)
    print(f"[kill] deactivating {n} members, then two clusters, one killed halfway…", flush=True)
    run_clients(env, "_deactivate", burst, args.clients)
    jamf.reset()
    Receiver.count, Receiver.ids = 0, set()
    connection.close()
    first, second = start_cluster(env), start_cluster(env)
    done = Execution.objects.filter(member_id__in=burst, status__in=FINISHED)
    try:
        wait_for(lambda: done.count() >= n, 3600, "half the burst")
        stop_cluster(first, signal.SIGKILL)
        killed_at = done.count()
        # The survivor does all it can on its own; what the killed cluster had taken is swept
        # up. "Idle" is nothing queued and no progress for 5 s: a burst waits as one task
        # (events.event_wake), so an empty queue alone may mean the survivor is mid-batch, and
        # the sweep's set-back leases would have its live attempts taken over.
        logs = ActionLog.objects.filter(execution__member_id__in=burst).exclude(
            status__in=["running", "pending"]
        )

        def idle() -> bool:
            before = (queued("redis", args.redis_url, args.name), done.count(), logs.count())
            time.sleep(5)
            after = (queued("redis", args.redis_url, args.name), done.count(), logs.count())
            return before[0] == 0 and before == after

        wait_for(idle, 3600, "the survivor to finish what it could")
        swept = sweep(env, burst)
        wait_for(lambda: done.count() >= 2 * n, 3600, "every execution of the burst")
        # The swept events' tasks (each finds its event done, or takes a batch) are the run's
        # work too: the survivor runs them before it is stopped, as in a run.
        for _ in range(2):  # empty, and still empty once what the cluster had fetched ran
            wait_for(
                lambda: queued("redis", args.redis_url, args.name) == 0, 300, "the queue to drain"
            )
            time.sleep(3)
    finally:
        stop_cluster(first, signal.SIGKILL)
        stop_cluster(second)
    executions = Execution.objects.filter(member_id__in=burst)
    live = Entitlement.objects.filter(member_id__in=burst, revoked_at__isnull=True).count()
    live_devices = Entitlement.objects.filter(
        asset__custodian_id__in=burst, member__isnull=True, revoked_at__isnull=True
    ).count()
    logs = ActionLog.objects.filter(execution__member_id__in=burst)
    locks = MDMCommand.objects.filter(asset__custodian_id__in=burst).count()
    result = {
        "burst": n,
        "killed_at": killed_at,
        "swept": swept,
        "executions": executions.count(),
        "finished": executions.filter(status__in=FINISHED).count(),
        "failed_executions": executions.exclude(status="succeeded").count(),
        "live_entitlements_left": live + live_devices,
        "lock_commands": locks,
        "devices": 2 * n,
        "webhook_logs": logs.filter(action_kind="webhook").count(),
        "deliveries": Receiver.count,
        "distinct_deliveries": len(Receiver.ids),
        "left_in_broker": sum(
            n
            for func, n in leftovers("redis", args.redis_url, args.name).items()
            if func != SCHEDULED
        ),
        "failed_tasks": failed_tasks(),
        "most_in_flight": jamf.most_in_flight,
    }
    purge(args.redis_url, args.name)
    return result


def request_cost(ids: list[int], samples: int) -> dict:
    """Median ms and queries: member_deactivate against a minimal member save, interleaved."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from members.models import Member
    from members.services import member_deactivate

    deactivate_ms, save_ms, deactivate_q, save_q = [], [], [], []
    for deactivate_pk, save_pk in zip(ids[:samples], ids[samples : 2 * samples], strict=True):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            member_deactivate(member=deactivate_pk, actor=None, reason="Benchmark")
            deactivate_ms.append((time.perf_counter() - start) * 1000)
        deactivate_q.append(len(captured))
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            with transaction.atomic():
                member = Member.objects.get(pk=save_pk)
                member.title = "Engineer II"
                member.save(update_fields=["title", "updated_at"])
            save_ms.append((time.perf_counter() - start) * 1000)
        save_q.append(len(captured))
    return {
        "deactivate_ms": statistics.median(deactivate_ms),
        "save_ms": statistics.median(save_ms),
        "deactivate_queries": statistics.median(deactivate_q),
        "save_queries": statistics.median(save_q),
    }


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000", help="leavers per run, comma separated")
    parser.add_argument("--brokers", default="orm,redis", help="orm, redis or both")
    parser.add_argument("--workers", default="1,2", help="workers per cluster, comma separated")
    parser.add_argument("--kill-burst", type=int, default=1000, help="0 skips the kill run")
    parser.add_argument("--clients", type=int, default=2, help="parallel deactivating processes")
    parser.add_argument("--request-samples", type=int, default=100)
    parser.add_argument("--mdm-delay-ms", type=float, default=20.0)
    parser.add_argument(
        "--keepalive",
        default="4",
        help="OUTBOUND_KEEPALIVE of the clusters, comma separated to compare (0: a new "
        "connection per request)",
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or DEFAULT_REDIS)
    parser.add_argument("--name", default="as_scale_bench", help="django-q2 cluster name")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    brokers = [b for b in args.brokers.split(",") if b]
    workers = [int(w) for w in args.workers.split(",") if w]
    keepalives = [int(k) for k in args.keepalive.split(",") if k]
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)

    receiver = start_receiver()
    webhook_url = f"http://127.0.0.1:{receiver.server_address[1]}/offboarding"
    env = bench_env(url, broker="orm", workers=1, redis_url=args.redis_url, name=args.name)
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    os.environ["BENCH_SECRET_KEY"] = env["SECRET_KEY"]  # the same key in every child
    sys.path[:0] = [str(ROOT), str(BENCH)]
    print(f"Load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    print(f"Creating the database {urlsplit(url).path.lstrip('/')} and migrating…", flush=True)
    recreate_database(url)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    jamf = start_jamf(args.mdm_delay_ms / 1000)
    # Compared settings of OUTBOUND_KEEPALIVE run side by side (one after the other per cell).
    plan = [(b, w, s, k) for s in sizes for b in brokers for w in workers for k in keepalives]
    total = sum(s for _, _, s, _ in plan) + args.kill_burst + 2 * args.request_samples
    started = time.monotonic()
    ids = populate(total, webhook_url, jamf)
    print(
        f"{total:,} members, {2 * total:,} enrolled devices, {5 * total:,} entitlements "
        f"in {time.monotonic() - started:.0f} s.",
        flush=True,
    )

    results, offset = [], 0
    for broker, worker_count, size, keepalive in plan:
        leavers, offset = ids[offset : offset + size], offset + size
        results.append(
            run(
                url=url,
                broker=broker,
                workers=worker_count,
                leavers=leavers,
                args=args,
                jamf=jamf,
                keepalive=keepalive,
            )
        )
    kill = None
    if args.kill_burst:
        kill = kill_run(url=url, burst=ids[offset : offset + args.kill_burst], args=args, jamf=jamf)
        offset += args.kill_burst
    costs = request_cost(ids[offset:], args.request_samples)
    purge(args.redis_url, args.name)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    receiver.shutdown()
    jamf.__exit__(None, None, None)

    print()
    print(f"Load average at end: {load} ({os.cpu_count()} CPUs)")
    header = (
        f"{'run':<24}{'floor s':>9}{'drain s':>9}{'x floor':>9}{'events/s':>10}"
        f"{'deact s':>9}{'in flight':>10}{'left':>6}  target"
    )
    print(header)
    print("-" * len(header))
    missed = []
    for r in results:
        ok = (
            r["x_floor"] <= 1.5
            and r["most_in_flight"] <= MDM_LIMIT
            and r["left_in_broker"] == 0
            and not r["failed_tasks"]
        )
        if not ok:
            missed.append(r["run"])
        print(
            f"{r['run']:<24}{r['floor_s']:>9.2f}{r['drain_s']:>9.2f}{r['x_floor']:>9.2f}"
            f"{r['events_per_s']:>10.1f}{r['deactivate_s']:>9.1f}{r['most_in_flight']:>10}"
            f"{r['left_in_broker']:>6}  {'met' if ok else 'MISSED'}"
        )
    for r in results:
        if r["failed_tasks"]:
            print(f"[{r['run']}] {len(r['failed_tasks'])} task(s) raised: {r['failed_tasks'][0]}")
        if r["left_in_broker"]:
            print(f"[{r['run']}] left in the broker: {r['left_tasks']}")
        if r["sweeps_left"]:
            print(
                f"[{r['run']}] {r['sweeps_left']} sweeper task(s) left in the broker: queued by "
                "the scheduler as the cluster stopped (not counted in `left`)"
            )
    for size, keepalive in ((s, k) for s in sizes for k in keepalives):

        def cell(count: int, size=size, keepalive=keepalive):
            return next(
                (
                    r
                    for r in results
                    if (r["broker"], r["workers"], r["size"], r["keepalive"])
                    == ("redis", count, size, keepalive)
                ),
                None,
            )

        one, two = cell(1), cell(2)
        if one and two:
            scale = two["events_per_s"] / one["events_per_s"]
            print(
                f"redis {size}{'' if keepalive else ' new-conn'}: 2 workers / 1 worker "
                f"throughput = {scale:.2f} "
                f"(target >= 1.6: {'met' if scale >= 1.6 else 'MISSED'})"
            )
    if kill:
        intact = (
            kill["executions"] == 2 * kill["burst"]
            and kill["finished"] == kill["executions"]
            and kill["live_entitlements_left"] == 0
            and kill["lock_commands"] == kill["devices"]
            and kill["webhook_logs"] == kill["executions"]
            and kill["left_in_broker"] == 0
            and not kill["failed_tasks"]
        )
        print(
            f"two clusters, one SIGKILLed at {kill['killed_at']}/{2 * kill['burst']} executions: "
            f"{kill['executions']} executions ({kill['finished']} finished, "
            f"{kill['failed_executions']} not succeeded), {kill['swept']} events left "
            f"unfinished and re-dispatched by the sweeper, {kill['live_entitlements_left']} "
            "entitlements left live, "
            f"{kill['lock_commands']}/{kill['devices']} lock commands, {kill['deliveries']} "
            f"webhook deliveries ({kill['distinct_deliveries']} distinct) for "
            f"{kill['webhook_logs']} webhook logs, {kill['left_in_broker']} left in the broker, "
            f"{len(kill['failed_tasks'])} tasks raised: "
            f"{'nothing lost or doubled' if intact else 'MISSED'}"
        )
    print(
        f"request: member_deactivate {costs['deactivate_ms']:.1f} ms "
        f"({costs['deactivate_queries']:.0f} queries) vs minimal member save "
        f"{costs['save_ms']:.1f} ms ({costs['save_queries']:.0f} queries): "
        f"{costs['deactivate_ms'] / costs['save_ms']:.2f}x"
    )
    in_flight = [r["most_in_flight"] for r in results] + ([kill["most_in_flight"]] if kill else [])
    print(
        f"MDM lock requests in flight at most: {max(in_flight, default=0)} "
        f"(cap {MDM_LIMIT} per connection)"
    )
    for size in sizes:
        # Every leaver has 2 devices on the one Jamf connection: the cap lets MDM_LIMIT lock
        # requests be in flight, each answered after --mdm-delay-ms, so no drain of `size`
        # leavers can be shorter than this, whatever the engine does.
        bound = 2 * size * args.mdm_delay_ms / 1000 / MDM_LIMIT
        print(
            f"MDM bound for {size:,} leavers: {2 * size:,} locks x {args.mdm_delay_ms:g} ms / "
            f"{MDM_LIMIT} in flight = {bound:.2f} s (the least a drain can take with this "
            "fake's latency and the cap)"
        )
    if missed:
        print(f"Runs that missed a target: {', '.join(missed)}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"load": load, "runs": results, "kill": kill, "request": costs}, indent=1)
        )
    if not args.keep:
        connection.close()
        recreate_database(url, create=False)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1].startswith("_"):
        client_main(sys.argv[1], sys.argv[2])
    else:
        main()
