"""Crash safety of device locks: a burst of leavers while the worker is SIGKILLed mid-way.

    BENCH_DATABASE_URL=postgres://user@host:5432/name .venv/bin/python bench/crashes.py
    .venv/bin/python bench/crashes.py --leavers 200 --kills 3

N leavers (default 200), each with 2 devices on two of the three fake vendors of
assets/tests/mdm_servers.py (Jamf Pro, Intune, Kandji: real HTTP on 127.0.0.1, each keeping the
locks it accepted and serving them on its documented read API), a Mac or PC and a phone, and two
enabled automations that lock devices (one also sends a webhook to a receiver that answers 200).
All N are deactivated through `member_deactivate`; a real `manage.py worker` (2 workers, DEBUG
off, PostgreSQL) works them off. The worker is SIGKILLed --kills times (default 3), each time at
the moment a vendor has accepted a lock and not yet answered (the fake vendor's on_accept hook),
then restarted; later the whole cluster gets SIGTERM (every process at once, as systemd's default
KillMode does) while busy and the time to stop is measured; it is restarted and the burst runs
to the end.

Printed: locks each vendor accepted per device (exactly 1 expected), stored PINs equal to the PIN
the device got, executions lost (not finished) or stuck (an action still open), locks recorded
by reconciliation (found at the vendor, not sent again), the shutdown time, the load average.
The worker's lease and the sweeper are shortened (bench/crash_settings.py) so recovery takes
seconds rather than the production minutes; nothing else differs from production settings.
The database is dropped and created at the start.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
PY = ROOT / ".venv" / "bin" / "python"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/assetsonar_crashes"
TIMEOUT = 900  # seconds for the whole burst


def bench_env(database_url: str, intune_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "crash_settings",
            "DATABASE_URL": database_url,
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "localhost,127.0.0.1",
            "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
            "WEBHOOK_ALLOW_HTTP": "true",
            "Q_WORKERS": "2",
            "Q_TIMEOUT": "20",
            "Q_RETRY": "30",
            "Q_SYNC": "false",
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            "BENCH_INTUNE_LOGIN_URL": intune_url,
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


# --- Processes ------------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
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


def start_worker(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
        [str(PY), "manage.py", "worker"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=sys.stderr,
    )


def kill_tree(process: subprocess.Popen) -> None:
    for pid in process_tree(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


def wait_ready(process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while len(process_tree(process.pid)) < 7 and time.monotonic() < deadline:
        time.sleep(0.1)


# --- Vendors and data -----------------------------------------------------------------------------


class Vendors:
    """The three fake vendors, the devices each knows, and the kill hook."""

    def __init__(self) -> None:
        from assets.tests.mdm_servers import IntuneServer, JamfServer, KandjiServer

        self.jamf, self.intune, self.kandji = JamfServer(), IntuneServer(), KandjiServer()
        for server in self.servers:
            server.__enter__()
            server.on_accept = self._accepted
        self.lock = threading.Lock()
        self.accepted = 0
        self.kill_at: list[int] = []
        self.worker: subprocess.Popen | None = None
        self.kills = 0

    @property
    def servers(self):
        return (self.jamf, self.intune, self.kandji)

    def _accepted(self, request) -> None:
        """The vendor holds the lock; the portal has not heard back: the moment to kill."""
        with self.lock:
            self.accepted += 1
            kill = self.kill_at and self.accepted >= self.kill_at[0] and self.worker is not None
            if kill:
                self.kill_at.pop(0)
                worker, self.worker = self.worker, None
        if kill:
            kill_tree(worker)
            self.kills += 1

    def close(self) -> None:
        for server in self.servers:
            server.__exit__(None, None, None)

    def locks_of(self, provider: str, device_id: str) -> int:
        if provider == "jamf":
            return sum(c["client"]["managementId"] == device_id for c in self.jamf.history)
        if provider == "intune":
            return self.intune.locked.count(device_id)
        return self.kandji.locks.count(device_id)

    def pin_of(self, provider: str, device_id: str) -> str:
        """The PIN the device got from its first lock (none where the lock takes none)."""
        if provider == "jamf":
            pins = [
                data.get("pin", "")
                for listed, data in zip(self.jamf.history, self.jamf.commands, strict=True)
                if listed["client"]["managementId"] == device_id
            ]
            return pins[0] if pins else ""
        if provider == "kandji":
            return self.kandji.pins.get(device_id, "")
        return ""


def populate(leavers: int, vendors: Vendors, webhook_url: str) -> list[int]:
    from django.utils import timezone

    from assets.models import Asset, CustodyRecord, MDMConnection
    from assetsonar.models import PortalSettings
    from automations.models import Action, Automation
    from members.models import Member

    now = timezone.now()
    row = PortalSettings.load()
    row.mdm_commands_enabled = True
    row.save()
    connections = {}
    for provider, server, credentials in (
        (
            "jamf",
            vendors.jamf,
            {"client_id": vendors.jamf.client_id, "client_secret": vendors.jamf.client_secret},
        ),
        (
            "intune",
            vendors.intune,
            {
                "tenant_id": vendors.intune.tenant_id,
                "client_id": vendors.intune.client_id,
                "client_secret": vendors.intune.client_secret,
            },
        ),
        ("kandji", vendors.kandji, {"api_token": vendors.kandji.api_token}),
    ):
        connection = MDMConnection(name=f"Bench {provider}", provider=provider, base_url=server.url)
        connection.set_credentials(credentials)
        connection.save()
        connections[provider] = connection
    people = Member.objects.bulk_create(
        Member(
            full_name=f"Crash Leaver {n:04d}",
            email=f"crash{n:04d}@bench.example",
            employee_id=f"C{n:04d}",
            department="Engineering",
        )
        for n in range(leavers)
    )
    providers = ("jamf", "intune", "kandji")
    assets = []
    for n, person in enumerate(people):
        for k, provider in enumerate((providers[n % 3], providers[(n + 1) % 3])):
            computer = k == 0
            device_id = f"{provider}-{n:04d}-{k}"
            platform = "ios" if not computer else ("windows" if provider == "intune" else "macos")
            if provider == "kandji":
                vendors.kandji.devices[device_id] = "Mac" if platform == "macos" else "iPhone"
            else:
                getattr(vendors, provider).devices.add(device_id)
            assets.append(
                Asset(
                    asset_tag=f"CR-{n:04d}-{k}",
                    name="Laptop" if computer else "Phone",
                    category=Asset.Category.LAPTOP if computer else Asset.Category.PHONE,
                    platform=platform,
                    serial_number=f"CRSN{n:04d}{k}",
                    status=Asset.Status.IN_CUSTODY,
                    custodian=person,
                    mdm_connection=connections[provider],
                    mdm_device_id=device_id,
                )
            )
    assets = Asset.objects.bulk_create(assets)
    CustodyRecord.objects.bulk_create(
        CustodyRecord(asset=a, member_id=a.custodian_id, checked_out_at=now) for a in assets
    )
    for n in (1, 2):
        automation = Automation.objects.create(name=f"Crash offboarding {n}")
        if n == 1:
            webhook = Action(
                automation=automation,
                kind="webhook",
                position=0,
                config={"url": webhook_url, "method": "POST"},
            )
            webhook.set_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            webhook.save()
        Action.objects.create(
            automation=automation,
            kind="mdm_lock",
            position=2,
            config={"message": "This device belongs to Bench Corp.", "phone": "+1 555 0100"},
        )
    return [p.pk for p in people]


# --- The run --------------------------------------------------------------------------------------


def finished(expected: int) -> bool:
    from automations.models import ActionLog, Execution

    return (
        Execution.objects.filter(finished_at__isnull=False).count() >= expected
        and not ActionLog.objects.filter(status__in=["pending", "running", "retrying"]).exists()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leavers", type=int, default=200)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    sys.path[:0] = [str(ROOT), str(BENCH)]
    load_before = os.getloadavg()

    vendors = None
    worker = None
    try:
        # The vendors first (plain HTTP servers, no Django): the Intune sign-in URL is a setting.
        vendors = Vendors()
        env = bench_env(url, vendors.intune.url)
        os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
        import django

        django.setup()
        from automations.tests.servers import WebhookReceiver

        print(f"Creating the database {urlsplit(url).path.lstrip('/')} and migrating…", flush=True)
        recreate_database(url)
        from django.core.management import call_command
        from django.db import connection

        connection.close()
        call_command("migrate", verbosity=0)
        receiver = WebhookReceiver().__enter__()
        leavers = populate(args.leavers, vendors, receiver.url())
        devices = 2 * args.leavers
        expected = 2 * args.leavers  # executions: two automations per leaver
        # Kills spread over the burst's lock acceptances; then a busy group SIGTERM.
        step = devices // (args.kills + 2)
        vendors.kill_at = [step * (k + 1) for k in range(args.kills)]
        kill_points = list(vendors.kill_at)
        term_at = step * (args.kills + 1)
        connection.close()

        worker = start_worker(env)
        vendors.worker = worker
        wait_ready(worker)
        from members.services import member_deactivate

        started = time.monotonic()
        for pk in leavers:
            member_deactivate(member=pk, actor=None, reason="Burst")
        print(
            f"{args.leavers} leavers deactivated ({devices} devices on 3 vendors, 2 lock "
            f"automations each); killing the worker at accepted locks {kill_points}, "
            f"SIGTERM at {term_at}…",
            flush=True,
        )
        shutdown = None
        deadline = started + TIMEOUT
        while time.monotonic() < deadline:
            if vendors.worker is None:  # killed by the hook: restart
                time.sleep(0.2)
                worker = start_worker(env)
                wait_ready(worker)
                with vendors.lock:
                    vendors.worker = worker
            if shutdown is None and vendors.accepted >= term_at and vendors.worker is not None:
                with vendors.lock:
                    worker, vendors.worker = vendors.worker, None
                tree = process_tree(worker.pid)
                t0 = time.monotonic()
                for pid in tree:  # every process at once: systemd's KillMode=control-group
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
                worker.wait(timeout=30)
                shutdown = time.monotonic() - t0
                worker = start_worker(env)
                wait_ready(worker)
                with vendors.lock:
                    vendors.worker = worker
            if finished(expected):
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        report(vendors, args, elapsed, shutdown, receiver, load_before)
    finally:
        if vendors is not None:
            with vendors.lock:
                worker = vendors.worker or worker
                vendors.worker = None
            vendors.close()
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=15)
        if not args.keep:
            from django.db import connection

            connection.close()
            recreate_database(url, create=False)


def report(vendors, args, elapsed, shutdown, receiver, load_before) -> None:
    from assets.models import Asset, MDMCommand
    from automations.models import ActionLog, Event, Execution

    per_device: Counter = Counter()
    pins_equal = pins_total = pins_wrong = 0
    for asset in Asset.objects.select_related("mdm_connection"):
        provider = asset.mdm_connection.provider
        per_device[vendors.locks_of(provider, asset.mdm_device_id)] += 1
        device_pin = vendors.pin_of(provider, asset.mdm_device_id)
        commands = [c for c in MDMCommand.objects.filter(asset=asset) if c.pin_on_device]
        if device_pin:
            pins_total += 1
            stored = commands[0].get_pin() if commands else ""
            pins_equal += stored == device_pin
            pins_wrong += stored != device_pin
        elif commands:
            pins_wrong += 1  # a PIN offered for a device that has none
    executions = Execution.objects.count()
    lost = Execution.objects.filter(finished_at__isnull=True).count() + (
        2 * args.leavers - executions
    )
    stuck = ActionLog.objects.filter(status__in=["pending", "running", "retrying"]).count()
    events_open = Event.objects.exclude(status=Event.Status.DONE).count()
    reconciled = ActionLog.objects.filter(insight__startswith="Lock found at").count()
    reused = ActionLog.objects.filter(insight__startswith="Already locked by").count()
    statuses = Counter(Execution.objects.values_list("status", flat=True))
    webhook_ids = {r.headers.get("webhook-id") for r in receiver.requests}
    load_after = os.getloadavg()

    rows = [
        ("leavers / devices", f"{args.leavers} / {2 * args.leavers}"),
        ("worker SIGKILLed mid-burst", f"{vendors.kills} (at a vendor's acceptance)"),
        ("devices locked exactly once", f"{per_device[1]} of {2 * args.leavers}"),
        ("devices locked twice or more", str(sum(n for k, n in per_device.items() if k > 1))),
        ("devices never locked", str(per_device[0])),
        ("stored PIN = device's PIN", f"{pins_equal} of {pins_total} devices with a PIN"),
        ("PINs wrong or offered wrongly", str(pins_wrong)),
        ("locks found at the vendor", f"{reconciled} (recorded without sending again)"),
        ("second automation reused lock", str(reused)),
        ("executions lost / stuck", f"{lost} / {stuck} (events not done: {events_open})"),
        ("execution statuses", ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))),
        ("webhook deliveries (ids)", f"{len(receiver.requests)} ({len(webhook_ids)} distinct)"),
        (
            "group SIGTERM → stopped",
            f"{shutdown:.2f} s (busy, every process at once)" if shutdown else "not reached",
        ),
        ("burst wall time", f"{elapsed:.0f} s"),
        (
            "load average (1, 5, 15 min)",
            " → ".join("/".join(f"{x:.2f}" for x in load) for load in (load_before, load_after)),
        ),
    ]
    print()
    width = max(len(name) for name, _ in rows) + 2
    for name, value in rows:
        print(f"{name:<{width}}{value}")
    ok = (
        per_device[1] == 2 * args.leavers
        and pins_equal == pins_total
        and not pins_wrong
        and not lost
        and not stuck
        and shutdown is not None
        and shutdown < 10
    )
    print()
    print(
        f"Done when (every device locked once, PINs kept, nothing lost, stop < 10 s): "
        f"{'met' if ok else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
