"""The approvers' mails against the real SMTP test server (aiosmtpd on 127.0.0.1), and the query
budgets of the Approvals inbox, the approval page and the navigation's count at two sizes."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from assetsonar import roles
from assetsonar.tests.smtp_server import smtp_server  # noqa: F401 - a pytest fixture, used by name
from automations.actions.approval import approval_notify
from automations.models import Approval
from automations.tests.action_approval_factories import approval_automation, member_with_laptop
from automations.tests.engine_factories import fast_retries, mdm_commands, use_sync_q
from automations.tests.execution_factories import make_execution
from conftest import make_member, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def sync_q(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)
    fast_retries(settings)
    mdm_commands(enabled=True)
    settings.PORTAL_URL = "https://assets.example.com"


@pytest.fixture
def approvers(db):
    ida = make_user(
        "ida", roles.MDM_OPERATOR, first_name="Ida", last_name="Manager", email="ida@example.com"
    )
    olaf = make_user("olaf", first_name="Olaf", last_name="Ops", email="olaf@example.com")
    return ida, olaf


def test_each_approver_gets_one_mail_with_the_link(
    smtp_server,  # noqa: F811 - the fixture
    approvers,
    django_capture_on_commit_callbacks,
):
    from members.services import member_deactivate

    ida, olaf = approvers
    member, _ = member_with_laptop()
    approval_automation(users=("olaf",), role=roles.MDM_OPERATOR)

    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=member, actor=None, reason="Last day")

    approval = Approval.objects.get(member=member)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [
        "ida@example.com",
        "olaf@example.com",
    ]
    mail = next(m for m in smtp_server.messages if m.rcpt_tos == ["ida@example.com"])
    assert mail.header("Subject") == "Approval needed: Offboarding with approval for Lena Leaver"
    assert mail.header("X-AssetSonar-Key") == f"approval-{approval.pk}-user-{ida.pk}"
    link = f"https://assets.example.com/automations/approvals/{approval.pk}/"
    assert link in mail.text
    assert f'href="{link}"' in mail.html
    assert "Check the handover first" in mail.text
    assert "Lock devices" in mail.text and "Lena's MacBook" in mail.text
    assert "one-time password" in mail.text
    assert set(approval.notified) == {str(ida.pk), str(olaf.pk)}

    # The task run again sends nothing twice.
    assert approval_notify(approval.pk) == 0
    assert len(smtp_server.messages) == 2


def test_an_approver_the_server_refused_is_mailed_on_the_next_run(
    smtp_server,  # noqa: F811 - the fixture
    approvers,
    django_capture_on_commit_callbacks,
):
    from members.services import member_deactivate

    ida, _ = approvers
    member, _ = member_with_laptop()
    approval_automation(users=("ida",))
    smtp_server.reply("rcpt", "451 4.3.0 Try again later", times=1)

    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=member, actor=None, reason="Last day")

    approval = Approval.objects.get(member=member)
    assert smtp_server.messages == []
    assert approval.notified == {}
    assert approval_notify(approval.pk) == 1
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ida@example.com"]]
    assert re.search(r"/automations/approvals/\d+/", smtp_server.messages[0].text)


# --- Query budgets ---------------------------------------------------------------------------

INBOX_BUDGET = 12
DETAIL_BUDGET = 16


def pending_approvals(approver, count: int, name: str = "Needs a yes") -> list[Approval]:
    automation = approval_automation(users=(approver.username,), name=name)
    approval_action = automation.actions.get(kind="approval")
    made = []
    for _ in range(count):
        member = make_member()
        execution = make_execution(member, automation, status="running")
        approval = Approval.objects.create(
            execution=execution,
            action=approval_action,
            member=member,
            expires_at=timezone.now() + timezone.timedelta(days=3),
            needs_mdm=True,
        )
        approval.approvers.add(approver)
        made.append(approval)
    return made


@pytest.mark.parametrize("size", [1, 15])
def test_inbox_query_budget(client, approvers, django_assert_max_num_queries, size):
    ida, _ = approvers
    pending_approvals(ida, size)
    decided = pending_approvals(ida, size, name="Decided")
    Approval.objects.filter(pk__in=[a.pk for a in decided]).update(status="rejected")
    client.force_login(ida)

    with django_assert_max_num_queries(INBOX_BUDGET):
        response = client.get(reverse("automations:approvals"))

    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="btn btn-sm" href="/automations/approvals/') == size
    # The navigation's count: one query, with the number waiting.
    assert f'aria-label="{size} waiting">{size}</span>' in html


@pytest.mark.parametrize("devices", [1, 6])
def test_approval_page_query_budget(client, approvers, django_assert_max_num_queries, devices):
    from automations.tests.engine_factories import make_connection, make_device

    ida, _ = approvers
    (approval,) = pending_approvals(ida, 1)
    connection = make_connection()
    for _ in range(devices):
        make_device(approval.member, connection)
    client.force_login(ida)

    with django_assert_max_num_queries(DETAIL_BUDGET):
        response = client.get(reverse("automations:approval_detail", args=[approval.pk]))

    assert response.status_code == 200


def test_a_user_with_nothing_to_decide_sees_no_approvals_entry(client):
    user = make_user("viewer", roles.VIEWER)
    client.force_login(user)
    html = client.get(reverse("dashboard")).content.decode()
    assert "/automations/approvals/" not in html
    assert client.get(reverse("automations:approvals")).status_code == 403
