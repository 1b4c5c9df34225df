"""Issue 9's "done when", in one run through the real engine: an automation with two webhooks (HR
and ticketing), an email to the manager, a device-return request and an approval before the
device lock. Deactivating the member sends both webhooks, the email and the return notices at
once and holds the lock; the approver approves (with an OTP, as the page asks) and the lock goes
out; the return reminders and the escalation follow on schedule; the member, asset and
execution pages show all of it. Real SMTP and webhook servers on 127.0.0.1."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from assets.models import Asset, ReturnRequest
from assets.returns import returns_remind_due
from assetsonar import roles
from automations.actions.approval import approval_decide
from automations.models import Action, ActionLog, Approval, Execution
from automations.tests.action_approval_factories import member_with_laptop
from automations.tests.engine_factories import (
    SECRET,
    fast_retries,
    make_engine_automation,
    mdm_commands,
    use_sync_q,
)
from automations.tests.servers import WebhookReceiver
from conftest import make_member, make_user
from members.services import member_deactivate

pytestmark = pytest.mark.django_db


def add(automation, position, kind, config, *, secret=False):
    action = Action(automation=automation, kind=kind, position=position, config=config)
    if secret:
        action.set_secret(SECRET)
        action.set_secret_config({})
    action.save()
    return action


def test_two_webhooks_email_return_and_an_approved_lock_end_to_end(
    smtp_server, monkeypatch, settings, django_capture_on_commit_callbacks, client
):
    use_sync_q(monkeypatch, settings)
    fast_retries(settings)
    mdm_commands(enabled=True)
    ida = make_user(
        "ida", roles.IT_MANAGER, roles.MDM_OPERATOR, first_name="Ida", email="ida@example.com"
    )
    member, laptop = member_with_laptop()
    member.manager = make_member(full_name="Max Manager", email="max@example.com")
    member.save(update_fields=["manager"])

    with WebhookReceiver() as hr, WebhookReceiver() as ticketing:
        automation = make_engine_automation(name="Full offboarding")
        add(automation, 0, "webhook", {"url": hr.url(), "method": "POST"}, secret=True)
        add(automation, 1, "webhook", {"url": ticketing.url(), "method": "POST"}, secret=True)
        add(
            automation,
            2,
            "email",
            {
                "manager": True,
                "member": "",
                "addresses": [],
                "roles": [],
                "subject": "{{ member.full_name }} has left",
                "body": "Hello {{ member.manager.first_name }},\n{{ devices }}",
            },
        )
        add(
            automation,
            3,
            "device_return",
            {
                "categories": [],
                "reminder_every_days": 3,
                "max_reminders": 1,
                "escalate_to": ["it-ops@example.com"],
                "escalate_to_role": "",
            },
        )
        add(
            automation,
            4,
            "approval",
            {"role": "", "users": ["ida"], "expire_days": 3, "note": "Check the handover"},
        )
        add(automation, 5, "mdm_lock", {"message": "Return this laptop to IT", "phone": ""})

        with django_capture_on_commit_callbacks(execute=True):
            member_deactivate(member=member, actor=None, reason="Last day")
        execution = Execution.objects.get(member=member)

        # At once: both webhooks, the manager's email, the return request and its notices.
        assert len(hr.requests) == 1 and len(ticketing.requests) == 1
        assert hr.requests[0].headers["webhook-id"] != ticketing.requests[0].headers["webhook-id"]
        mails = {(m.rcpt_tos[0], m.header("Subject")) for m in smtp_server.messages}
        assert ("max@example.com", "Lena Leaver has left") in mails
        assert "Lena's MacBook" in next(
            m.text for m in smtp_server.messages if m.header("Subject") == "Lena Leaver has left"
        )
        request = ReturnRequest.objects.get(asset=laptop, closed_at__isnull=True)
        assert {m.rcpt_tos[0] for m in smtp_server.messages} >= {
            member.email,
            "max@example.com",
            "ida@example.com",  # the approver's mail with the link
        }
        # The lock waits for the approval.
        approval = Approval.objects.get(execution=execution)
        assert approval.status == Approval.Status.PENDING and approval.needs_mdm
        lock = execution.logs.get(action_kind="mdm_lock")
        assert lock.status == ActionLog.Status.PENDING
        laptop.refresh_from_db()
        assert laptop.lock_state == Asset.LockState.UNLOCKED

        with django_capture_on_commit_callbacks(execute=True):
            approval_decide(
                approval=approval,
                approve=True,
                comment="Handover done",
                actor=ida,
                otp_verified=True,
            )

    # The held log is replaced by the one the released run claims.
    lock = execution.logs.get(action_kind="mdm_lock")
    laptop.refresh_from_db()
    assert lock.status == ActionLog.Status.SUCCEEDED
    assert laptop.lock_state in (Asset.LockState.PENDING, Asset.LockState.LOCKED)
    assert laptop.custodian_id == member.pk and laptop.status == Asset.Status.RETURN_REQUESTED
    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED
    # One log per action and target, in the builder's order.
    kinds = list(
        execution.logs.order_by("action__position", "pk").values_list("action_kind", flat=True)
    )
    assert kinds == ["webhook", "webhook", "email", "device_return", "approval", "mdm_lock"]

    # Reminder after 3 days, then the escalation 3 days later, then nothing more.
    smtp_server.messages.clear()
    start = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        returns_remind_due(now=start + timedelta(days=3, hours=1))
    assert {m.rcpt_tos[0] for m in smtp_server.messages} >= {member.email, "max@example.com"}
    smtp_server.messages.clear()
    with django_capture_on_commit_callbacks(execute=True):
        returns_remind_due(now=start + timedelta(days=6, hours=2))
    assert [m.rcpt_tos[0] for m in smtp_server.messages] == ["it-ops@example.com"]
    request.refresh_from_db()
    assert request.reminders_sent == 1 and request.escalated_at is not None

    # Where people see it.
    client.force_login(ida)
    execution_page = client.get(execution.get_absolute_url()).content.decode()
    for text in ("max@example.com", "Lena&#x27;s MacBook", "Handover done"):
        assert text in execution_page
    asset_page = client.get(laptop.get_absolute_url()).content.decode()
    assert (
        "Return requested" in asset_page and "Locked" in asset_page or "Lock pending" in asset_page
    )
    member_page = client.get(reverse("members:detail", args=[member.pk])).content.decode()
    assert "Full offboarding" in member_page and "max@example.com" in member_page
