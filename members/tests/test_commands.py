"""The command-line paths: manage.py deactivate_members and manage.py import_members."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from assetsonar.models import AuditEvent
from conftest import make_member
from members.models import Member

pytestmark = pytest.mark.django_db

HEADER = (
    "full_name,email,employee_id,department,location,title,employment_type,manager_email,"
    "status,deactivation_reason\n"
)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def write_csv(tmp_path, text: str) -> str:
    path = tmp_path / "people.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


def status(member: Member) -> str:
    member.refresh_from_db()
    return member.status


# deactivate_members


def test_deactivate_by_email_case_insensitively_and_employee_id():
    jordan = make_member(email="jordan@example.com")
    sam = make_member(employee_id="E1042")
    bystander = make_member()

    out = run(
        "deactivate_members",
        "--email",
        "JORDAN@Example.com",
        "--employee-id",
        "E1042",
        "--reason",
        "Office closed",
    )

    assert out == "Deactivated 2 members.\n"
    assert status(jordan) == status(sam) == Member.Status.DEACTIVATED
    assert jordan.deactivation_reason == "Office closed"
    assert jordan.deactivated_by is None  # the system did it
    assert status(bystander) == Member.Status.ACTIVE


def test_deactivate_reports_members_already_deactivated():
    gone = make_member(email="gone@example.com")
    run("deactivate_members", "--email", "gone@example.com", "--reason", "Left")
    leaving = make_member(email="leaving@example.com")

    out = run(
        "deactivate_members",
        "--email",
        "gone@example.com",
        "--email",
        "leaving@example.com",
        "--reason",
        "Left again",
    )

    assert out == "Deactivated 1 member.\nAlready deactivated: gone@example.com.\n"
    gone.refresh_from_db()
    assert gone.deactivation_reason == "Left"
    assert status(leaving) == Member.Status.DEACTIVATED


def test_deactivate_with_an_unknown_member_changes_nothing():
    known = make_member(email="known@example.com")

    with pytest.raises(CommandError) as error:
        run(
            "deactivate_members",
            "--email",
            "known@example.com",
            "--email",
            "nobody@example.com",
            "--employee-id",
            "E9999",
            "--reason",
            "Left",
        )

    assert str(error.value) == (
        "No member has email nobody@example.com, employee ID E9999. Nothing was changed."
    )
    assert status(known) == Member.Status.ACTIVE


@pytest.mark.parametrize("reason", [None, "   "])
def test_deactivate_without_a_reason_is_refused(reason):
    member = make_member(email="jordan@example.com")
    args = ["deactivate_members", "--email", "jordan@example.com"]
    if reason is not None:
        args += ["--reason", reason]

    with pytest.raises(CommandError, match="--reason is required"):
        run(*args)

    assert status(member) == Member.Status.ACTIVE


def test_deactivate_with_a_too_long_reason_is_refused():
    member = make_member(email="jordan@example.com")
    with pytest.raises(CommandError, match="Keep the reason under 500 characters"):
        run("deactivate_members", "--email", "jordan@example.com", "--reason", "x" * 501)
    assert status(member) == Member.Status.ACTIVE


def test_deactivate_without_members_is_refused():
    with pytest.raises(CommandError, match="--email and/or --employee-id"):
        run("deactivate_members", "--reason", "Left")


def test_deactivate_dry_run_counts_and_changes_nothing():
    member = make_member(email="jordan@example.com")

    out = run("deactivate_members", "--email", "jordan@example.com", "--reason", "x", "--dry-run")

    assert out == "Would deactivate 1 member.\n"
    assert status(member) == Member.Status.ACTIVE
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DEACTIVATED).exists()


# import_members


def test_import_creates_updates_and_changes_status(tmp_path):
    boss = make_member(full_name="Ada Boss", email="ada@example.com", employee_id="E1")
    kept = make_member(full_name="Kim Same", email="kim@example.com", employee_id="E2")
    leaving = make_member(full_name="Lee Leaving", email="lee@example.com", employee_id="E3")
    back = make_member(full_name="Bo Back", email="bo@example.com", employee_id="E4")
    run("deactivate_members", "--email", "bo@example.com", "--reason", "Sabbatical")
    path = write_csv(
        tmp_path,
        HEADER
        + "Ada Boss,ADA@example.com,E1,Engineering,Berlin,Engineer,full_time,,active,\n"
        + f"Kim Same,kim@example.com,E2,{kept.department},{kept.location},{kept.title},"
        + "Full-time,,,\n"
        + "Lee Leaving,lee@example.com,E3,Sales,Berlin,Engineer,,,deactivated,\n"
        + "Bo Back,bo@example.com,E4,Engineering,Berlin,Engineer,,,Active,\n"
        + "Noor New,noor@example.com,E5,Design,Lisbon,Designer,contractor,ada@example.com,,\n"
        + "Pat Report,pat@example.com,,Design,Lisbon,,intern,noor@example.com,deactivated,Moved\n",
    )

    out = run("import_members", path)

    assert out == "2 created, 1 updated, 2 deactivated, 1 reactivated, 2 unchanged.\n"
    noor = Member.objects.get(email="noor@example.com")
    assert (noor.full_name, noor.department, noor.employment_type, noor.manager) == (
        "Noor New",
        "Design",
        Member.EmploymentType.CONTRACTOR,
        boss,
    )
    pat = Member.objects.get(email="pat@example.com")
    assert pat.manager == noor and pat.status == Member.Status.DEACTIVATED
    assert pat.deactivation_reason == "Moved"
    leaving.refresh_from_db()
    assert leaving.department == "Sales"
    assert leaving.status == Member.Status.DEACTIVATED
    assert leaving.deactivation_reason == "Deactivated by HR import"
    assert status(back) == Member.Status.ACTIVE
    assert status(boss) == Member.Status.ACTIVE


def test_import_leaves_columns_not_in_the_file_alone(tmp_path):
    member = make_member(email="kim@example.com", department="Finance", title="Analyst")
    path = write_csv(tmp_path, "email,full_name,title\nkim@example.com,Kim Renamed,\n")

    assert run("import_members", path) == (
        "0 created, 1 updated, 0 deactivated, 0 reactivated, 0 unchanged.\n"
    )
    member.refresh_from_db()
    assert (member.full_name, member.department, member.title) == ("Kim Renamed", "Finance", "")


def test_import_dry_run_counts_and_saves_nothing(tmp_path):
    member = make_member(email="kim@example.com")
    path = write_csv(
        tmp_path,
        "full_name,email,status\nKim,kim@example.com,deactivated\nNoor,noor@example.com,\n",
    )

    out = run("import_members", path, "--dry-run")

    assert out == (
        "Dry run, nothing saved: 1 created, 1 updated, 1 deactivated, 0 reactivated, 0 unchanged.\n"
    )
    assert Member.objects.count() == 1
    assert status(member) == Member.Status.ACTIVE
    assert not AuditEvent.objects.exists()


def test_import_with_an_invalid_row_saves_nothing_and_names_every_line(tmp_path):
    existing = make_member(email="kim@example.com", employee_id="E7")
    path = write_csv(
        tmp_path,
        HEADER
        + "Kim,kim@example.com,,,,,,,deactivated,\n"  # valid on its own
        + "Noor,noor@example.com,,,,,,,,\n"  # valid on its own
        + "Bad Email,not-an-email,,,,,,,,\n"
        + ",blank@example.com,,,,,,,,\n"
        + "Dup,NOOR@example.com,,,,,,,,\n"
        + "Taken,taken@example.com,E7,,,,,,,\n"
        + "Odd,odd@example.com,,,,,robot,nobody@example.com,gone,\n",
    )

    with pytest.raises(CommandError) as error:
        run("import_members", path)

    assert str(error.value).splitlines() == [
        "Nothing was imported:",
        "line 4: email: Enter a valid email address.",
        "line 5: full_name: This field cannot be blank.",
        "line 6: email: Also on line 3.",
        "line 7: Another member already has this employee ID.",
        "line 8: employment_type: Use one of full_time, part_time, contractor, intern, temporary.",
        "line 8: status: Use active or deactivated.",
        "line 8: manager_email: No member has the email nobody@example.com.",
    ]
    assert Member.objects.count() == 1
    assert status(existing) == Member.Status.ACTIVE
    assert not AuditEvent.objects.exists()


def test_import_with_a_manager_cycle_saves_nothing(tmp_path):
    make_member(email="a@example.com")
    make_member(email="b@example.com")
    path = write_csv(
        tmp_path,
        "full_name,email,manager_email\nA,a@example.com,b@example.com\n"
        "B,b@example.com,a@example.com\n",
    )

    with pytest.raises(CommandError) as error:
        run("import_members", path)

    assert str(error.value).splitlines()[1] == (
        "line 3: manager: A member cannot report to themselves, even indirectly."
    )
    assert not Member.objects.filter(manager__isnull=False).exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("full_name,email,salary,shoe\n", "Unknown columns: salary, shoe."),
        ("full_name,title\n", "Missing required column: email."),
        ("", "The file is empty: the first line must name the columns."),
        ("full_name,email\nA,a@example.com,extra\n", "line 2: more values than columns."),
    ],
)
def test_import_with_a_bad_header_or_shape_is_refused(tmp_path, text, message):
    path = write_csv(tmp_path, text)
    with pytest.raises(CommandError, match=message):
        run("import_members", path)
    assert not Member.objects.exists()


def test_import_of_a_missing_file_is_refused(tmp_path):
    with pytest.raises(CommandError, match="Cannot read .*nope.csv: No such file or directory."):
        run("import_members", str(tmp_path / "nope.csv"))


# deactivate_members --on DATE: a last working day instead of a deactivation now


def test_on_a_date_sets_the_last_working_day_and_deactivates_nobody_now():
    from datetime import date

    from automations.models import Event

    kim = make_member(email="kim@example.com", deactivate_on_last_day=False)
    lee = make_member(employee_id="E77")
    make_member(email="gone@example.com")
    call_command("deactivate_members", "--email", "gone@example.com", "--reason", "Left")

    out = run(
        "deactivate_members",
        "--email",
        "KIM@example.com",
        "--employee-id",
        "E77",
        "--email",
        "gone@example.com",
        "--on",
        "2026-12-13",
        "--reason",
        "Resigned",
    )

    assert out == (
        "Set the last working day of 2 members to 13 Dec 2026; each is deactivated when that "
        "day ends in their time zone.\nAlready deactivated (unchanged): gone@example.com.\n"
    )
    for member in (kim, lee):
        member.refresh_from_db()
        assert member.is_active
        assert (member.last_working_day, member.deactivate_on_last_day) == (
            date(2026, 12, 13),
            True,
        )
    assert Event.objects.filter(member__in=[kim, lee]).count() == 0
    audit = AuditEvent.objects.get(action=AuditEvent.Action.CHANGED, object_id=str(kim.pk))
    assert audit.changes == {
        "last_working_day": [None, "2026-12-13"],
        "deactivate_on_last_day": ["False", "True"],
    }
    assert audit.message == "Last working day set by deactivate_members: Resigned"


def test_on_a_date_with_dry_run_changes_nothing_and_a_bad_date_is_refused():
    kim = make_member(email="kim@example.com")

    out = run("deactivate_members", "--email", "kim@example.com", "--on", "2026-12-13", "--dry-run")
    assert out.startswith("Would set the last working day of 1 member to 13 Dec 2026;")
    kim.refresh_from_db()
    assert kim.last_working_day is None
    assert not AuditEvent.objects.exists()

    with pytest.raises(CommandError) as caught:
        run("deactivate_members", "--email", "kim@example.com", "--on", "13.12.2026")
    assert str(caught.value) == (
        "--on: “13.12.2026” is not a date; give the last working day as YYYY-MM-DD, "
        "e.g. --on 2026-12-13."
    )
