"""In Chromium: a second user opens the approval link from the mail the SMTP test server
received, signs in, enters the code of their authenticator app and approves; the held MDM lock
then goes out (the engine runs in-process: django-q2 in sync mode)."""

from __future__ import annotations

import re

import pytest

from assets.models import Asset
from assetsonar import roles
from assetsonar.tests.smtp_server import smtp_server  # noqa: F401 - a pytest fixture, used by name
from automations.models import ActionLog, Approval, Execution
from automations.tests.action_approval_factories import approval_automation, member_with_laptop
from automations.tests.browser import needs_chromium
from automations.tests.builder_factories import totp_code, totp_device
from automations.tests.engine_factories import fast_retries, mdm_commands, use_sync_q
from conftest import make_user
from members.services import member_deactivate

pytestmark = needs_chromium


@pytest.mark.django_db(transaction=True)
def test_a_second_user_approves_from_the_mailed_link_with_an_otp_and_the_lock_runs(
    live_server,
    browser,
    smtp_server,  # noqa: F811 - the fixture
    monkeypatch,
    settings,
):
    use_sync_q(monkeypatch, settings)
    fast_retries(settings)
    mdm_commands(enabled=True)
    settings.PORTAL_URL = live_server.url
    manager = make_user("manager", roles.IT_MANAGER, first_name="Max", last_name="Manager")
    ida = make_user(
        "ida",
        roles.IT_MANAGER,
        roles.MDM_OPERATOR,
        first_name="Ida",
        last_name="Approver",
        email="ida@example.com",
    )
    device = totp_device(ida)
    member, laptop = member_with_laptop()
    approval_automation(users=("ida",))

    member_deactivate(member=member, actor=manager, reason="Last day")

    execution = Execution.objects.get(member=member)
    assert execution.logs.get(action_kind="mdm_lock").status == ActionLog.Status.PENDING
    (mail,) = smtp_server.messages
    assert mail.rcpt_tos == ["ida@example.com"]
    link = re.search(r"(http://\S+/automations/approvals/\d+/)", mail.text).group(1)

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(link)
    page.wait_for_url("**/accounts/login/**")
    page.fill("#id_username", "ida")
    page.fill("#id_password", "pw-ida-Secret1")
    page.click("button[type=submit]")
    page.wait_for_url(link)
    assert "Lena's MacBook" in page.locator("#held-actions").inner_text()
    assert "1" in page.locator("#approvals-pending").inner_text()

    page.fill("#id_comment", "Handover done")
    page.fill("#id_otp_token", totp_code(device))
    page.get_by_role("button", name="Approve").click()
    page.wait_for_load_state()

    assert "Approved: the held actions run now." in page.content()
    assert "Approved" in page.locator("#approval-status").inner_text()
    approval = Approval.objects.get(execution=execution)
    assert (approval.status, approval.decided_by_id) == (Approval.Status.APPROVED, ida.pk)
    lock = execution.logs.get(action_kind="mdm_lock")
    assert (lock.status, lock.attempts) == (ActionLog.Status.SUCCEEDED, 1)
    laptop.refresh_from_db()
    assert laptop.lock_state == Asset.LockState.LOCKED
    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED
    assert errors == []
