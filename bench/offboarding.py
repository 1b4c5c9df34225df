"""Offboarding throughput on PostgreSQL with a real django-q2 cluster (2 workers).

    .venv/bin/python bench/offboarding.py                # 1,000 members, database assetsonar_bench
    .venv/bin/python bench/offboarding.py --members 200 --keep  # smaller, keep the database
    BENCH_DATABASE_URL=postgres://user@host:5432/name .venv/bin/python bench/offboarding.py

What it measures, in one run against one cluster:

1. The floor: N no-op tasks through the cluster, from the first enqueue to the last one finished.
2. Offboarding: N members, each with 2 MDM-enrolled devices (simulator connection) and 5
   entitlements, and 2 enabled automations with all three actions (webhook to a threaded receiver
   in this process that answers 200, license revocation, MDM lock). All N members are deactivated
   through `member_deactivate` (the real trigger: post_save receiver, event row, on_commit
   enqueue); the time runs from the first deactivation to the last execution finished.
3. The request: the member deactivate view (POST, through Django's test client) against a plain
   member save (the member edit POST), interleaved one for one, medians compared.

Targets (issue 4): offboarding under 3x the no-op floor; the deactivation request within 1.5x of
a plain save. The database is dropped and created at the start; the cluster is a `manage.py
qcluster` subprocess with the same environment, stopped at the end.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
PY = ROOT / ".venv" / "bin" / "python"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/assetsonar_bench"
GROUP_NOOP = "bench-noop"
# Deactivate and edit requests timed (each), on members outside the offboarding set.
REQUEST_SAMPLES = 100
# Events worked off in-process to report one event's cost in time and queries.
PROFILE_SAMPLES = 20


def noop() -> None:
    """The floor: a task that does nothing (run by the cluster as `offboarding.noop`)."""


# --- Webhook receiver -----------------------------------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    """Answers every webhook delivery with 200 and counts them."""

    count = 0
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with Receiver.lock:
            Receiver.count += 1
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_POST  # noqa: N815

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature of the base
        return


def start_receiver() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --- Environment ----------------------------------------------------------------------------------


def bench_env(database_url: str) -> dict[str, str]:
    """The environment of this process and of the cluster: same database and settings."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "assetsonar.settings",
            "DATABASE_URL": database_url,
            "DEBUG": "true",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
            "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
            "WEBHOOK_ALLOW_HTTP": "true",
            "Q_WORKERS": "2",
            "Q_SYNC": "false",
            "LOG_LEVEL": "WARNING",
            # The cluster imports the no-op task from here (`offboarding.noop`).
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH)]),
        }
    )
    return env


def recreate_database(url: str, *, create: bool = True) -> None:
    """Drop the bench database (and create it empty again unless `create` is false)."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')


# --- Data -----------------------------------------------------------------------------------------


def populate(members: int, webhook_url: str) -> dict:
    """N members with 2 enrolled devices (in custody) and 5 live entitlements each, 2 automations
    with all three actions, MDM commands switched on. Bulk inserts: creating members and assets
    fires no trigger (only a status transition does)."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from assets.models import Asset, CustodyRecord, MDMConnection
    from assetsonar.models import PortalSettings
    from automations.models import Action, Automation
    from licenses.models import Entitlement, License
    from members.models import Member

    now = timezone.now()
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "x")
    settings_row = PortalSettings.load()
    settings_row.mdm_commands_enabled = True
    settings_row.save()
    mdm = MDMConnection.objects.create(
        name="Bench MDM (simulator)", provider=MDMConnection.Provider.SIMULATOR
    )

    total = members + 2 * REQUEST_SAMPLES
    people = Member.objects.bulk_create(
        Member(
            full_name=f"Bench Member {n:05d}",
            email=f"bench{n:05d}@bench.example",
            employee_id=f"B{n:05d}",
            department=("Engineering", "Sales", "Support")[n % 3],
            location="Berlin",
            title="Engineer",
        )
        for n in range(total)
    )
    assets = Asset.objects.bulk_create(
        Asset(
            asset_tag=f"BA-{n:06d}",
            name=("MacBook Pro", "iPhone 15")[n % 2],
            category=(Asset.Category.LAPTOP, Asset.Category.PHONE)[n % 2],
            platform=(Asset.Platform.MACOS, Asset.Platform.IOS)[n % 2],
            serial_number=f"BSN{n:08d}",
            status=Asset.Status.IN_CUSTODY,
            custodian=people[n // 2],
            mdm_connection=mdm,
            mdm_device_id=f"bench-device-{n:06d}",
        )
        for n in range(2 * total)
    )
    CustodyRecord.objects.bulk_create(
        CustodyRecord(asset=asset, member_id=asset.custodian_id, checked_out_at=now)
        for asset in assets
    )
    kinds = [License.Kind.USER, License.Kind.USER, License.Kind.CLOUD, License.Kind.USER]
    licenses = [
        License.objects.create(name=f"Bench app {n}", vendor="Bench", kind=kind, seats=total)
        for n, kind in enumerate(kinds)
    ]
    device_license = License.objects.create(
        name="Bench endpoint agent", vendor="Bench", kind=License.Kind.DEVICE, seats=total
    )
    entitlements = []
    for index, member in enumerate(people):
        laptop = assets[2 * index]
        # 3 user-based/cloud, 1 user-on-device, 1 device-based on the laptop.
        entitlements += [
            Entitlement(license=licenses[0], member=member, assigned_at=now),
            Entitlement(license=licenses[1], member=member, assigned_at=now),
            Entitlement(license=licenses[2], member=member, assigned_at=now),
            Entitlement(license=licenses[3], member=member, asset=laptop, assigned_at=now),
            Entitlement(license=device_license, asset=laptop, assigned_at=now),
        ]
    Entitlement.objects.bulk_create(entitlements, batch_size=5000)

    for n in (1, 2):
        automation = Automation.objects.create(
            name=f"Bench offboarding {n}", created_by=user, updated_by=user
        )
        webhook = Action(
            automation=automation, kind=Action.Kind.WEBHOOK, position=0, url=webhook_url
        )
        webhook.set_secret("whsec_" + base64.b64encode(os.urandom(24)).decode())
        webhook.save()
        Action.objects.create(
            automation=automation,
            kind=Action.Kind.REVOKE_LICENSES,
            position=1,
            revoke_user_based=True,
            revoke_user_machine=True,
            revoke_device_based=True,
        )
        Action.objects.create(
            automation=automation,
            kind=Action.Kind.MDM_LOCK,
            position=2,
            lock_message="This device belongs to Bench Corp. Please return it to IT.",
            lock_phone="+1 555 0100",
        )
    return {
        "user": user,
        "leavers": [m.pk for m in people[:members]],
        "deactivate_sample": [m.pk for m in people[members : members + REQUEST_SAMPLES]],
        "edit_sample": [m.pk for m in people[members + REQUEST_SAMPLES :]],
    }


# --- Cluster --------------------------------------------------------------------------------------


def start_cluster(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
        [str(PY), "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        process_group=0,
        stdout=subprocess.DEVNULL,
        stderr=sys.stderr,
    )


def stop_cluster(cluster: subprocess.Popen) -> None:
    if cluster.poll() is not None:
        return
    # SIGINT is the cluster's clean shutdown (as `make run` stops it); SIGKILL if it hangs.
    os.killpg(cluster.pid, signal.SIGINT)
    try:
        cluster.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(cluster.pid, signal.SIGKILL)
        cluster.wait()


def noop_task_name() -> str:
    """The engine's no-op task when it has one, so the floor runs the same import path."""
    try:
        from automations import tasks

        if callable(getattr(tasks, "noop", None)):
            return "automations.tasks.noop"
    except ImportError:
        pass
    return "offboarding.noop"


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"Timed out after {timeout:.0f} s waiting for {what}.")


def warm_up(task: str) -> None:
    from django_q.tasks import async_task, result

    task_id = async_task(task)
    wait_for(lambda: result(task_id) is not None or _done(task_id), 120, "the cluster to start")


def _done(task_id: str) -> bool:
    from django_q.models import Task

    return Task.objects.filter(id=task_id).exists()


def time_noop(task: str, count: int) -> float:
    """Seconds from the first enqueue to the last no-op task finished.

    Done means the broker's queue is empty (the ORM broker deletes a task's row when the cluster
    acknowledges it, after saving its result). Counting result rows would not do: django-q2 keeps
    only the newest `save_limit` of them.
    """
    from django.db.models import Max
    from django_q.models import OrmQ, Task
    from django_q.tasks import async_task

    Task.objects.all().delete()
    started = time.time()
    for _ in range(count):
        async_task(task, group=GROUP_NOOP)
    wait_for(lambda: not OrmQ.objects.exists(), 600, f"{count} no-op tasks")
    last = Task.objects.filter(group=GROUP_NOOP).aggregate(last=Max("stopped"))["last"]
    return last.timestamp() - started


def time_offboarding(leavers: list[int], user, expected: int) -> tuple[float, float]:
    """Deactivate every leaver through the service; seconds from the first deactivation to the
    last execution finished, and seconds the deactivation calls took."""
    from django.db.models import Max

    from automations.models import Execution
    from members.services import member_deactivate

    finished = ("succeeded", "partially_failed", "failed")
    started = time.time()
    for pk in leavers:
        member_deactivate(member=pk, actor=user, reason="Benchmark leaver")
    deactivated = time.time() - started
    wait_for(
        lambda: Execution.objects.filter(status__in=finished).count() >= expected,
        3600,
        f"{expected} executions to finish",
        interval=0.2,
    )
    last = Execution.objects.aggregate(last=Max("finished_at"))["last"]
    return last.timestamp() - started, deactivated


def time_requests(user, deactivate_ids: list[int], edit_ids: list[int]) -> tuple[float, float]:
    """Median seconds of the deactivate POST and of a plain member edit POST, interleaved."""
    from django.test import Client
    from django.urls import reverse

    from members.models import Member

    client = Client()
    client.force_login(user)
    deactivations, edits = [], []
    for deactivate_pk, edit_pk in zip(deactivate_ids, edit_ids, strict=True):
        start = time.perf_counter()
        response = client.post(
            reverse("members:deactivate", args=[deactivate_pk]), {"reason": "Benchmark"}
        )
        deactivations.append(time.perf_counter() - start)
        assert response.status_code == 302, response.status_code

        member = Member.objects.get(pk=edit_pk)
        data = {
            "full_name": member.full_name,
            "email": member.email,
            "employee_id": member.employee_id,
            "department": member.department,
            "location": member.location,
            "title": member.title + " II",
            "manager": "",
            "employment_type": member.employment_type,
        }
        start = time.perf_counter()
        response = client.post(reverse("members:edit", args=[edit_pk]), data)
        edits.append(time.perf_counter() - start)
        assert response.status_code == 302, response.status_code
    return statistics.median(deactivations), statistics.median(edits)


def profile_events(sample: int) -> tuple[float, float]:
    """Milliseconds and queries per event when this process works off `sample` queued events
    (those the timed deactivation requests queued while the cluster was stopped). A task takes
    other pending events into its batch, so the cost is measured over everything the calls
    processed, divided by the number of events that got done: where the time goes."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from automations.models import Event
    from automations.tasks import process_event

    pending = list(
        Event.objects.filter(status=Event.Status.PENDING).values_list("pk", flat=True)[:sample]
    )
    if not pending:
        return 0.0, 0.0
    waiting = Event.objects.filter(status=Event.Status.PENDING)
    before = waiting.count()
    with CaptureQueriesContext(connection) as captured:
        start = time.perf_counter()
        for pk in pending:
            process_event(str(pk))
        elapsed = time.perf_counter() - start
    done = max(before - waiting.count(), 1)  # batches take other pending events too
    return elapsed * 1000 / done, len(captured) / done


def outcome_summary() -> list[str]:
    from django.db.models import Count

    from automations.models import ActionLog, Execution

    lines = []
    executions = dict(
        Execution.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    lines.append(f"executions by status: {executions}")
    for row in (
        ActionLog.objects.values("action_kind", "status")
        .annotate(n=Count("id"))
        .order_by("action_kind", "status")
    ):
        lines.append(f"  {row['action_kind']:<16} {row['status']:<10} {row['n']}")
    return lines


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    # `kill` or a closed terminal still runs the `finally` that stops the cluster.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)

    receiver = start_receiver()
    webhook_url = f"http://127.0.0.1:{receiver.server_address[1]}/offboarding"
    env = bench_env(url)
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    sys.path[:0] = [str(ROOT), str(BENCH)]

    print(f"Creating the database {urlsplit(url).path.lstrip('/')} and migrating…", flush=True)
    recreate_database(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    data = populate(args.members, webhook_url)
    print(
        f"{args.members} members, {2 * args.members} enrolled devices, "
        f"{5 * args.members} entitlements, 2 automations with all three actions.",
        flush=True,
    )

    from django.db import connection

    connection.close()
    cluster = start_cluster(env)
    try:
        task = noop_task_name()
        warm_up(task)
        print(f"Cluster up (2 workers). Timing {args.members} no-op tasks ({task})…", flush=True)
        floor = time_noop(task, args.members)
        print(f"Deactivating {args.members} members…", flush=True)
        offboarding, deactivating = time_offboarding(
            data["leavers"], data["user"], expected=2 * args.members
        )
        summary = outcome_summary()
        delivered = Receiver.count
    finally:
        stop_cluster(cluster)
    print(f"Timing {REQUEST_SAMPLES} deactivation requests against plain member saves…")
    deactivate_request, save_request = time_requests(
        data["user"], data["deactivate_sample"], data["edit_sample"]
    )
    event_ms, event_queries = profile_events(PROFILE_SAMPLES)
    receiver.shutdown()

    executions = 2 * args.members
    rows = [
        ("no-op tasks (floor)", args.members, floor, args.members / floor, 1.0),
        (
            "offboarding executions",
            executions,
            offboarding,
            executions / offboarding,
            offboarding / floor,
        ),
    ]
    print()
    print(f"{'':<24}{'count':>8}{'seconds':>10}{'per second':>12}{'x floor':>10}")
    for name, count, seconds, rate, ratio in rows:
        print(f"{name:<24}{count:>8}{seconds:>10.2f}{rate:>12.1f}{ratio:>10.2f}")
    print(
        f"(deactivating the {args.members} members took {deactivating:.2f} s of that; "
        f"{delivered} webhook deliveries received)"
    )
    print()
    ratio = deactivate_request / save_request
    print(f"{'request (median of ' + str(REQUEST_SAMPLES) + ')':<24}{'ms':>10}")
    print(f"{'member edit POST':<24}{save_request * 1000:>10.1f}")
    print(f"{'member deactivate POST':<24}{deactivate_request * 1000:>10.1f}")
    print(f"{'ratio':<24}{ratio:>10.2f}")
    print()
    print(
        f"per event, worked off in-process ({PROFILE_SAMPLES} tasks, batched): {event_ms:.1f} ms, "
        f"{event_queries:.1f} queries (2 executions, each with all three actions)"
    )
    print("\n".join(summary))
    print()
    target_throughput = offboarding / floor < 3
    target_request = ratio <= 1.5
    print(f"Target offboarding < 3x floor: {'met' if target_throughput else 'MISSED'}")
    print(f"Target deactivation request <= 1.5x save: {'met' if target_request else 'MISSED'}")

    if not args.keep:
        connection.close()
        recreate_database(url, create=False)


if __name__ == "__main__":
    main()
