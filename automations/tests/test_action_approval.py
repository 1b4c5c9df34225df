"""The "Require approval" action kind through the real engine: the step holds the actions after
it (a device lock, via the built-in MDM simulator) until an approver decides; approved → the lock
goes out once; rejected, expired or cancelled → the lock is skipped, saying why. Decisions through
the portal page: only approvers (403 otherwise, nothing saved), once, and with a one-time
password when a device lock is held (same verification and throttle as saving a lock)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from assets.models import Asset
from assetsonar import roles
from assetsonar.models import AuditEvent
from automations.actions import get_kind
from automations.actions.approval import (
    ApprovalRefused,
    approval_decide,
    approvals_expire_due,
)
from automations.models import ActionLog, Approval, Execution
from automations.tests.action_approval_factories import approval_automation, member_with_laptop
from automations.tests.builder_factories import totp_code, totp_device
from automations.tests.engine_factories import (
    fast_retries,
    make_connection,
    make_device,
    mdm_commands,
    use_sync_q,
)
from conftest import make_member, make_user
from members.services import member_deactivate, member_reactivate

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def sync_q(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)
    fast_retries(settings)
    mdm_commands(enabled=True)


@pytest.fixture
def deactivate(django_capture_on_commit_callbacks):
    def run(member):
        with django_capture_on_commit_callbacks(execute=True):
            member_deactivate(member=member, actor=None, reason="Last day")
        return Execution.objects.filter(member=member).latest("pk")

    return run


@pytest.fixture
def ida(db):
    return make_user(
        "ida",
        roles.IT_MANAGER,
        roles.MDM_OPERATOR,
        first_name="Ida",
        last_name="Manager",
        email="ida@example.com",
    )


@pytest.fixture
def olaf(db):
    return make_user("olaf", roles.IT_MANAGER, first_name="Olaf", last_name="Ops")


def decide(approval, actor, *, approve, comment="", otp_verified=False, capture):
    with capture(execute=True):
        return approval_decide(
            approval=approval,
            approve=approve,
            comment=comment,
            actor=actor,
            otp_verified=otp_verified,
        )


def lock_logs(execution):
    return list(execution.logs.filter(action_kind="mdm_lock"))


def test_the_step_waits_and_holds_the_lock(deactivate, ida):
    member, laptop = member_with_laptop()
    approval_automation()

    execution = deactivate(member)

    approval = Approval.objects.get(execution=execution)
    assert approval.status == Approval.Status.PENDING
    assert approval.needs_mdm is True
    assert list(approval.approvers.all()) == [ida]
    assert approval.expires_at - approval.requested_at == timedelta(days=3)
    step = execution.logs.get(action_kind="approval")
    assert (step.status, step.target_type) == (ActionLog.Status.PENDING, "approval")
    assert step.insight.startswith("Waiting for approval from Ida Manager until ")
    assert step.target_label == "Ida Manager"
    (held,) = lock_logs(execution)
    assert held.status == ActionLog.Status.PENDING
    assert held.detail["held_by"] == approval.action_id
    assert execution.status == Execution.Status.RUNNING
    laptop.refresh_from_db()
    assert laptop.lock_state != Asset.LockState.LOCKED


def test_approved_the_held_lock_runs_once(deactivate, ida, django_capture_on_commit_callbacks):
    member, laptop = member_with_laptop()
    approval_automation()
    execution = deactivate(member)
    approval = Approval.objects.get(execution=execution)

    decide(
        approval,
        ida,
        approve=True,
        comment="Handover done",
        otp_verified=True,
        capture=django_capture_on_commit_callbacks,
    )

    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED
    (lock,) = lock_logs(execution)
    assert (lock.status, lock.attempts) == (ActionLog.Status.SUCCEEDED, 1)
    laptop.refresh_from_db()
    assert laptop.lock_state == Asset.LockState.LOCKED
    step = execution.logs.get(action_kind="approval")
    assert step.status == ActionLog.Status.SUCCEEDED
    assert step.insight.startswith("Approved by Ida Manager on ")
    assert step.insight.endswith(": “Handover done”.")
    assert step.detail["decided_by"] == "Ida Manager"
    assert step.target_label == "Approved by Ida Manager"
    assert step.detail["comment"] == "Handover done"
    assert AuditEvent.objects.filter(message__contains=f"Approval {approval.pk} of").exists()

    # A second approval is refused and nothing runs again.
    with pytest.raises(ApprovalRefused, match="already approved by Ida Manager"):
        decide(
            approval,
            ida,
            approve=True,
            otp_verified=True,
            capture=django_capture_on_commit_callbacks,
        )
    assert len(lock_logs(execution)) == 1
    assert ActionLog.objects.get(pk=lock.pk).attempts == 1


def test_rejected_the_lock_is_skipped_with_the_approver_and_comment(
    deactivate, ida, django_capture_on_commit_callbacks
):
    member, laptop = member_with_laptop()
    approval_automation()
    execution = deactivate(member)
    approval = Approval.objects.get(execution=execution)

    decide(
        approval,
        ida,
        approve=False,
        comment="Keep the laptop for handover",
        capture=django_capture_on_commit_callbacks,
    )

    approval.refresh_from_db()
    assert approval.status == Approval.Status.REJECTED
    assert approval.decided_by == ida
    (lock,) = lock_logs(execution)
    assert lock.status == ActionLog.Status.SKIPPED
    when = f"{timezone.localtime(approval.decided_at):%-d %b %H:%M}"
    assert lock.insight == (
        f"Not run: rejected by Ida Manager on {when}: “Keep the laptop for handover”"
    )
    execution.refresh_from_db()
    assert execution.status == Execution.Status.FAILED
    laptop.refresh_from_db()
    assert laptop.lock_state != Asset.LockState.LOCKED


def test_not_decided_in_time_it_expires_and_says_so(deactivate, ida):
    member, laptop = member_with_laptop()
    approval_automation(expire_days=2)
    execution = deactivate(member)
    approval = Approval.objects.get(execution=execution)

    assert approvals_expire_due(now=approval.expires_at - timedelta(minutes=1)) == 0
    assert approvals_expire_due(now=approval.expires_at + timedelta(minutes=1)) == 1

    approval.refresh_from_db()
    assert approval.status == Approval.Status.EXPIRED
    (lock,) = lock_logs(execution)
    assert lock.status == ActionLog.Status.SKIPPED
    assert lock.insight.startswith("Not run: the approval request expired on ")
    step = execution.logs.get(action_kind="approval")
    assert step.insight.endswith("no one decided within 2 days.")
    execution.refresh_from_db()
    assert execution.is_finished
    laptop.refresh_from_db()
    assert laptop.lock_state != Asset.LockState.LOCKED
    # Expired: no one can approve it any more.
    with pytest.raises(ApprovalRefused, match="already expired"):
        approval_decide(approval=approval, approve=True, comment="", actor=ida, otp_verified=True)


def test_a_request_past_its_time_cannot_be_approved_before_the_sweep(deactivate, ida):
    member, _ = member_with_laptop()
    approval_automation()
    execution = deactivate(member)
    Approval.objects.filter(execution=execution).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    approval = Approval.objects.get(execution=execution)

    with pytest.raises(ApprovalRefused, match="expired on"):
        approval_decide(approval=approval, approve=True, comment="", actor=ida, otp_verified=True)
    approval.refresh_from_db()
    assert approval.status == Approval.Status.PENDING


def test_reactivating_the_member_cancels_the_request(
    deactivate, ida, django_capture_on_commit_callbacks
):
    member, laptop = member_with_laptop()
    approval_automation()
    execution = deactivate(member)

    with django_capture_on_commit_callbacks(execute=True):
        member_reactivate(member=member.pk, actor=None)

    approval = Approval.objects.get(execution=execution)
    assert approval.status == Approval.Status.CANCELLED
    (lock,) = lock_logs(execution)
    assert lock.status == ActionLog.Status.SKIPPED
    assert "the member was reactivated on" in lock.insight
    assert "cancelled the approval request" in lock.insight
    laptop.refresh_from_db()
    assert laptop.lock_state != Asset.LockState.LOCKED


def test_only_an_approver_may_decide(deactivate, ida, olaf):
    member, _ = member_with_laptop()
    approval_automation()
    approval = Approval.objects.get(execution=deactivate(member))

    with pytest.raises(PermissionDenied):
        approval_decide(approval=approval, approve=False, comment="", actor=olaf)
    approval.refresh_from_db()
    assert approval.status == Approval.Status.PENDING


def test_approving_a_lock_needs_the_otp(deactivate, ida):
    member, _ = member_with_laptop()
    approval_automation()
    approval = Approval.objects.get(execution=deactivate(member))

    with pytest.raises(ApprovalRefused, match="one-time password"):
        approval_decide(approval=approval, approve=True, comment="", actor=ida)
    approval.refresh_from_db()
    assert approval.status == Approval.Status.PENDING


def test_approvers_come_from_the_role_and_the_named_users(deactivate, ida, olaf):
    member, _ = member_with_laptop()
    make_user("inactive", roles.MDM_OPERATOR, is_active=False)
    approval_automation(users=("olaf",), role=roles.MDM_OPERATOR)

    approval = Approval.objects.get(execution=deactivate(member))

    assert set(approval.approvers.all()) == {ida, olaf}


def test_no_active_approver_fails_the_step_and_skips_the_rest(deactivate):
    member, laptop = member_with_laptop()
    approval_automation(users=(), role=roles.MDM_OPERATOR)

    execution = deactivate(member)

    step = execution.logs.get(action_kind="approval")
    assert step.status == ActionLog.Status.FAILED
    assert "The MDM Operator role has no active users." in step.insight
    (lock,) = lock_logs(execution)
    assert lock.status == ActionLog.Status.SKIPPED
    assert not Approval.objects.filter(execution=execution).exists()
    execution.refresh_from_db()
    assert execution.status == Execution.Status.FAILED


def test_a_rerun_of_the_event_creates_no_second_request(deactivate, ida):
    from automations.engine.runner import execution_resume

    member, _ = member_with_laptop()
    approval_automation()
    execution = deactivate(member)

    execution_resume(execution_id=execution.pk)

    assert Approval.objects.filter(execution=execution).count() == 1
    assert execution.logs.filter(action_kind="approval").count() == 1
    assert len(lock_logs(execution)) == 1


# --- Settings ------------------------------------------------------------------------------------


def test_settings_are_validated_with_clear_messages(ida):
    kind = get_kind("approval")
    assert kind.clean_config(
        {"role": "", "users": [], "expire_days": 3, "note": ""}, previous=None
    ) == {"__all__": ["Choose who approves: a role, named users, or both."]}
    errors = kind.clean_config(
        {"role": "Nope", "users": ["ida", "ghost"], "expire_days": 0, "note": "x" * 501},
        previous=None,
    )
    assert errors == {
        "role": ["There is no role “Nope”."],
        "users": ["Not an active user: “ghost”."],
        "expire_days": ["Expire after a whole number of days from 1 to 30."],
        "note": ["The note is at most 500 characters."],
    }
    assert (
        kind.clean_config(
            {"role": roles.IT_MANAGER, "users": ["ida"], "expire_days": 3, "note": ""},
            previous=None,
        )
        == {}
    )
    assert kind.summary({"role": "IT Manager", "users": ["ida"]}) == (
        "wait for approval by the IT Manager role and ida"
    )


def test_the_builder_form_refuses_no_approver(ida):
    form = get_kind("approval").form_class(data={"expire_days": "3"})
    assert not form.is_valid()
    assert form.non_field_errors() == ["Choose who approves: a role, named users, or both."]
    form = get_kind("approval").form_class(data={"expire_days": "31", "users": ["ida"]})
    assert not form.is_valid()
    assert "expire_days" in form.errors


# --- The portal page ------------------------------------------------------------------------------


def page(approval):
    return reverse("automations:approval_detail", args=[approval.pk])


def test_a_non_approver_gets_403_and_nothing_is_saved(client, deactivate, ida, olaf):
    member, _ = member_with_laptop()
    approval_automation()
    approval = Approval.objects.get(execution=deactivate(member))
    # An IT manager (automations.decide_approval) sees the request but may not decide it.
    client.force_login(olaf)
    html = client.get(page(approval)).content.decode()
    assert 'value="approve"' not in html
    response = client.post(page(approval), {"decision": "reject", "comment": "no"})
    assert response.status_code == 403
    # Without that permission, not even the page.
    client.force_login(make_user("viewer", roles.VIEWER))
    assert client.get(page(approval)).status_code == 403
    response = client.post(page(approval), {"decision": "reject", "comment": "no"})

    assert response.status_code == 403
    approval.refresh_from_db()
    assert approval.status == Approval.Status.PENDING


def test_the_page_shows_the_held_lock_and_its_targets(client, deactivate, ida):
    member, _ = member_with_laptop()
    approval_automation()
    approval = Approval.objects.get(execution=deactivate(member))
    totp_device(ida)
    client.force_login(ida)

    html = client.get(page(approval)).content.decode()

    assert "Lena Leaver" in html
    assert "Offboarding with approval" in html
    assert "Lock devices" in html
    assert "Lena&#x27;s MacBook" in html or "Lena's MacBook" in html
    assert "Check the handover first" in html
    assert 'name="otp_token"' in html


def test_approving_a_lock_through_the_page_needs_a_valid_unused_otp(
    client, deactivate, ida, django_capture_on_commit_callbacks
):
    member, laptop = member_with_laptop()
    approval_automation()
    execution = deactivate(member)
    approval = Approval.objects.get(execution=execution)
    device = totp_device(ida)
    client.force_login(ida)

    missing = client.post(page(approval), {"decision": "approve", "comment": "ok"})
    assert missing.status_code == 400
    assert "Enter the 6-digit code" in missing.content.decode()
    wrong = client.post(page(approval), {"decision": "approve", "otp_token": "000000"})
    assert wrong.status_code == 400
    approval.refresh_from_db()
    assert approval.status == Approval.Status.PENDING

    # Past the throttle of the wrong code (django-otp doubles the wait after each one).
    device.refresh_from_db()
    device.throttling_failure_timestamp = None
    device.throttling_failure_count = 0
    device.save()
    code = totp_code(device)
    with django_capture_on_commit_callbacks(execute=True):
        ok = client.post(page(approval), {"decision": "approve", "otp_token": code})
    assert ok.status_code == 302
    approval.refresh_from_db()
    assert approval.status == Approval.Status.APPROVED
    laptop.refresh_from_db()
    assert laptop.lock_state == Asset.LockState.LOCKED

    # The same code again, on a second request holding a lock: refused as already used.
    member2 = make_member(full_name="Max Mover")
    make_device(member2, make_connection(name="Demo MDM 2"))
    second = Approval.objects.get(execution=deactivate(member2))
    replay = client.post(page(second), {"decision": "approve", "otp_token": code})
    assert replay.status_code == 400
    assert "already used" in replay.content.decode()
    second.refresh_from_db()
    assert second.status == Approval.Status.PENDING


def test_an_approver_without_an_authenticator_is_told_to_enrol(client, deactivate, ida):
    member, _ = member_with_laptop()
    approval_automation()
    approval = Approval.objects.get(execution=deactivate(member))
    client.force_login(ida)

    html = client.get(page(approval)).content.decode()
    assert "Set up an authenticator app" in html
    response = client.post(page(approval), {"decision": "approve"})
    assert response.status_code == 400
    assert "set up an authenticator app first" in response.content.decode()
    approval.refresh_from_db()
    assert approval.status == Approval.Status.PENDING


def test_an_approver_without_the_mdm_permission_cannot_approve_a_lock(client, deactivate, olaf):
    member, _ = member_with_laptop()
    approval_automation(users=("olaf",))
    approval = Approval.objects.get(execution=deactivate(member))
    totp_device(olaf)
    client.force_login(olaf)

    assert client.post(page(approval), {"decision": "approve"}).status_code == 403
    # Rejecting needs no MDM permission and no code.
    assert client.post(page(approval), {"decision": "reject"}).status_code == 302
    approval.refresh_from_db()
    assert approval.status == Approval.Status.REJECTED


def test_rejecting_through_the_page_without_javascript(client, deactivate, ida):
    member, _ = member_with_laptop()
    approval_automation()
    execution = deactivate(member)
    approval = Approval.objects.get(execution=execution)
    client.force_login(ida)

    response = client.post(
        page(approval), {"decision": "reject", "comment": "Keep the laptop"}, follow=True
    )

    assert "Rejected: the held actions will not run." in response.content.decode()
    again = client.post(page(approval), {"decision": "reject"})
    assert again.status_code == 409
    assert "already rejected by Ida Manager" in again.content.decode()
    # The execution page shows the decision on the approval row.
    client.force_login(make_user("boss", roles.IT_MANAGER))
    html = client.get(execution.get_absolute_url()).content.decode()
    assert "Decided by" in html
    assert "Keep the laptop" in html
    assert "Rejected by Ida Manager" in html
    # The member's Automated actions panel shows the decision.
    panel = client.get(reverse("automations:member_actions_panel", args=[member.pk]))
    assert "Rejected by Ida Manager" in panel.content.decode()
    # The Django admin lists approvals by decision, read-only.
    client.force_login(make_user("root", is_superuser=True, is_staff=True))
    admin_list = client.get(
        reverse("admin:automations_approval_changelist"), {"status__exact": "rejected"}
    )
    assert admin_list.status_code == 200
    assert "Lena Leaver" in admin_list.content.decode()
    change = client.get(reverse("admin:automations_approval_change", args=[approval.pk]))
    assert 'name="_save"' not in change.content.decode()


# --- The builder --------------------------------------------------------------------------------


def test_the_builder_saves_an_approval_before_a_revocation_without_javascript(manager_client, ida):
    from automations.models import Automation
    from automations.tests.builder_factories import action_rows, builder_data

    data = builder_data(name="Approve first", revoke=None)
    data.update(
        action_rows(
            ("approval", {"users": ["ida"], "role": roles.MDM_OPERATOR, "expire_days": "5"}),
            ("revoke_licenses", {"user_based": True}),
        )
    )
    response = manager_client.post(reverse("automations:create"), data)

    assert response.status_code == 302, response.content.decode()[:3000]
    automation = Automation.objects.get(name="Approve first")
    first, second = automation.actions.order_by("position")
    assert (first.kind, second.kind) == ("approval", "revoke_licenses")
    assert first.config == {
        "role": roles.MDM_OPERATOR,
        "users": ["ida"],
        "expire_days": 5,
        "note": "",
    }


def test_the_builder_refuses_an_approval_without_approvers(manager_client):
    from automations.tests.builder_factories import action_rows, builder_data

    data = builder_data(name="Approve nobody", revoke=None)
    data.update(action_rows(("approval", {"expire_days": "3"})))
    response = manager_client.post(reverse("automations:create"), data)

    assert response.status_code == 200
    assert "Choose who approves: a role, named users, or both." in response.content.decode()


def test_the_expiry_schedule_exists_and_runs_through_django_q(deactivate, ida):
    from django_q.models import Schedule
    from django_q.scheduler import scheduler

    from automations.actions.approval import ensure_expiry_schedule

    # A transactional test earlier in this process may have flushed the migration's row: the
    # migration calls this same function.
    ensure_expiry_schedule()
    schedule = Schedule.objects.get(name="Expire approval requests")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "automations.actions.approval.approvals_expire_due",
        Schedule.MINUTES,
        15,
    )
    member, _ = member_with_laptop()
    approval_automation()
    execution = deactivate(member)
    Approval.objects.filter(execution=execution).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    Schedule.objects.filter(pk=schedule.pk).update(next_run=timezone.now() - timedelta(seconds=1))

    scheduler()  # django-q2's scheduler; in sync mode the task runs right away

    assert Approval.objects.get(execution=execution).status == Approval.Status.EXPIRED
    assert lock_logs(execution)[0].status == ActionLog.Status.SKIPPED
