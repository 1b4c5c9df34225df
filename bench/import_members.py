"""Time `manage.py import_members` (the HR CSV import) and how long it holds the write lock.

    .venv/bin/python bench/import_members.py                        # SQLite, 5,000 rows
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/assetsonar_import \\
        .venv/bin/python bench/import_members.py --rows 100000 --anchor-rows 0

Each run is a fresh process on a fresh copy of one seeded database (SQLite: a copied file;
PostgreSQL: the database given, re-created from a `<name>_seed` template), so every run imports
the same file into the same data. Two files per size:

- `hr export`: what an HR system sends every night: `rows` lines with every column, 80% of them
  members already in the database (20% of those with a changed title or department, 1% leaving:
  status deactivated), 20% new members reporting to existing managers; `status` is filled on
  every line, as exports do.
- `leavers`: a mass offboarding, every line an existing member with status deactivated
  (`--leavers` lines): each is a service call and an automation event.

While each import runs, a second process saves another member every 50 ms through
member_update: the table says how many of those writes failed and the longest one took (on
SQLite that is the wait for the import's write lock).

The anchor is the import as it was before the two-phase rewrite (members/importers.py at
`--anchor-rev`, loaded from git), run on the same data, interleaved with ours; it is only run up
to `--anchor-rows` lines because it takes about a minute for 5,000. DEBUG is off (production
settings with a throwaway SECRET_KEY).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PY = ROOT / ".venv" / "bin" / "python"
ANCHOR_REV = "4d1f342"
DEPARTMENTS = ["Engineering", "Sales", "Finance", "Design", "Support", "People"]
LOCATIONS = ["Berlin", "Lisbon", "London", "Austin"]
HEADER = [
    "full_name",
    "email",
    "employee_id",
    "department",
    "location",
    "title",
    "employment_type",
    "manager_email",
    "status",
    "deactivation_reason",
]


# --- Child processes: seed, and one import --------------------------------------------------------


def child_env(database_url: str, sqlite_path: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="assetsonar.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=database_url,
        SQLITE_PATH=sqlite_path,
        LOG_LEVEL="WARNING",
    )
    return env


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def seed(members: int) -> None:
    """`members` members, one in ten a manager of the next nine, plus the concurrent writer's."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from members.models import Member

    batch = []
    for n in range(members + 1):
        batch.append(
            Member(
                full_name=f"Person {n}",
                email=f"person{n}@example.com",
                employee_id=f"E{n:07d}",
                department=DEPARTMENTS[n % len(DEPARTMENTS)],
                location=LOCATIONS[n % len(LOCATIONS)],
                title="Engineer",
            )
        )
    Member.objects.bulk_create(batch, batch_size=1000)
    by_email = dict(Member.objects.values_list("email", "pk"))
    managed = []
    for n in range(members):
        if n % 10:
            member = Member(pk=by_email[f"person{n}@example.com"])
            member.manager_id = by_email[f"person{n - n % 10}@example.com"]
            managed.append(member)
    from assetsonar.bulk import rows_update

    rows_update(Member, managed, ["manager"])


def write_files(directory: Path, rows: int, leavers: int) -> dict[str, Path]:
    existing = int(rows * 0.8)
    export = io.StringIO()
    writer = csv.writer(export)
    writer.writerow(HEADER)
    for n in range(existing):
        department = DEPARTMENTS[n % len(DEPARTMENTS)]
        title = "Engineer"
        status = "active"
        if n % 100 == 3:
            status = "deactivated"
        elif n % 10 == 5:
            title = "Senior Engineer"
        elif n % 10 == 7:
            department = DEPARTMENTS[(n + 1) % len(DEPARTMENTS)]
        manager = f"person{n - n % 10}@example.com" if n % 10 else ""
        writer.writerow(
            [
                f"Person {n}",
                f"person{n}@example.com",
                f"E{n:07d}",
                department,
                LOCATIONS[n % len(LOCATIONS)],
                title,
                "full_time",
                manager,
                status,
                "Left the company" if status == "deactivated" else "",
            ]
        )
    for n in range(rows - existing):
        writer.writerow(
            [
                f"New Hire {n}",
                f"new{n}@example.com",
                f"N{n:07d}",
                DEPARTMENTS[n % len(DEPARTMENTS)],
                LOCATIONS[n % len(LOCATIONS)],
                "Analyst",
                "contractor" if n % 5 == 0 else "full_time",
                f"person{(n % max(1, existing // 10)) * 10}@example.com",
                "active",
                "",
            ]
        )
    leaving = io.StringIO()
    writer = csv.writer(leaving)
    writer.writerow(["full_name", "email", "status", "deactivation_reason"])
    for n in range(leavers):
        writer.writerow([f"Person {n}", f"person{n}@example.com", "deactivated", "Site closed"])
    files = {"hr export": directory / "export.csv", "leavers": directory / "leavers.csv"}
    files["hr export"].write_text(export.getvalue())
    files["leavers"].write_text(leaving.getvalue())
    return files


def load_anchor(rev: str):
    source = subprocess.run(  # noqa: S603 - git with fixed arguments
        ["git", "show", f"{rev}:members/importers.py"],  # noqa: S607
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "anchor_importers.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("anchor_importers", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def concurrent_writer(writer_email: str) -> None:
    """A second process (a portal user, the worker) saving a member every 50 ms through
    member_update, until a line arrives on stdin; then it prints its write times as JSON.

    A process of its own: in the import's process a writer waiting for SQLite's lock would stall
    the import it waits for."""
    from members.models import Member
    from members.services import member_update

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    member = Member.objects.get(email=writer_email)
    waits: list[float] = []
    failures: list[str] = []
    n = 0
    while not stop.is_set():
        n += 1
        started = time.monotonic()
        try:
            member = member_update(member=member, actor=None, title=f"Writer {n}")
        except Exception as error:  # noqa: BLE001 - every failure is what is measured
            failures.append(type(error).__name__ + ": " + str(error)[:80])
        waits.append(time.monotonic() - started)
        if n == 1:
            print("ready", flush=True)
        stop.wait(0.05)
    print(json.dumps({"waits": waits, "failures": failures}), flush=True)


def one_import(path: str, implementation: str, writer_email: str) -> dict:
    if implementation == "anchor":
        members_import_csv = load_anchor(os.environ["BENCH_ANCHOR_REV"]).members_import_csv
    else:
        from members.importers import members_import_csv

    writer = subprocess.Popen(  # noqa: S603 - our interpreter and script
        [str(PY), __file__, "--child-writer", writer_email],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    assert writer.stdout.readline().strip() == "ready"
    started = time.monotonic()
    with open(path, encoding="utf-8-sig", newline="") as file:
        result = members_import_csv(file=file, actor=None)
    total = time.monotonic() - started
    out, _ = writer.communicate("stop\n", timeout=120)
    written = json.loads(out.strip().splitlines()[-1])
    waits, failures = written["waits"], written["failures"]
    return {
        "total": total,
        "lock": getattr(result, "write_seconds", None),
        "writes": len(waits),
        "failed": len(failures),
        "failure": failures[0] if failures else "",
        "max_wait_ms": max(waits) * 1000 if waits else 0.0,
        "outcome": (
            f"{result.created}c {result.updated}u {result.deactivated}d {result.unchanged}="
        ),
    }


# --- The orchestrator --------------------------------------------------------------------------


class Database:
    """A seeded database and a fresh copy of it per run."""

    def __init__(self, url: str, workdir: Path) -> None:
        self.url = url
        self.seed_sqlite = workdir / "seed.sqlite3"
        self.run_sqlite = workdir / "run.sqlite3"
        if url:
            parts = urlsplit(url)
            self.name = parts.path.lstrip("/")
            self.seed_name = f"{self.name}_seed"
            self.admin_url = urlunsplit(parts._replace(path="/postgres"))
            self.seed_url = urlunsplit(parts._replace(path="/" + self.seed_name))

    @property
    def engine(self) -> str:
        return "PostgreSQL" if self.url else "SQLite"

    def _pg(self, *statements: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def seed(self, members: int) -> None:
        if self.url:
            self._pg(
                f'DROP DATABASE IF EXISTS "{self.seed_name}" WITH (FORCE)',
                f'CREATE DATABASE "{self.seed_name}"',
            )
        env = child_env(self.seed_url if self.url else "", str(self.seed_sqlite))
        subprocess.run(  # noqa: S603 - our interpreter and script
            [str(PY), __file__, "--child-seed", str(members)], env=env, check=True
        )

    def fresh(self) -> dict[str, str]:
        if self.url:
            self._pg(
                f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)',
                f'CREATE DATABASE "{self.name}" TEMPLATE "{self.seed_name}"',
            )
            return child_env(self.url, "")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.run_sqlite}{suffix}").unlink(missing_ok=True)
        shutil.copy(self.seed_sqlite, self.run_sqlite)
        return child_env("", str(self.run_sqlite))

    def drop_seed(self) -> None:
        if self.url:
            self._pg(f'DROP DATABASE IF EXISTS "{self.seed_name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000, help="lines of the HR export")
    parser.add_argument("--leavers", type=int, default=1000, help="lines of the leavers file")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, interleaved")
    parser.add_argument("--anchor-rows", type=int, default=1000, help="largest file for anchor")
    parser.add_argument("--anchor-rev", default=ANCHOR_REV)
    parser.add_argument("--child-seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-import", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child-writer", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_seed is not None:
        setup_django()
        seed(args.child_seed)
        return
    if args.child_writer:
        setup_django()
        concurrent_writer(args.child_writer)
        return
    if args.child_import:
        setup_django()
        path, implementation = args.child_import
        print(json.dumps(one_import(path, implementation, os.environ["BENCH_WRITER_EMAIL"])))
        return

    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL", "")
    workdir = Path(tempfile.mkdtemp(prefix="bench-import-"))
    database = Database(url, workdir)
    existing = max(int(args.rows * 0.8), args.leavers)
    print(f"{database.engine}: seeding {existing:,} members ...", flush=True)
    database.seed(existing)
    files = write_files(workdir, args.rows, args.leavers)
    sizes = {"hr export": args.rows, "leavers": args.leavers}

    results = []
    for _ in range(args.repeat):
        for scenario, path in files.items():
            for implementation in ("ours", "anchor"):
                if implementation == "anchor" and sizes[scenario] > args.anchor_rows:
                    continue
                env = database.fresh()
                env["BENCH_WRITER_EMAIL"] = f"person{existing}@example.com"
                env["BENCH_ANCHOR_REV"] = args.anchor_rev
                load = os.getloadavg()[0]
                out = subprocess.run(  # noqa: S603 - our interpreter and script
                    [str(PY), __file__, "--child-import", str(path), implementation],
                    env=env,
                    check=True,
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                ).stdout
                row = json.loads(out.strip().splitlines()[-1])
                row.update(scenario=scenario, rows=sizes[scenario], impl=implementation, load=load)
                results.append(row)
                print(
                    f"  {implementation:6} {scenario:9} {sizes[scenario]:>7,} rows: "
                    f"{row['total']:.2f} s",
                    flush=True,
                )
    database.drop_seed()
    shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(f"Import benchmark on {database.engine}, {existing:,} members in the database")
    print()
    print(
        "| import | file | rows | total s | write lock s | outcome | concurrent writes "
        "| failed | longest write ms | load avg |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in results:
        lock = "-" if row["lock"] is None else f"{row['lock']:.2f}"
        if row["impl"] == "anchor":
            lock = "(all of it)"
        print(
            f"| {row['impl']} | {row['scenario']} | {row['rows']:,} | {row['total']:.2f} | "
            f"{lock} | {row['outcome']} | {row['writes']} | {row['failed']} | "
            f"{row['max_wait_ms']:.0f} | {row['load']:.2f} |"
        )
    failures = [row["failure"] for row in results if row["failure"]]
    if failures:
        print(f"\nFirst failed concurrent write: {failures[0]}")


if __name__ == "__main__":
    main()
