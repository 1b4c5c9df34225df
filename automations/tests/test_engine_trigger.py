"""The member trigger: every path that changes a member's status makes exactly one event per
transition, in the same transaction, enqueued only once it commits."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from automations.models import Event
from automations.triggers import MEMBER_DEACTIVATED, MEMBER_REACTIVATED
from conftest import (
    application_sources,
    make_asset,
    make_entitlement,
    make_license,
    make_member,
)
from members.models import Member
from members.services import (
    member_bulk_deactivate,
    member_deactivate,
    member_reactivate,
    member_update,
)

pytestmark = pytest.mark.django_db


def kinds(member) -> list[str]:
    return list(
        Event.objects.filter(member=member).order_by("occurred_at").values_list("kind", flat=True)
    )


def test_deactivation_records_an_event_with_the_member_as_they_were(
    django_capture_on_commit_callbacks, it_manager
):
    manager = make_member(email="boss@example.com")
    member = make_member(full_name="Jordan Rivera", department="Engineering", manager=manager)
    device = make_asset(custodian=member)
    make_entitlement(license=make_license(), member=member)

    with django_capture_on_commit_callbacks() as callbacks:
        member_deactivate(member=member, actor=it_manager, reason="Last working day")

    event = Event.objects.get()
    assert (event.kind, event.member, event.actor) == (MEMBER_DEACTIVATED, member, it_manager)
    assert event.status == Event.Status.PENDING and event.attempts == 0
    snapshot = event.member_snapshot
    assert snapshot["full_name"] == "Jordan Rivera"
    assert snapshot["manager"] == "boss@example.com"
    assert snapshot["deactivation_reason"] == "Last working day"
    assert snapshot["status"] == "deactivated"
    assert snapshot["assets_in_custody"] == 1
    assert snapshot["live_entitlements"] == 1
    assert snapshot["custody_asset_ids"] == [device.pk]
    assert len(callbacks) == 1  # the task is enqueued on commit, not before


def test_rolled_back_deactivation_leaves_no_event(django_capture_on_commit_callbacks):
    member = make_member()
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        member_deactivate(member=member, actor=None, reason="Oops")
        raise RuntimeError("the request failed after the save")

    assert not Event.objects.exists()
    assert callbacks == []
    member.refresh_from_db()
    assert member.status == Member.Status.ACTIVE


def test_save_without_a_transition_makes_no_event():
    member = make_member()
    member_update(member=member, actor=None, title="Staff Engineer")
    member.save()
    member_deactivate(member=member, actor=None, reason="Left")
    deactivated = Member.objects.get(pk=member.pk)
    deactivated.title = "Former engineer"
    deactivated.save()

    assert kinds(member) == [MEMBER_DEACTIVATED]


def test_deactivate_reactivate_deactivate_makes_two_deactivation_events():
    member = make_member()
    member_deactivate(member=member, actor=None, reason="Left")
    member_reactivate(member=member, actor=None)
    member_deactivate(member=member, actor=None, reason="Left again")

    assert kinds(member) == [MEMBER_DEACTIVATED, MEMBER_REACTIVATED, MEMBER_DEACTIVATED]


def test_double_click_makes_one_event():
    member = make_member()
    member_deactivate(member=member, actor=None, reason="Left")
    member_deactivate(member=member, actor=None, reason="Left")
    assert kinds(member) == [MEMBER_DEACTIVATED]


def test_bulk_deactivation_makes_one_event_per_member():
    members = [make_member() for _ in range(3)]
    member_bulk_deactivate(member_ids=[m.pk for m in members], actor=None, reason="Office closed")
    assert Event.objects.filter(kind=MEMBER_DEACTIVATED).count() == 3


def test_deactivate_members_command_makes_one_event_per_member(
    django_capture_on_commit_callbacks,
):
    members = [make_member() for _ in range(3)]
    member_deactivate(member=members[0], actor=None, reason="Left earlier")
    emails = [arg for m in members for arg in ("--email", m.email.upper())]

    with django_capture_on_commit_callbacks() as callbacks:
        call_command(
            "deactivate_members", *emails, "--reason", "Office closed", stdout=io.StringIO()
        )

    assert [kinds(m) for m in members] == [[MEMBER_DEACTIVATED]] * 3
    assert len(callbacks) == 2  # one task per new deactivation, none for the member already gone


def test_deactivate_members_dry_run_and_refusal_make_no_event(django_capture_on_commit_callbacks):
    member = make_member()
    with django_capture_on_commit_callbacks() as callbacks:
        call_command(
            "deactivate_members",
            "--email",
            member.email,
            "--reason",
            "x",
            "--dry-run",
            stdout=io.StringIO(),
        )
        with pytest.raises(CommandError):
            call_command(
                "deactivate_members",
                "--email",
                member.email,
                "--email",
                "nobody@example.com",
                "--reason",
                "x",
            )
    assert not Event.objects.exists()
    assert callbacks == []


def _import(tmp_path, text: str) -> None:
    path = tmp_path / "people.csv"
    path.write_text(text)
    call_command("import_members", str(path), stdout=io.StringIO())


def test_import_makes_one_event_per_status_change(tmp_path, django_capture_on_commit_callbacks):
    leaving = make_member(email="leaving@example.com")
    returning = make_member(email="returning@example.com")
    member_deactivate(member=returning, actor=None, reason="Sabbatical")
    staying = make_member(email="staying@example.com")
    csv_text = (
        "full_name,email,status\n"
        "Leaving,LEAVING@example.com,deactivated\n"
        "Returning,returning@example.com,active\n"
        "Staying,staying@example.com,active\n"
    )

    with django_capture_on_commit_callbacks() as callbacks:
        _import(tmp_path, csv_text)
        _import(tmp_path, csv_text)  # the same file again changes no status

    assert kinds(leaving) == [MEMBER_DEACTIVATED]
    assert kinds(returning) == [MEMBER_DEACTIVATED, MEMBER_REACTIVATED]
    assert kinds(staying) == []
    assert len(callbacks) == 2
    assert Event.objects.get(member=leaving).member_snapshot["deactivation_reason"] == (
        "Deactivated by HR import"
    )


def test_a_failed_import_records_no_event(tmp_path, django_capture_on_commit_callbacks):
    leaving = make_member(email="leaving@example.com")
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(CommandError):
        _import(
            tmp_path,
            "full_name,email,status\n"
            "Leaving,leaving@example.com,deactivated\n"
            "Broken,not-an-email,deactivated\n",
        )

    assert not Event.objects.exists()
    assert callbacks == []
    leaving.refresh_from_db()
    assert leaving.status == Member.Status.ACTIVE


def test_an_import_failing_while_writing_records_no_event(
    tmp_path, django_capture_on_commit_callbacks
):
    """The manager cycle shows only once the first rows are written: they roll back with it."""
    a = make_member(email="a@example.com")
    make_member(email="b@example.com")
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(CommandError):
        _import(
            tmp_path,
            "full_name,email,manager_email,status\n"
            "A,a@example.com,b@example.com,deactivated\n"
            "B,b@example.com,a@example.com,\n",
        )

    assert not Event.objects.exists()
    assert callbacks == []
    a.refresh_from_db()
    assert a.status == Member.Status.ACTIVE


def test_save_of_a_loaded_member_outside_the_service_is_seen():
    """The Django admin's change form, a shell, an import: a member read, changed and saved."""
    member = make_member()
    loaded = Member.objects.get(pk=member.pk)
    loaded.status = Member.Status.DEACTIVATED
    loaded.deactivated_at = loaded.created_at
    loaded.save()
    loaded.save()  # saving the same instance again is no new transition

    assert kinds(member) == [MEMBER_DEACTIVATED]


def test_save_of_an_instance_not_loaded_from_the_database_is_seen():
    member = make_member()
    built = Member(
        pk=member.pk,
        full_name=member.full_name,
        email=member.email,
        employee_id=member.employee_id,
        status=Member.Status.DEACTIVATED,
        deactivated_at=member.created_at,
        created_at=member.created_at,
    )
    assert built.loaded_status is None

    built.save()

    assert kinds(member) == [MEMBER_DEACTIVATED]


def test_a_stale_loaded_status_makes_no_false_transition():
    member = make_member()  # loaded_status "active"
    member_deactivate(member=member, actor=None, reason="Left")  # through another instance
    member.refresh_from_db()  # status "deactivated", loaded_status still "active"
    member.title = "Alumnus"
    member.save()

    assert kinds(member) == [MEMBER_DEACTIVATED]


def test_save_with_update_fields_without_status_makes_no_event():
    member = make_member()
    loaded = Member.objects.get(pk=member.pk)
    loaded.status = Member.Status.DEACTIVATED
    loaded.title = "Changed"
    loaded.save(update_fields=["title"])  # status not written: no transition happened
    assert kinds(member) == []


def test_creating_a_deactivated_member_is_no_transition():
    from django.utils import timezone

    make_member(status=Member.Status.DEACTIVATED, deactivated_at=timezone.now())
    assert not Event.objects.exists()


def _root_name(node: ast.AST) -> str:
    """`Member` for Member.objects.filter(...), `members` for members.exclude(...)."""
    while not isinstance(node, ast.Name):
        if isinstance(node, ast.Attribute | ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        else:
            return ""
    return node.id


def _status_writes_without_signals(path: Path) -> list[str]:
    """update()/bulk_update() calls in `path` that write a member's status."""
    source = path.read_text()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in ("update", "bulk_update"):
            continue
        text = ast.get_source_segment(source, node) or ""
        writes_status = any(k.arg == "status" for k in node.keywords) or (
            node.func.attr == "bulk_update" and "status" in text
        )
        root = _root_name(node.func.value)
        about_members = "member" in root.lower() or "Member.Status" in text
        if writes_status and about_members:
            found.append(f"{path}:{node.lineno}: {text.splitlines()[0]}")
    return found


def test_no_code_changes_member_status_with_update_or_bulk_update():
    offenders = []
    for path in application_sources():
        offenders += _status_writes_without_signals(path)
    assert offenders == []


def test_the_status_grep_catches_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "Member.objects.filter(pk=1).update(status='deactivated')\n"
        "members.update(status=Member.Status.ACTIVE)\n"
        "Member.objects.bulk_update(rows, ['status'])\n"
        "Asset.objects.filter(custodian=member).update(status='available')\n"
        "member.reports.update(manager=None)\n"
    )
    assert len(_status_writes_without_signals(sample)) == 3
