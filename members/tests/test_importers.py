"""The HR import's two phases (members/importers.py): checks before the write lock, one short
all-or-nothing write, the trigger for each deactivation, bad bytes and formulas."""

from __future__ import annotations

import io
import threading
from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection

from assetsonar.models import AuditEvent, PortalSettings
from automations.models import Event
from automations.triggers import MEMBER_DEACTIVATED
from conftest import make_asset, make_entitlement, make_license, make_member
from members.importers import members_import_csv
from members.models import Member
from members.services import member_deactivate, member_update

pytestmark = pytest.mark.django_db


def import_text(text: str, **kwargs):
    return members_import_csv(file=io.StringIO(text), actor=None, **kwargs)


def import_file(tmp_path, text: str, *args: str) -> tuple[str, str]:
    path = tmp_path / "people.csv"
    path.write_bytes(text.encode("utf-8"))
    out, err = io.StringIO(), io.StringIO()
    call_command("import_members", str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def people(count: int, *, start: int = 0, status: str = "") -> str:
    return "full_name,email,department,status\n" + "".join(
        f"Person {n},person{n}@example.com,Sales,{status}\n" for n in range(start, start + count)
    )


# Phase 1 takes no lock


@pytest.mark.django_db(transaction=True)
def test_rows_are_checked_outside_any_transaction_so_other_writes_go_on():
    """On SQLite a transaction holds the database's one write lock: a write from another
    connection while the rows are checked must not wait for the import."""
    bystander = make_member(email="bystander@example.com")
    seen: list[tuple[str, bool, str]] = []

    def other_write() -> None:
        try:
            member_update(member=Member.objects.get(pk=bystander.pk), actor=None, title="Moved")
            seen.append(("write", True, "ok"))
        except Exception as error:  # noqa: BLE001 - the failure is what the test reports
            seen.append(("write", False, repr(error)))
        finally:
            connection.close()

    def progress(stage: str, done: int, total: int) -> None:
        seen.append((stage, connection.in_atomic_block, ""))
        if stage == "Checking" and done == total:
            writer = threading.Thread(target=other_write)
            writer.start()
            writer.join(timeout=5)
            assert not writer.is_alive(), "the other write waited for the import"

    import_text(people(3, status="deactivated"), progress=progress)

    assert ("Checking", False, "") in seen
    assert ("write", True, "ok") in seen
    assert ("Writing", True, "") in seen  # and the writes are one transaction
    bystander.refresh_from_db()
    assert bystander.title == "Moved"
    assert Member.objects.filter(status=Member.Status.DEACTIVATED).count() == 3


# Phase 2 is all or nothing


def test_a_member_created_between_the_check_and_the_write_undoes_the_whole_import():
    existing = make_member(email="kim@example.com", department="Finance")

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "Checking" and done == total:
            # Saved elsewhere (the portal) while the import checked its rows.
            make_member(email="person2@example.com")

    text = people(4) + "Kim,kim@example.com,Sales,deactivated\n"
    with pytest.raises(ValidationError) as error:
        import_text(text, progress=progress)

    assert "Nothing was imported: run the import again." in error.value.messages[0]
    assert Member.objects.count() == 2  # Kim and the one saved elsewhere
    existing.refresh_from_db()
    assert (existing.department, existing.status) == ("Finance", Member.Status.ACTIVE)
    assert not AuditEvent.objects.exists()
    assert not Event.objects.exists()


def test_a_member_changed_between_the_check_and_the_write_undoes_the_whole_import():
    kim = make_member(email="kim@example.com", department="Finance")

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "Checking" and done == total:
            member_update(member=Member.objects.get(pk=kim.pk), actor=None, title="Lead")

    with pytest.raises(ValidationError, match="were changed while it was being checked"):
        import_text(people(2) + "Kim,kim@example.com,Sales,deactivated\n", progress=progress)

    kim.refresh_from_db()
    assert (kim.department, kim.title, kim.status) == ("Finance", "Lead", Member.Status.ACTIVE)
    assert Member.objects.count() == 1
    assert not Event.objects.exists()


# The trigger


def test_each_deactivated_member_fires_the_trigger_as_the_service_does(
    django_capture_on_commit_callbacks,
):
    """One member leaves through the import, their twin through member_deactivate: the same
    event, the same snapshot, the same audit row, one dispatch each."""
    boss = make_member(email="boss@example.com")
    twins = []
    for name in ("import", "service"):
        member = make_member(email=f"{name}@example.com", manager=boss, department="Sales")
        make_asset(custodian=member)
        make_entitlement(license=make_license(), member=member)
        twins.append(member)
    by_import, by_service = twins

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = import_text(
            "full_name,email,status,deactivation_reason\n"
            f"{by_import.full_name},import@example.com,deactivated,Last day\n"
            f"{boss.full_name},boss@example.com,active,\n"
        )
        member_deactivate(member=by_service, actor=None, reason="Last day")

    assert (result.deactivated, result.unchanged) == (1, 1)
    events = {event.member_id: event for event in Event.objects.all()}
    assert set(events) == {by_import.pk, by_service.pk}
    assert {event.kind for event in events.values()} == {MEMBER_DEACTIVATED}
    snapshot = events[by_import.pk].member_snapshot
    twin = events[by_service.pk].member_snapshot
    differ = {"id", "email", "full_name", "employee_id", "custody_asset_ids"}
    assert {k: v for k, v in snapshot.items() if k not in differ} == {
        k: v for k, v in twin.items() if k not in differ
    }
    assert snapshot["manager"] == "boss@example.com"
    assert snapshot["deactivation_reason"] == "Last day"
    assert (snapshot["assets_in_custody"], snapshot["live_entitlements"]) == (1, 1)
    assert len(snapshot["custody_asset_ids"]) == 1
    assert len(callbacks) == 2  # each event handed to the worker after the commit
    audits = AuditEvent.objects.filter(action=AuditEvent.Action.DEACTIVATED)
    assert sorted(audits.values_list("object_id", "message")) == sorted(
        [(str(by_import.pk), "Last day"), (str(by_service.pk), "Last day")]
    )


def test_a_new_member_imported_as_deactivated_fires_the_trigger_once():
    import_text("full_name,email,status\nNoor,noor@example.com,deactivated\n")
    noor = Member.objects.get(email="noor@example.com")
    assert noor.status == Member.Status.DEACTIVATED
    assert list(Event.objects.values_list("member_id", "kind")) == [(noor.pk, MEMBER_DEACTIVATED)]


# Bulk writes: the query budget does not grow with the file


@pytest.mark.parametrize("size", [10, 200])
def test_an_import_without_status_changes_has_a_fixed_query_budget(
    size, django_assert_max_num_queries
):
    for n in range(0, size, 2):  # half the file already exists, with managers
        make_member(full_name=f"Person {n}", email=f"person{n}@example.com", department="Eng")
    text = "full_name,email,department,manager_email,status\n" + "".join(
        f"Person {n},person{n}@example.com,Sales,person0@example.com,active\n"
        for n in range(1, size)
    )
    PortalSettings.load()

    # 15: one more than before the last working day, for the portal setting new members take.
    with django_assert_max_num_queries(15):
        result = import_text(text)

    assert (result.created, result.updated) == (size // 2, size // 2 - 1)
    assert Member.objects.filter(manager__email="person0@example.com").count() == size - 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CHANGED).count() == size // 2 - 1


def test_the_audit_rows_of_an_update_name_the_old_and_new_manager():
    old, new = make_member(full_name="Old Boss"), make_member(full_name="New Boss")
    kim = make_member(email="kim@example.com", manager=old, title="Analyst")
    import_text(f"full_name,email,title,manager_email\nKim,kim@example.com,Lead,{new.email}\n")
    audit = AuditEvent.objects.get(action=AuditEvent.Action.CHANGED, object_id=str(kim.pk))
    assert audit.changes == {
        "full_name": [kim.full_name, "Kim"],
        "title": ["Analyst", "Lead"],
        "manager": ["Old Boss", "New Boss"],
    }


def test_the_command_shows_progress_on_stderr_and_the_outcome_on_stdout(tmp_path):
    out, err = import_file(tmp_path, people(3))
    assert out == "3 created, 0 updated, 0 deactivated, 0 reactivated, 0 unchanged.\n"
    assert "Checking: 3 of 3 rows" in err
    assert "Writing: 3 of 3 rows" in err
    assert "in one transaction" in err


# The write lock is held for seconds (issue 7, item 14)


def _hr_export(tmp_path, known: int, lines: int):
    """bench/import_members.py's export on `known` members (a fifth changed, 1% leaving, a
    tenth managed) with `lines` - `known` new ones."""
    from assetsonar.bulk import rows_update
    from bench.import_members import DEPARTMENTS, LOCATIONS, write_files

    Member.objects.bulk_create(
        [
            Member(
                full_name=f"Person {n}",
                email=f"person{n}@example.com",
                employee_id=f"E{n:07d}",
                department=DEPARTMENTS[n % len(DEPARTMENTS)],
                location=LOCATIONS[n % len(LOCATIONS)],
                title="Engineer",
            )
            for n in range(known)
        ],
        batch_size=1000,
    )
    by_email = dict(Member.objects.values_list("email", "pk"))
    managed = [
        Member(
            pk=by_email[f"person{n}@example.com"],
            manager_id=by_email[f"person{n - n % 10}@example.com"],
        )
        for n in range(known)
        if n % 10
    ]
    rows_update(Member, managed, ["manager"])
    return write_files(tmp_path, lines, 0)["hr export"]


def _write_phase_queries(monkeypatch, export) -> tuple[object, int]:
    """Import `export`; return the result and the queries of the write phase (the one that
    holds the write lock: members.importers._write, inside the import's transaction)."""
    from django.test.utils import CaptureQueriesContext

    from members import importers

    counted: list[int] = []
    write = importers._write

    def counting(*args, **kwargs):
        with CaptureQueriesContext(connection) as queries:
            write(*args, **kwargs)
        counted.append(len(queries))

    monkeypatch.setattr(importers, "_write", counting)
    with export.open(encoding="utf-8") as file:
        result = members_import_csv(file=file, actor=None)
    return result, counted[0]


@pytest.mark.django_db(transaction=True)
def test_a_5000_line_hr_export_writes_in_bulk_statements_not_one_per_row(tmp_path, monkeypatch):
    """The import before the two-phase design held the write lock for 67 s on this export (one
    statement per row inside the lock); bench/import_members.py measures the time it holds the
    lock now (the issue's bar: 5 s). Here the cause is asserted instead of the clock (a timed
    test fails on a busy machine): the write phase of 5,000 lines (4,000 known, 800 changed, 40
    leaving, 1,000 new) runs bulk statements, at most one per 10 lines (4 December: 310 on
    SQLite, whose 999-variable limit makes the batches small, 250 on PostgreSQL), and the events
    of the 40 deactivations wait for the COMMIT (outside the lock)."""
    export = _hr_export(tmp_path, 4000, 5000)

    result, queries = _write_phase_queries(monkeypatch, export)

    assert (result.created, result.deactivated) == (1000, 40)
    assert Member.objects.count() == 5000
    assert Event.objects.filter(kind=MEMBER_DEACTIVATED).count() == 40
    assert queries <= 5000 / 10, f"{queries} statements while holding the write lock"


# Bytes a CSV must not carry


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "full_name,email\nKim,kim@example.com\nNo\x00or,noor@example.com\n",
            "line 3: full_name: contains a NUL character (byte 0): "
            "save the file as UTF-8 CSV text and try again.",
        ),
        (
            "full_name,em\x00ail\nKim,kim@example.com\n",
            "line 1: contains a NUL character (byte 0)",
        ),
        (
            "full_name,email,title\nKim,kim@example.com,x\n"
            f"Noor,noor@example.com,{'x' * 200_000}\n",
            "line 3: a value is longer than 131,072 characters (no column takes more than 500); "
            "check the file for a missing closing quote.",
        ),
        (
            f"full_name,email\n{'N' * 5000},noor@example.com\n",
            "line 2: full_name: Ensure this value has at most 150 characters (it has 5000).",
        ),
        (
            f"full_name,email,manager_email\nNoor,noor@example.com,{'m' * 3000}@example.com\n",
            "line 2: manager_email: Keep the email under 254 characters.",
        ),
    ],
)
def test_nul_bytes_and_over_long_values_are_refused_with_their_line(tmp_path, text, message):
    make_member(email="kim@example.com", full_name="Kim")
    with pytest.raises(CommandError) as error:
        import_file(tmp_path, text)
    assert message in str(error.value)
    assert Member.objects.count() == 1
    assert not AuditEvent.objects.exists()


# Formulas in what the product writes


def test_exported_members_have_their_formula_cells_neutralised(tmp_path):
    boss = make_member(email="boss@example.com", full_name='=HYPERLINK("https://x.test","a")')
    make_member(
        email="kim@example.com",
        full_name="Kim",
        department="+cmd|' /C calc'!A0",
        title="@SUM(A1:A9)",
        location="-2+3",
        manager=boss,
    )
    output = tmp_path / "out.csv"
    call_command("export_members", "--output", str(output), stderr=io.StringIO())

    lines = output.read_text().splitlines()
    assert lines[0] == (
        "full_name,email,employee_id,department,location,title,employment_type,manager_email,"
        "status,deactivation_reason,personal_email,last_working_day,time_zone,"
        "deactivate_on_last_day"
    )
    boss_line = next(line for line in lines if ",boss@example.com," in line)
    assert boss_line.startswith('"\'=HYPERLINK(""https://x.test"",""a"")"')
    kim = next(line for line in lines if ",kim@example.com," in line)
    assert "'+cmd|' /C calc'!A0" in kim
    assert ",'@SUM(A1:A9)," in kim
    assert ",'-2+3," in kim


def test_an_export_imports_back_unchanged(tmp_path):
    boss = make_member(email="boss@example.com")
    make_member(email="kim@example.com", manager=boss, employment_type="contractor")
    member_deactivate(member=make_member(), actor=None, reason="Left")
    output = tmp_path / "out.csv"
    call_command("export_members", "-o", str(output), stderr=io.StringIO())

    out = io.StringIO()
    call_command("import_members", str(output), stdout=out, stderr=io.StringIO())
    assert out.getvalue() == "0 created, 0 updated, 0 deactivated, 0 reactivated, 3 unchanged.\n"


# The last working day and its companions


def test_the_last_working_day_time_zone_and_personal_email_are_imported_and_audited():
    kim = make_member(email="kim@example.com", full_name="Kim")
    PortalSettings.load()
    PortalSettings.objects.update(deactivate_on_last_day_default=False)
    text = (
        "full_name,email,last_working_day,time_zone,personal_email\n"
        "Kim,kim@example.com,2026-12-13,America/New_York,kim@home.example\n"
        "Lee,lee@example.com,2027-01-29,,\n"
    )

    result = import_text(text)

    assert (result.created, result.updated) == (1, 1)
    kim.refresh_from_db()
    assert (kim.last_working_day, kim.time_zone, kim.personal_email) == (
        date(2026, 12, 13),
        "America/New_York",
        "kim@home.example",
    )
    assert kim.deactivate_on_last_day is True  # an existing member keeps their option
    lee = Member.objects.get(email="lee@example.com")
    assert lee.last_working_day == date(2027, 1, 29)
    assert lee.deactivate_on_last_day is False  # a new one takes the portal's default
    audit = AuditEvent.objects.get(action=AuditEvent.Action.CHANGED, object_id=str(kim.pk))
    assert audit.changes == {
        "last_working_day": [None, "2026-12-13"],
        "time_zone": ["", "America/New_York"],
        "personal_email": ["", "kim@home.example"],
    }

    import_text(
        "full_name,email,last_working_day,deactivate_on_last_day\nKim,kim@example.com,,no\n"
    )
    kim.refresh_from_db()
    assert kim.last_working_day is None
    assert kim.deactivate_on_last_day is False


DATE_HINT = "Enter the date as YYYY-MM-DD, e.g. 2026-12-13"


def test_bad_offboarding_values_are_refused_with_their_line_and_nothing_is_written():
    text = (
        "full_name,email,last_working_day,time_zone,personal_email,deactivate_on_last_day\n"
        "Ann,ann@example.com,13/12/2026,,,\n"
        "Ben,ben@example.com,2026-02-30,,,\n"
        "Cy,cy@example.com,2026-12-13,Europe/Atlantis,,\n"
        "Di,di@example.com,,,not-an-email,\n"
        "Ed,ed@example.com,,,,maybe\n"
    )

    with pytest.raises(ValidationError) as caught:
        import_text(text)

    assert caught.value.messages == [
        f"line 2: last_working_day: {DATE_HINT} (not “13/12/2026”).",
        f"line 3: last_working_day: {DATE_HINT} (not “2026-02-30”).",
        "line 4: time_zone: “Europe/Atlantis” is not a time zone name; use an IANA name such as "
        "Europe/Berlin or America/New_York.",
        "line 5: personal_email: Enter a valid email address.",
        "line 6: deactivate_on_last_day: Use yes or no.",
    ]
    assert not Member.objects.exists()
