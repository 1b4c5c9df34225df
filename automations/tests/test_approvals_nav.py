"""The navigation's count of approvals waiting for the signed-in user: cached per user (no query
on the next page), and counted again once an approval or its approvers change, so a new request,
a decision, an expiry, a cancellation, any other save or a change of approvers shows on the next
page; a cache that does not answer (Redis down) costs the count its query, not the page; no code
writes approvals without the signals that forget the counts."""

from __future__ import annotations

import ast
import re
import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from assetsonar import roles
from automations.actions.approval import approval_decide, approvals_expire_due
from automations.models import Approval, Execution
from automations.selectors import PENDING_APPROVALS_CACHE_SECONDS, pending_approvals_count
from automations.tests.action_approval_factories import approval_automation
from conftest import application_sources, make_member, make_user
from members.models import Member
from members.services import member_deactivate, member_reactivate

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("engine_in_process")]


@pytest.fixture
def ida(db):
    return make_user("ida", roles.IT_MANAGER, first_name="Ida", last_name="Manager")


@pytest.fixture
def ida_client(client, ida):
    client.force_login(ida)
    return client


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a change as if its transaction committed (its on_commit callbacks run)."""

    def run(change, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return change(*args, **kwargs)

    return run


def badge(client) -> int | None:
    """The count the navigation shows, or None without a badge."""
    html = client.get(reverse("members:list")).content.decode()
    found = re.search(r'id="approvals-pending" aria-label="(\d+) waiting"', html)
    return int(found[1]) if found else None


def approvals_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("members:list"))
    return sum('"automations_approval' in q["sql"] for q in queries.captured_queries)


def request_approval(committed, name: str) -> Approval:
    member = make_member(full_name=name)
    committed(member_deactivate, member=member, actor=None, reason="Last day")
    return Approval.objects.get(execution=Execution.objects.filter(member=member).latest("pk"))


def test_the_count_is_counted_once_then_read_from_the_cache(ida_client, committed):
    approval_automation(mdm=False)
    request_approval(committed, "Lena Leaver")

    assert approvals_queries(ida_client) == 1
    assert approvals_queries(ida_client) == 0
    assert badge(ida_client) == 1


def test_a_new_request_shows_on_the_next_page(ida_client, committed):
    approval_automation(mdm=False)
    assert badge(ida_client) is None  # counted (0) and cached

    request_approval(committed, "Lena Leaver")
    assert badge(ida_client) == 1
    request_approval(committed, "Leo Leaver")
    assert badge(ida_client) == 2


def test_a_decision_shows_on_the_next_page(ida_client, ida, committed):
    approval_automation(mdm=False)
    first = request_approval(committed, "Lena Leaver")
    request_approval(committed, "Leo Leaver")
    assert badge(ida_client) == 2

    committed(
        approval_decide, approval=first, approve=False, comment="", actor=ida, otp_verified=False
    )
    assert badge(ida_client) == 1


def test_an_expiry_and_a_cancellation_show_on_the_next_page(ida_client, committed):
    approval_automation(mdm=False)
    expiring = request_approval(committed, "Lena Leaver")
    request_approval(committed, "Leo Leaver")
    assert badge(ida_client) == 2

    later = expiring.expires_at + timedelta(minutes=1)
    Approval.objects.exclude(pk=expiring.pk).update(expires_at=later + timedelta(days=1))
    committed(approvals_expire_due, now=later)
    assert badge(ida_client) == 1

    committed(member_reactivate, member=Member.objects.get(full_name="Leo Leaver"), actor=None)
    assert badge(ida_client) is None


def test_a_change_of_approvers_shows_on_the_next_page(ida_client, ida, committed):
    olaf = make_user("olaf", roles.IT_MANAGER)
    approval_automation(mdm=False, users=("olaf",))
    approval = request_approval(committed, "Lena Leaver")
    if approval.pk == ida.pk:  # the user's side below must not pass by forgetting user #pk
        approval = request_approval(committed, "Leo Leaver")
    assert badge(ida_client) is None

    committed(approval.approvers.add, ida)
    assert badge(ida_client) == 1
    committed(approval.approvers.remove, ida)
    assert badge(ida_client) is None
    committed(ida.approvals_to_decide.add, approval)  # from the user's side
    assert badge(ida_client) == 1
    committed(approval.approvers.clear)
    assert badge(ida_client) is None
    committed(approval.approvers.set, [ida, olaf])
    assert badge(ida_client) == 1
    committed(approval.delete)
    assert badge(ida_client) is None


def test_any_other_save_shows_on_the_next_page(ida_client, committed):
    approval_automation(mdm=False)
    approval = request_approval(committed, "Lena Leaver")
    assert badge(ida_client) == 1

    approval.status = Approval.Status.CANCELLED
    approval.decided_at = timezone.now()
    committed(approval.save)
    assert badge(ida_client) is None


def test_a_change_is_forgotten_only_once_committed_and_a_count_lasts_at_most_30_s(ida):
    # Without its commit (here: the test's transaction, rolled back) a change leaves the cached
    # count; a count kept that long expires after PENDING_APPROVALS_CACHE_SECONDS (the bound
    # for a process whose cache is not shared with the workers).
    make_user("olaf", roles.IT_MANAGER)
    approval_automation(mdm=False, users=("olaf",))
    member = make_member(full_name="Lena Leaver")
    member_deactivate(member=member, actor=None, reason="Last day")  # queued on commit: none
    assert pending_approvals_count(ida) == 0
    key = f"approvals:pending:{ida.pk}"
    expires = cache._expire_info[cache.make_and_validate_key(key)]  # LocMemCache's own record
    assert time.time() + PENDING_APPROVALS_CACHE_SECONDS - 5 < expires
    assert expires <= time.time() + PENDING_APPROVALS_CACHE_SECONDS

    from automations.engine.runner import event_process
    from automations.models import Event

    event_process(event_id=Event.objects.get(member=member).pk)
    approval = Approval.objects.get(member=member)
    approval.approvers.add(ida)
    assert pending_approvals_count(ida) == 0
    cache.delete(key)
    assert pending_approvals_count(ida) == 1


def test_a_cache_that_does_not_answer_costs_the_count_its_query_not_the_page(
    ida_client, committed, settings
):
    approval_automation(mdm=False)
    request_approval(committed, "Lena Leaver")
    # A Redis cache on a port where nothing listens (connection refused).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
        }
    }
    assert badge(ida_client) == 1
    assert approvals_queries(ida_client) == 1  # counted each time: nothing could be kept
    approval = Approval.objects.get()
    committed(approval.approvers.clear)  # the forget fails quietly, the change is made
    assert badge(ida_client) is None


def _unsignalled_approval_writes(path: Path) -> list[str]:
    """update()/bulk_*() calls in `path` on approvals or their approvers."""
    source = path.read_text()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in ("update", "bulk_update", "bulk_create", "_raw_delete"):
            continue
        text = ast.get_source_segment(source, node) or ""
        target = text.split("." + node.func.attr + "(")[0].lower()
        if "approval" in target or "approvers" in target:
            found.append(f"{path}:{node.lineno}: {text.splitlines()[0]}")
    return found


def test_no_code_writes_approvals_without_the_signals():
    sources = application_sources()
    assert any(path.as_posix().endswith("automations/actions/approval.py") for path in sources)
    offenders = []
    for path in sources:
        offenders += _unsignalled_approval_writes(path)
    assert offenders == []


def test_the_approval_grep_catches_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "Approval.objects.filter(pk=1).update(status='approved')\n"
        "pending_approvals.update(expires_at=None)\n"
        "Approval.approvers.through.objects.bulk_create(rows)\n"
        "Approval.objects.bulk_update(rows, ['status'])\n"
        "Execution.objects.filter(pk=1).update(status='done')\n"
        "settings.update(approval_days=3)\n"
    )
    assert len(_unsignalled_approval_writes(sample)) == 4
