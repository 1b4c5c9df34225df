"""The engine's cost per event, in process and independent of the machine's load: CPU time and
queries, not wall clock.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<yours> .venv/bin/python bench/engine_profile.py
    ... --members 500 --profile 40        # also the 40 costliest functions (cProfile, cumulative,
                                          # in each thread's CPU time: waits are not counted)

The database named by DATABASE_URL is dropped and created (use one of your own). It is filled as
`bench/offboarding.py` fills its own (2 Jamf-enrolled devices and 5 entitlements per member, 2
automations with a webhook, license revocation and an MDM lock); the webhook receiver and the
Jamf fake run in a child process, so their CPU is not counted here. The members are deactivated
with no worker running (their events wait, pending); then `automations.engine.runner.
event_process` runs as the worker's tasks would: the queued tasks are taken off the ORM broker
and run in this process until none is left (the deactivations queue one; each task takes a
batch of pending events and queues the next batch's task, events.event_wake); the broker's
queries are counted with the engine's.

Printed per event: queries (every connection of this process that goes through Django's
cursor: the MDM slot queries of assets/mdm/throttle.py run on the driver's connection and are
not counted), this process's CPU time (all threads) and the main thread's, the CPU time of the
PostgreSQL backends serving those connections (read from /proc: the server runs on this host),
and the queries by kind (statement and table), for the drain and for the deactivations apart.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import multiprocessing
import os
import pstats
import re
import secrets
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(BENCH)]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _servers(conn, delay: float) -> None:
    """Child process: the webhook receiver and the Jamf fake; sends their addresses, then serves
    until the parent closes the pipe."""
    import offboarding

    receiver = offboarding.start_receiver()
    jamf = offboarding.start_jamf(delay)
    conn.send(
        {
            "webhook": f"http://127.0.0.1:{receiver.server_address[1]}/offboarding",
            "url": jamf.url,
            "client_id": jamf.client_id,
            "client_secret": jamf.client_secret,
        }
    )
    with contextlib.suppress(EOFError):
        conn.recv()
    conn.send({"locks": jamf.locks, "most_in_flight": jamf.most_in_flight, "hooks": 0})


class _JamfAddress:
    def __init__(self, info: dict) -> None:
        self.url, self.client_id, self.client_secret = (
            info["url"],
            info["client_id"],
            info["client_secret"],
        )


class Meter:
    """Queries of every connection of this process, by kind, and the CPU time of their
    PostgreSQL backends."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kinds: Counter[str] = Counter()
        self.count = 0
        self.backends: dict[int, int] = {}  # backend pid -> CPU ticks at the start

    def __call__(self, execute, sql, params, many, context):
        with self.lock:
            self.count += 1
            self.kinds[kind_of(sql)] += 1
        return execute(sql, params, many, context)

    def attach(self, connection) -> None:
        if self not in connection.execute_wrappers:
            connection.execute_wrappers.append(self)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # not counted: the wrapper sees cursor.execute
                cursor.cursor.execute("SELECT pg_backend_pid()")
                pid = cursor.cursor.fetchone()[0]
            self.backends.setdefault(pid, _ticks(pid))

    def reset(self) -> None:
        with self.lock:
            self.kinds.clear()
            self.count = 0
            self.backends = {pid: _ticks(pid) for pid in self.backends}

    def backend_seconds(self) -> float:
        return sum(_ticks(pid) - start for pid, start in self.backends.items()) / CLOCK_TICKS


def _ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def kind_of(sql: str) -> str:
    """'UPDATE automations_actionlog', 'SELECT members_member', 'SAVEPOINT', ..."""
    words = sql.lstrip().split(None, 1)
    verb = words[0].upper() if words else "?"
    table = ""
    pattern = {
        "SELECT": r'FROM\s+"?(\w+)"?',
        "INSERT": r'INTO\s+"?(\w+)"?',
        "UPDATE": r'UPDATE\s+"?(\w+)"?',
        "DELETE": r'FROM\s+"?(\w+)"?',
    }.get(verb)
    if pattern:
        found = re.search(pattern, sql, re.IGNORECASE)
        table = found.group(1) if found else ""
        if verb == "SELECT" and "pg_try_advisory_lock" in sql:
            table = "pg_try_advisory_lock"
        elif verb == "SELECT" and "pg_advisory_unlock" in sql:
            table = "pg_advisory_unlock"
        elif verb == "SELECT" and "FOR UPDATE" in sql.upper():
            verb = "SELECT FOR UPDATE"
    return f"{verb} {table}".strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--mdm-delay-ms", type=float, default=0.0)
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key")
    parser.add_argument(
        "--threads", action="store_true", help="profile the send pools' threads too (slower)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database of your own (it is dropped).")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "assetsonar.settings",
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
            "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
            "WEBHOOK_ALLOW_HTTP": "true",
            "Q_BROKER": "orm",
            "Q_SYNC": "false",
            "LOG_LEVEL": "WARNING",
        }
    )
    parent, child = multiprocessing.get_context("fork").Pipe()
    server = multiprocessing.get_context("fork").Process(
        target=_servers, args=(child, args.mdm_delay_ms / 1000), daemon=True
    )
    server.start()
    if not parent.poll(60):
        raise SystemExit("The webhook receiver and Jamf fake did not start (see above).")
    info = parent.recv()

    import offboarding

    offboarding.recreate_database(url)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.db.backends.signals import connection_created

    from automations.models import ActionLog, Event, Execution
    from licenses.models import Entitlement
    from members.services import member_deactivate

    call_command("migrate", verbosity=0)
    ids = offboarding.populate(args.members, info["webhook"], _JamfAddress(info))
    meter = Meter()
    meter.attach(connection)
    connection_created.connect(
        lambda sender, connection, **kw: meter.attach(connection), weak=False
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    n = len(ids)

    meter.reset()
    cpu, wall = time.process_time(), time.perf_counter()
    for pk in ids:
        member_deactivate(member=pk, actor=None, reason="Benchmark leaver")
    deact = (time.process_time() - cpu, time.perf_counter() - wall, meter.backend_seconds())
    deact_queries, deact_kinds = meter.count, Counter(meter.kinds)

    events = list(
        Event.objects.filter(status=Event.Status.PENDING)
        .order_by("occurred_at")
        .values_list("pk", flat=True)
    )
    from django.utils.module_loading import import_string
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    broker = get_broker()  # the ORM broker: the deactivations queued their wake-up task there

    def work_off_queue() -> int:
        # What a worker does (its cluster's pusher takes the task off the broker, the worker
        # runs it and acknowledges it), here in this thread, until nothing is queued.
        ran = 0
        while batch := broker.dequeue():
            for ack_id, payload in batch:
                task = SignedPackage.loads(payload)
                import_string(task["func"])(*task["args"], **task["kwargs"])
                broker.acknowledge(ack_id)
                ran += 1
        return ran

    meter.reset()
    profiler = cProfile.Profile(time.thread_time) if args.profile else None
    profilers = [profiler] if profiler else []

    def profile_thread(*_) -> None:
        # The send pools' threads: each gets a profiler of its own (added to the report).
        profilers.append(cProfile.Profile(time.thread_time))
        profilers[-1].enable()

    if profiler and args.threads:
        threading.setprofile(profile_thread)
    cpu, wall, main = time.process_time(), time.perf_counter(), time.thread_time()
    if profiler:
        profiler.enable()
    ran = work_off_queue()
    if profiler:
        profiler.disable()
        threading.setprofile(None)
    main = time.thread_time() - main
    drain = (time.process_time() - cpu, time.perf_counter() - wall, meter.backend_seconds())
    queries, kinds = meter.count, Counter(meter.kinds)

    parent.send("done")
    served = parent.recv()
    finished = Execution.objects.filter(status="succeeded").count()
    live = Entitlement.objects.filter(revoked_at__isnull=True).count()
    failed_logs = ActionLog.objects.exclude(status__in=["succeeded"]).count()

    from assetsonar.tallies import tallies_recount

    wrong = tallies_recount(fix=False)
    print(
        f"Load average: {load} ({os.cpu_count()} CPUs); {n} leavers, {len(events)} events, "
        f"{ran} tasks"
    )
    print(
        f"checks: {finished}/{2 * n} executions succeeded, {live} entitlements left live, "
        f"{failed_logs} logs not succeeded, {served['locks']} lock requests, counts off: "
        f"{sum(wrong.values())} ({wrong})"
    )
    print()
    print(f"{'per event':<22}{'queries':>9}{'CPU ms':>9}{'PG CPU ms':>11}{'wall ms':>9}")
    for label, q, (c, w, b) in (
        ("drain (queued tasks)", queries, drain),
        ("member_deactivate", deact_queries, deact),
    ):
        print(
            f"{label:<22}{q / n:>9.2f}{1000 * c / n:>9.2f}{1000 * b / n:>11.2f}{1000 * w / n:>9.2f}"
        )
    print(f"of the drain's CPU, this thread's (not the send pools'): {1000 * main / n:.2f} ms")
    print()
    print("drain queries per event, by kind:")
    for kind, count in kinds.most_common():
        print(f"  {count / n:7.2f}  {kind}")
    print("deactivation queries per member, by kind:")
    for kind, count in deact_kinds.most_common():
        print(f"  {count / n:7.2f}  {kind}")
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        for other in profilers[1:]:
            other.disable()
            stats.add(other)
        stats.sort_stats(args.sort).print_stats(args.profile)
        print(out.getvalue())
    if not args.keep:
        connection.close()
        for conn in django.db.connections.all():
            conn.close()
        from assets.mdm import throttle

        throttle.close()
        offboarding.recreate_database(url, create=False)


if __name__ == "__main__":
    main()
