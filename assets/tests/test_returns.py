"""Device returns (assets/returns.py): opening, the emails through a real SMTP server on
127.0.0.1, reminders and escalation on a clock the tests move, closing on check-in, cancelling
on reactivation, and a device with a return request still counting as held everywhere."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from assets import returns
from assets.models import Asset, CustodyRecord, ReturnMail, ReturnRequest
from assets.returns import (
    return_request_close,
    return_request_open,
    return_requests_open,
    returns_remind_due,
)
from assets.services import asset_check_in, asset_update
from assetsonar import roles
from assetsonar.models import AuditEvent
from assetsonar.tallies import tally_values
from conftest import make_asset, make_member, make_user
from members.services import member_deactivate, member_reactivate

pytestmark = pytest.mark.django_db

T0 = timezone.make_aware(timezone.datetime(2026, 11, 2, 9, 0))
N = 3  # days between reminders


def days(n: float):
    return T0 + timedelta(days=n)


@pytest.fixture
def leaver():
    manager = make_member(full_name="Alex Chen", email="alex.chen@example.com")
    return make_member(full_name="Jordan Rivera", email="jordan@example.com", manager=manager)


def open_return(member, assets, *, send_now, max_reminders=2, **extra):
    """Open with the emails sent at commit, as in a worker."""
    with send_now(execute=True):
        return return_requests_open(
            member=member,
            assets=assets,
            actor=None,
            reminder_every_days=N,
            max_reminders=max_reminders,
            escalate_to=extra.pop("escalate_to", ["it-ops@example.com"]),
            source_label="Offboard leavers · execution 7",
            now=T0,
            **extra,
        )


def sent(server, kind=None):
    """(recipient, subject) of every message the server accepted, optionally of one kind."""
    out = []
    for m in server.messages:
        key = m.header("X-AssetSonar-Key")
        if kind is None or f":{kind}:" in key:
            out.append((m.rcpt_tos[0], m.header("Subject")))
    return out


def test_opening_requests_the_return_and_emails_member_and_manager_once(
    leaver, smtp_server, django_capture_on_commit_callbacks
):
    laptop = make_asset(custodian=leaver, asset_tag="AT-100", name="MacBook Air")
    phone = make_asset(custodian=leaver, asset_tag="AT-101", name="iPhone 15")

    opened = open_return(
        leaver, [laptop, phone], send_now=django_capture_on_commit_callbacks, source_key="e7:a3"
    )

    assert [o.created for o in opened] == [True, True]
    for asset in (laptop, phone):
        asset.refresh_from_db()
        assert (asset.status, asset.custodian_id) == (Asset.Status.RETURN_REQUESTED, leaver.pk)
        assert CustodyRecord.objects.filter(asset=asset, checked_in_at=None).count() == 1
    request = ReturnRequest.objects.get(asset=laptop)
    assert request.next_reminder_at == days(N)
    assert request.source_label == "Offboard leavers · execution 7"
    assert tally_values("assets")["assets"]["return_requested"] == 2
    assert AuditEvent.objects.filter(
        object_id=str(laptop.pk), changes__status=["In custody", "Return requested"]
    ).exists()
    # One email each, listing both devices.
    assert sorted(sent(smtp_server)) == [
        ("alex.chen@example.com", "Jordan Rivera: devices to return"),
        ("jordan@example.com", "Please return your company devices"),
    ]
    to_member = next(m for m in smtp_server.messages if m.rcpt_tos == ["jordan@example.com"])
    assert "Hello Jordan," in to_member.text
    assert "AT-100 · MacBook Air" in to_member.text and "AT-101 · iPhone 15" in to_member.text
    assert "AT-101 · iPhone 15" in to_member.html
    assert to_member.header("X-AssetSonar-Key").startswith(f"return:{request.pk}:notice:0:member")


def test_opening_twice_with_the_same_source_key_opens_one_request_and_mails_once(
    leaver, smtp_server, django_capture_on_commit_callbacks
):
    laptop = make_asset(custodian=leaver)
    first = open_return(
        leaver, [laptop], send_now=django_capture_on_commit_callbacks, source_key="k"
    )
    again = open_return(
        leaver, [laptop], send_now=django_capture_on_commit_callbacks, source_key="k"
    )

    assert [o.created for o in again] == [False]
    assert again[0].request == first[0].request
    assert ReturnRequest.objects.count() == 1
    assert len(smtp_server.messages) == 2
    # A second sweep at the same moment sends nothing either.
    returns_remind_due(now=days(0))
    returns_remind_due(now=days(0))
    assert len(smtp_server.messages) == 2


def test_reminders_every_n_days_then_one_escalation_then_nothing(
    leaver, smtp_server, django_capture_on_commit_callbacks
):
    make_user("ida", roles.IT_MANAGER, email="ida@example.com")
    make_user("gone", roles.IT_MANAGER, email="gone@example.com", is_active=False)
    laptop = make_asset(custodian=leaver)
    open_return(
        leaver,
        [laptop],
        send_now=django_capture_on_commit_callbacks,
        escalate_to_role=roles.IT_MANAGER,
    )
    smtp_server.messages.clear()

    assert returns_remind_due(now=days(N) - timedelta(minutes=1))["reminders"] == 0
    assert sent(smtp_server) == []

    returns_remind_due(now=days(N))
    assert sorted(sent(smtp_server, "reminder")) == [
        ("alex.chen@example.com", "Reminder: Jordan Rivera has not returned their devices yet"),
        ("jordan@example.com", "Reminder: please return your company devices"),
    ]
    request = ReturnRequest.objects.get()
    assert (request.reminders_sent, request.next_reminder_at) == (1, days(2 * N))
    assert request.is_overdue

    returns_remind_due(now=days(2 * N) - timedelta(hours=1))
    assert len(smtp_server.messages) == 2
    returns_remind_due(now=days(2 * N))
    assert len(sent(smtp_server, "reminder")) == 4
    assert {m.header("X-AssetSonar-Key").split(":")[3] for m in smtp_server.messages} == {"1", "2"}

    returns_remind_due(now=days(3 * N))
    assert sorted(sent(smtp_server, "escalation")) == [
        ("ida@example.com", "Devices not returned: Jordan Rivera"),
        ("it-ops@example.com", "Devices not returned: Jordan Rivera"),
    ]
    request.refresh_from_db()
    assert (request.escalated_at, request.next_reminder_at) == (days(3 * N), None)

    for later in (4, 5, 10, 40):
        returns_remind_due(now=days(later * N))
    assert len(smtp_server.messages) == 6


def test_nothing_is_sent_after_the_device_is_checked_in(
    leaver, smtp_server, django_capture_on_commit_callbacks
):
    laptop = make_asset(custodian=leaver)
    open_return(leaver, [laptop], send_now=django_capture_on_commit_callbacks)
    returns_remind_due(now=days(N))
    assert len(smtp_server.messages) == 4

    asset_check_in(asset=laptop, actor=None)
    for later in (2, 3, 4, 10):
        returns_remind_due(now=days(later * N))

    assert len(smtp_server.messages) == 4
    request = ReturnRequest.objects.get()
    assert request.closed_reason == ReturnRequest.ClosedReason.CHECKED_IN
    assert request.next_reminder_at is None


def test_after_the_workers_were_down_one_reminder_not_a_burst(
    leaver, smtp_server, django_capture_on_commit_callbacks
):
    laptop = make_asset(custodian=leaver)
    open_return(leaver, [laptop], send_now=django_capture_on_commit_callbacks, max_reminders=5)
    smtp_server.messages.clear()

    back = days(5 * N + 1)  # five due dates missed
    returns_remind_due(now=back)
    returns_remind_due(now=back + timedelta(minutes=15))

    assert len(sent(smtp_server, "reminder")) == 2  # one to the member, one to the manager
    request = ReturnRequest.objects.get()
    assert (request.reminders_sent, request.next_reminder_at) == (1, back + timedelta(days=N))


def test_a_temporary_failure_is_sent_by_the_next_sweep(
    leaver, smtp_server, django_capture_on_commit_callbacks
):
    laptop = make_asset(custodian=leaver)
    smtp_server.reply("rcpt", "451 4.7.1 Greylisted, come back later", times=1)
    open_return(leaver, [laptop], send_now=django_capture_on_commit_callbacks)

    waiting = ReturnMail.objects.get(recipient="member")
    assert waiting.status == ReturnMail.Status.PENDING
    assert "451 4.7.1 Greylisted" in waiting.insight and "will retry" in waiting.insight
    assert sent(smtp_server) == [("alex.chen@example.com", "Jordan Rivera: devices to return")]

    returns_remind_due(now=days(0.01))
    returns_remind_due(now=days(0.02))

    assert sorted(r for r, _ in sent(smtp_server)) == [
        "alex.chen@example.com",
        "jordan@example.com",
    ]
    waiting.refresh_from_db()
    assert (waiting.status, waiting.attempts) == (ReturnMail.Status.SENT, 2)


def test_a_permanent_failure_is_kept_with_its_insight_and_not_retried(
    leaver, smtp_server, django_capture_on_commit_callbacks
):
    laptop = make_asset(custodian=leaver)
    smtp_server.reply("rcpt", "550 5.1.1 no such user")
    open_return(leaver, [laptop], send_now=django_capture_on_commit_callbacks)
    returns_remind_due(now=days(0.01))

    assert smtp_server.messages == []
    for row in ReturnMail.objects.all():
        assert (row.status, row.attempts) == (ReturnMail.Status.FAILED, 1)
        assert "550 5.1.1 no such user" in row.insight


def test_an_email_whose_devices_came_back_before_it_went_out_is_not_sent(
    leaver, smtp_server, django_capture_on_commit_callbacks
):
    laptop = make_asset(custodian=leaver)
    smtp_server.reply("rcpt", "421 4.3.2 try later", times=2)
    open_return(leaver, [laptop], send_now=django_capture_on_commit_callbacks)
    asset_check_in(asset=laptop, actor=None)

    returns_remind_due(now=days(1))

    assert smtp_server.messages == []
    assert set(ReturnMail.objects.values_list("status", flat=True)) == {"cancelled"}


def test_a_returning_device_is_still_held_by_its_custodian(leaver):
    from members.models import Member
    from members.selectors import member_holding_filter

    laptop = make_asset(custodian=leaver)
    return_request_open(
        asset=laptop,
        member=leaver,
        actor=None,
        reminder_every_days=N,
        max_reminders=1,
        escalate_to=[],
    )
    member_deactivate(member=leaver, actor=None, reason="Left")
    leaver.refresh_from_db()

    assert leaver.assets_count == 1
    assert Member.objects.filter(member_holding_filter(), pk=leaver.pk).exists()
    assert list(leaver.assets_in_custody.all()) == [laptop]
    with pytest.raises(ValidationError, match="Check the asset in"):
        asset_update(asset=laptop, actor=None, status=Asset.Status.IN_REPAIR)

    asset_check_in(asset=laptop, actor=None, status=Asset.Status.AVAILABLE)
    laptop.refresh_from_db()
    leaver.refresh_from_db()
    assert (laptop.status, laptop.custodian, leaver.assets_count) == ("available", None, 0)
    counts = tally_values("assets")["assets"]
    assert (counts.get("return_requested"), counts.get("available")) == (0, 1)


def test_cancelling_puts_the_device_back_in_custody(leaver):
    laptop = make_asset(custodian=leaver)
    request = return_request_open(
        asset=laptop,
        member=leaver,
        actor=None,
        reminder_every_days=N,
        max_reminders=1,
        escalate_to=[],
    )

    return_request_close(request=request, reason="cancelled", actor=None)
    return_request_close(request=request, reason="cancelled", actor=None)  # already closed

    laptop.refresh_from_db()
    request.refresh_from_db()
    assert laptop.status == Asset.Status.IN_CUSTODY
    assert (request.closed_reason, request.next_reminder_at) == ("cancelled", None)
    assert returns_remind_due(now=days(10))["reminders"] == 0
    # A new request may follow the closed one.
    again = return_request_open(
        asset=laptop,
        member=leaver,
        actor=None,
        reminder_every_days=N,
        max_reminders=1,
        escalate_to=[],
    )
    assert again.pk != request.pk


def test_reactivating_the_member_cancels_their_returns(leaver):
    laptop, phone = make_asset(custodian=leaver), make_asset(custodian=leaver)
    return_requests_open(member=leaver, assets=[laptop, phone], actor=None, send=False)
    member_deactivate(member=leaver, actor=None, reason="Left")

    member_reactivate(member=leaver, actor=None)

    assert set(ReturnRequest.objects.values_list("closed_reason", flat=True)) == {
        "member_reactivated"
    }
    assert set(Asset.objects.values_list("status", flat=True)) == {"in_custody"}


def test_a_device_the_member_no_longer_holds_is_skipped_with_the_reason(leaver):
    other = make_member()
    theirs = make_asset(custodian=other, asset_tag="AT-OTHER")
    loose = make_asset(asset_tag="AT-LOOSE")
    opened = return_requests_open(member=leaver, assets=[theirs, loose], actor=None, send=False)

    assert [o.request for o in opened] == [None, None]
    assert "AT-OTHER is no longer in" in opened[0].note
    with pytest.raises(ValidationError, match="AT-LOOSE is no longer"):
        return_request_open(asset=loose, member=leaver, actor=None)
    assert not ReturnRequest.objects.exists()


def test_bad_settings_are_refused_with_what_is_wrong(leaver):
    laptop = make_asset(custodian=leaver)
    with pytest.raises(ValidationError) as error:
        return_requests_open(
            member=leaver,
            assets=[laptop],
            actor=None,
            reminder_every_days=0,
            max_reminders=99,
            escalate_to=["not-an-address"],
            escalate_to_role="Nobody",
            messages={"reminder.member": ("Hi {{ member.nmae }}", "{{ devices }}")},
        )
    messages = error.value.message_dict
    assert messages["reminder_every_days"] == ["Remind every 1 to 365 days."]
    assert messages["max_reminders"] == ["Send 0 to 50 reminders before escalating."]
    assert messages["escalate_to"] == ["“not-an-address” is not a valid email address."]
    assert messages["escalate_to_role"] == ["There is no role named “Nobody”."]
    assert "member.nmae" in messages["messages"][0]
    assert not ReturnRequest.objects.exists()
    laptop.refresh_from_db()
    assert laptop.status == Asset.Status.IN_CUSTODY


def test_custom_messages_replace_the_defaults(
    leaver, smtp_server, django_capture_on_commit_callbacks
):
    laptop = make_asset(custodian=leaver, asset_tag="AT-7")
    open_return(
        leaver,
        [laptop],
        send_now=django_capture_on_commit_callbacks,
        messages={
            "notice.member": ("Devices for {{ member.full_name }}", "Send back:\n{{ devices }}")
        },
    )
    to_member = next(m for m in smtp_server.messages if m.rcpt_tos == ["jordan@example.com"])
    assert to_member.header("Subject") == "Devices for Jordan Rivera"
    assert to_member.text.startswith("Send back:\nAT-7")


def test_the_schedule_runs_the_sweep_through_django_q(
    leaver, smtp_server, monkeypatch, settings, django_capture_on_commit_callbacks
):
    """The migration's schedule, run by django-q2's own scheduler (sync mode) with the clock
    moved past the first reminder."""
    from django_q.models import Schedule
    from django_q.scheduler import scheduler

    from automations.tests.engine_factories import use_sync_q

    use_sync_q(monkeypatch, settings)
    # A transactional test earlier in this process may have flushed the migration's row: the
    # migration calls this same function.
    returns.ensure_remind_schedule()
    schedule = Schedule.objects.get(name=returns.REMIND_SCHEDULE_NAME)
    assert (schedule.func, schedule.minutes) == ("assets.tasks.returns_remind_due_task", 15)
    laptop = make_asset(custodian=leaver)
    open_return(leaver, [laptop], send_now=django_capture_on_commit_callbacks)
    smtp_server.messages.clear()
    monkeypatch.setattr(returns, "clock", lambda: days(N + 0.1))
    Schedule.objects.filter(pk=schedule.pk).update(next_run=timezone.now() - timedelta(seconds=1))

    scheduler()

    assert len(sent(smtp_server, "reminder")) == 2
    assert ReturnRequest.objects.get().reminders_sent == 1


def test_a_returning_device_is_still_locked_by_its_custodians_offboarding(
    leaver, monkeypatch, settings, django_capture_on_commit_callbacks
):
    """The MDM lock of the offboarding targets it (custody is unchanged), it still counts as
    held, and checking it in afterwards works and closes the request."""
    from automations.models import ActionLog, Execution
    from automations.tests.engine_factories import (
        make_connection,
        make_device,
        make_engine_automation,
        mdm_commands,
        use_sync_q,
    )

    use_sync_q(monkeypatch, settings)
    mdm_commands(enabled=True)
    device = make_device(leaver, make_connection())
    return_request_open(asset=device, member=leaver, actor=None, escalate_to=[])
    make_engine_automation(mdm=True)

    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=leaver, actor=None, reason="Last day")

    (log,) = ActionLog.objects.filter(execution=Execution.objects.get(member=leaver))
    assert (log.asset_id, log.status) == (device.pk, ActionLog.Status.SUCCEEDED)
    device.refresh_from_db()
    leaver.refresh_from_db()
    assert device.lock_state == Asset.LockState.LOCKED
    assert (device.status, device.custodian_id) == (Asset.Status.RETURN_REQUESTED, leaver.pk)
    assert leaver.assets_count == 1

    asset_check_in(asset=device, actor=None)
    request = ReturnRequest.objects.get(asset=device)
    assert request.closed_reason == ReturnRequest.ClosedReason.CHECKED_IN
    device.refresh_from_db()
    assert device.status == Asset.Status.AVAILABLE


def test_one_reminder_per_recipient_lists_every_device_due_together(
    leaver, smtp_server, django_capture_on_commit_callbacks
):
    laptop = make_asset(custodian=leaver, asset_tag="AT-1")
    phone = make_asset(custodian=leaver, asset_tag="AT-2")
    open_return(leaver, [laptop, phone], send_now=django_capture_on_commit_callbacks)
    smtp_server.messages.clear()

    returns_remind_due(now=days(N))

    assert sorted(r for r, _ in sent(smtp_server)) == [
        "alex.chen@example.com",
        "jordan@example.com",
    ]
    for message in smtp_server.messages:
        assert "AT-1" in message.text and "AT-2" in message.text


def test_an_email_a_dead_worker_was_sending_is_sent_again_after_a_while(
    leaver, smtp_server, django_capture_on_commit_callbacks
):
    laptop = make_asset(custodian=leaver)
    open_return(leaver, [laptop], send_now=django_capture_on_commit_callbacks)
    returns_remind_due(now=days(N))
    key_of = {m.header("X-AssetSonar-Key"): m for m in smtp_server.messages}
    smtp_server.messages.clear()
    # A worker claimed the member's reminder, then died before recording the outcome.
    row = ReturnMail.objects.get(kind="reminder", recipient="member")
    ReturnMail.objects.filter(pk=row.pk).update(status="sending", claimed_at=days(N))

    returns_remind_due(now=days(N) + returns.STALE_CLAIM - timedelta(seconds=1))
    assert smtp_server.messages == []  # maybe still being sent: not yet
    returns_remind_due(now=days(N) + returns.STALE_CLAIM + timedelta(seconds=1))

    (again,) = smtp_server.messages
    assert again.header("X-AssetSonar-Key") == row.key
    assert again.header("Message-ID") == key_of[row.key].header("Message-ID")
    row.refresh_from_db()
    assert row.status == ReturnMail.Status.SENT


def test_the_asset_list_counts_a_returning_device_as_in_custody(leaver, manager_client):
    from django.urls import reverse

    from assetsonar.tallies import tallies_recount

    returning, kept = make_asset(custodian=leaver), make_asset(custodian=leaver)
    make_asset()
    return_request_open(asset=returning, member=leaver, actor=None)

    def tags(status):
        response = manager_client.get(reverse("assets:list"), {"status": status})
        return {a.asset_tag for a in response.context["page_obj"]}

    assert tags("in_custody") == {returning.asset_tag, kept.asset_tag}
    assert tags("return_requested") == {returning.asset_tag}
    assert set(tallies_recount(fix=False).values()) == {0}


def test_the_member_is_written_to_at_their_personal_email_when_recorded(
    leaver, smtp_server, django_capture_on_commit_callbacks
):
    leaver.personal_email = "jordan.home@example.net"
    leaver.save(update_fields=["personal_email"])
    laptop = make_asset(custodian=leaver)

    open_return(leaver, [laptop], send_now=django_capture_on_commit_callbacks)

    assert sorted(r for r, _ in sent(smtp_server)) == [
        "alex.chen@example.com",
        "jordan.home@example.net",
    ]
