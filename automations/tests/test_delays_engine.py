"""Delayed actions through the real engine (engine/scheduled.py): logged as scheduled with their
due time and a django-q2 Schedule ONCE, run by the task when due (a clock the tests pass in, and
django-q2's own scheduler), once, saying how late; the sweeper runs one whose schedule was lost;
reactivating the member cancels; "stop if this fails" holds and skips the actions after it."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from assetsonar.models import AuditEvent
from automations.engine.common import log_key
from automations.engine.events import events_sweep
from automations.engine.scheduled import TASK, schedule_name, scheduled_run
from automations.models import Action, ActionLog, Event, Execution
from automations.tasks import run_scheduled_action
from automations.tests.delay_factories import (
    add_webhook,
    delayed,
    delayed_webhook_automation,
    scheduled_log,
)
from automations.tests.engine_factories import fast_retries, make_engine_automation, use_sync_q
from automations.tests.servers import WebhookReceiver
from automations.triggers import MEMBER_REACTIVATED
from conftest import make_entitlement, make_license, make_member
from licenses.models import Entitlement, License
from members.services import member_deactivate, member_reactivate

pytestmark = pytest.mark.django_db

WEEK = timedelta(days=7)


@pytest.fixture(autouse=True)
def sync_q(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)
    fast_retries(settings)


@pytest.fixture
def receiver():
    with WebhookReceiver() as hook:
        yield hook


@pytest.fixture
def leaver(db):
    member = make_member(full_name="Dana Delay")
    make_entitlement(license=make_license(kind=License.Kind.USER), member=member)
    return member


@pytest.fixture
def deactivate(django_capture_on_commit_callbacks):
    def run(member):
        with django_capture_on_commit_callbacks(execute=True):
            member_deactivate(member=member, actor=None, reason="Last day")
        return Execution.objects.filter(member=member).latest("pk")

    return run


def test_a_delayed_action_is_scheduled_with_its_due_time_not_performed(
    receiver, leaver, deactivate
):
    automation = delayed_webhook_automation(receiver.url(), WEEK)

    execution = deactivate(leaver)

    # The immediate action ran; the delayed one is only scheduled.
    assert Entitlement.objects.live().filter(member=leaver).count() == 0
    assert receiver.requests == []
    log = scheduled_log(execution)
    event = execution.event
    action = automation.actions.get(kind="webhook")
    assert log.status == ActionLog.Status.SCHEDULED
    assert log.due_at == event.occurred_at + WEEK
    assert log.key == log_key(event.pk, automation.pk, action.pk, "scheduled")
    assert log.insight.startswith("Scheduled for ") and log.insight.endswith(
        ", 7 days after the trigger."
    )
    assert not execution.logs.filter(action_kind="webhook").exclude(pk=log.pk).exists()
    schedule = Schedule.objects.get(name=schedule_name(log.pk))
    assert (schedule.func, schedule.schedule_type, schedule.next_run) == (
        TASK,
        Schedule.ONCE,
        log.due_at,
    )
    assert schedule.args == repr((log.pk,))
    # Not succeeded yet: scheduled, saying when.
    execution.refresh_from_db()
    assert execution.status == Execution.Status.SCHEDULED
    assert execution.insight.startswith("1 action scheduled for ")
    assert not execution.is_finished


def test_the_task_before_the_due_time_does_nothing(receiver, leaver, deactivate):
    delayed_webhook_automation(receiver.url(), WEEK)
    log = scheduled_log(deactivate(leaver))

    assert scheduled_run(log_id=log.pk, now=log.due_at - timedelta(minutes=1)) == "not due"

    log.refresh_from_db()
    assert log.status == ActionLog.Status.SCHEDULED
    assert receiver.requests == []


def test_at_the_due_time_it_runs_once_and_the_execution_settles(receiver, leaver, deactivate):
    delayed_webhook_automation(receiver.url(), WEEK)
    execution = deactivate(leaver)
    log = scheduled_log(execution)

    assert scheduled_run(log_id=log.pk, now=log.due_at + timedelta(seconds=20)) == "ran"
    # Sent again (a second schedule, the sweeper): nothing more happens.
    assert scheduled_run(log_id=log.pk, now=log.due_at + timedelta(minutes=5)) == "done before"

    assert len(receiver.requests) == 1
    log.refresh_from_db()
    assert log.status == ActionLog.Status.SUCCEEDED
    assert log.insight.startswith("Ran at ") and log.insight.endswith(", on time.")
    assert log.detail["late_seconds"] == 20
    delivery = execution.logs.get(action_kind="webhook", target_type="webhook")
    assert delivery.status == ActionLog.Status.SUCCEEDED
    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED


def test_run_late_it_says_how_late(receiver, leaver, deactivate):
    delayed_webhook_automation(receiver.url(), WEEK)
    log = scheduled_log(deactivate(leaver))

    assert scheduled_run(log_id=log.pk, now=log.due_at + timedelta(minutes=42)) == "ran"

    log.refresh_from_db()
    assert ", 42 minutes late (it was due " in log.insight
    assert log.detail["late_seconds"] == 42 * 60
    assert len(receiver.requests) == 1


def test_django_q_scheduler_runs_the_schedule_when_it_is_due(receiver, leaver, deactivate):
    """django-q2's own scheduler (what the cluster calls every 30 s) picks the Schedule ONCE up
    once its time came; in sync mode the task runs at once."""
    from django_q.scheduler import scheduler

    delayed_webhook_automation(receiver.url(), timedelta(seconds=1))
    execution = deactivate(leaver)
    log = scheduled_log(execution)
    scheduler()  # not due yet
    assert receiver.requests == []

    time.sleep(max(0.0, (log.due_at - timezone.now()).total_seconds()) + 0.1)
    scheduler()

    assert len(receiver.requests) == 1
    assert not Schedule.objects.filter(name=schedule_name(log.pk)).exists()  # ONCE: deleted
    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED


def test_the_sweeper_runs_a_scheduled_action_whose_schedule_was_lost(receiver, leaver, deactivate):
    delayed_webhook_automation(receiver.url(), timedelta(seconds=1))
    execution = deactivate(leaver)
    log = scheduled_log(execution)
    Schedule.objects.filter(name=schedule_name(log.pk)).delete()
    time.sleep(max(0.0, (log.due_at - timezone.now()).total_seconds()) + 0.1)

    # Within the grace the schedule may still come: left alone.
    assert events_sweep(now=log.due_at + timedelta(seconds=30))["actions"] == 0
    assert events_sweep(now=log.due_at + timedelta(minutes=3))["actions"] == 1

    assert len(receiver.requests) == 1
    log.refresh_from_db()
    assert log.status == ActionLog.Status.SUCCEEDED
    # The next sweep finds nothing to send.
    assert events_sweep(now=log.due_at + timedelta(minutes=4))["actions"] == 0


def test_the_task_entry_point_runs_it(receiver, leaver, deactivate):
    delayed_webhook_automation(receiver.url(), timedelta(seconds=1))
    log = scheduled_log(deactivate(leaver))
    time.sleep(max(0.0, (log.due_at - timezone.now()).total_seconds()) + 0.1)

    assert run_scheduled_action(log.pk) == "ran"
    assert run_scheduled_action(log.pk) == "done before"
    assert len(receiver.requests) == 1


def test_reactivating_the_member_cancels_what_is_scheduled(
    receiver, leaver, deactivate, django_capture_on_commit_callbacks
):
    delayed_webhook_automation(receiver.url(), WEEK)
    execution = deactivate(leaver)
    log = scheduled_log(execution)

    with django_capture_on_commit_callbacks(execute=True):
        member_reactivate(member=leaver, actor=None)

    log.refresh_from_db()
    assert log.status == ActionLog.Status.CANCELLED
    assert log.insight.startswith("Member was reactivated on ")
    assert log.insight.endswith(", before this action was due.")
    assert not Schedule.objects.filter(name=schedule_name(log.pk)).exists()
    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED
    assert execution.insight.startswith("1 scheduled action was cancelled (“Trigger webhook”)")
    assert AuditEvent.objects.filter(
        actor_name="Automations", message__contains="cancelled: the member was reactivated"
    ).exists()
    # Its time comes: nothing is sent.
    assert scheduled_run(log_id=log.pk, now=log.due_at + timedelta(minutes=1)) == "done before"
    assert receiver.requests == []


def test_a_reactivation_automation_s_own_delayed_actions_are_not_cancelled_by_it(
    receiver, leaver, django_capture_on_commit_callbacks
):
    delayed_webhook_automation(receiver.url(), WEEK, trigger_event=MEMBER_REACTIVATED)
    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=leaver, actor=None, reason="Last day")

    with django_capture_on_commit_callbacks(execute=True):
        member_reactivate(member=leaver, actor=None)

    execution = Execution.objects.get(member=leaver, event__kind=MEMBER_REACTIVATED)
    assert scheduled_log(execution).status == ActionLog.Status.SCHEDULED


def test_a_reactivation_the_hook_missed_cancels_at_the_due_time(receiver, leaver, deactivate):
    delayed_webhook_automation(receiver.url(), WEEK)
    log = scheduled_log(deactivate(leaver))
    # As if the member had been reactivated by a path that sent no signal.
    Event.objects.create(
        kind=MEMBER_REACTIVATED, member=leaver, occurred_at=timezone.now(), member_snapshot={}
    )

    assert scheduled_run(log_id=log.pk, now=log.due_at + timedelta(minutes=1)) == "cancelled"

    log.refresh_from_db()
    assert log.status == ActionLog.Status.CANCELLED
    assert log.insight.startswith("Member was reactivated on ")
    assert receiver.requests == []


def test_an_action_removed_before_its_time_is_skipped(receiver, leaver, deactivate):
    automation = delayed_webhook_automation(receiver.url(), WEEK)
    execution = deactivate(leaver)
    log = scheduled_log(execution)
    automation.actions.filter(kind="webhook").delete()

    assert scheduled_run(log_id=log.pk, now=log.due_at + timedelta(minutes=1)) == "removed"

    log.refresh_from_db()
    assert log.status == ActionLog.Status.SKIPPED
    assert "removed from the automation" in log.insight
    assert receiver.requests == []


def test_targets_are_computed_at_the_due_time_from_the_event(leaver, deactivate):
    """A delayed revoke: the member's licenses at the due time (a new one given in the
    meantime is revoked too), the member as recorded at the event."""
    automation = make_engine_automation(user_based=True)
    delayed(automation, "revoke_licenses", WEEK)
    execution = deactivate(leaver)
    assert Entitlement.objects.live().filter(member=leaver).count() == 1  # not yet
    make_entitlement(license=make_license(kind=License.Kind.USER), member=leaver)
    log = scheduled_log(execution, "revoke_licenses")

    assert scheduled_run(log_id=log.pk, now=log.due_at + timedelta(seconds=5)) == "ran"

    assert Entitlement.objects.live().filter(member=leaver).count() == 0
    revoked = execution.logs.filter(action_kind="revoke_licenses", target_type="entitlement")
    assert revoked.count() == 2
    assert set(revoked.values_list("status", flat=True)) == {ActionLog.Status.SUCCEEDED}


def test_a_delayed_stop_on_error_action_holds_the_actions_after_it_until_it_ran(
    receiver, leaver, deactivate, django_capture_on_commit_callbacks
):
    automation = make_engine_automation()
    first = add_webhook(
        automation, receiver.url("/first"), position=0, continue_on_error=False, delay=WEEK
    )
    add_webhook(automation, receiver.url("/second"), position=1)
    execution = deactivate(leaver)

    held = execution.logs.get(action__position=1)
    assert held.status == ActionLog.Status.PENDING
    assert held.detail["held_by"] == first.pk
    execution.refresh_from_db()
    assert execution.status == Execution.Status.SCHEDULED
    assert receiver.requests == []

    log = scheduled_log(execution)
    with django_capture_on_commit_callbacks(execute=True):
        assert scheduled_run(log_id=log.pk, now=log.due_at + timedelta(seconds=5)) == "ran"

    # It finished well: the held webhook was released and sent (a task, run in sync mode).
    assert [r.path for r in receiver.requests] == ["/first", "/second"]
    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED


def test_a_delayed_stop_on_error_action_that_fails_skips_the_actions_after_it(
    receiver, leaver, deactivate
):
    automation = make_engine_automation()
    add_webhook(automation, receiver.url("/first"), position=0, continue_on_error=False, delay=WEEK)
    add_webhook(automation, receiver.url("/second"), position=1)
    execution = deactivate(leaver)
    receiver.answer(400)  # not retried

    log = scheduled_log(execution)
    assert scheduled_run(log_id=log.pk, now=log.due_at + timedelta(seconds=5)) == "ran"

    held = execution.logs.get(action__position=1)
    assert held.status == ActionLog.Status.SKIPPED
    assert held.insight.startswith("Not run: “Trigger webhook” (action 1) failed")
    assert [r.path for r in receiver.requests] == ["/first"]
    execution.refresh_from_db()
    assert execution.status == Execution.Status.FAILED


def test_a_delayed_action_after_a_failed_stop_on_error_action_is_skipped_not_scheduled(
    receiver, leaver, deactivate
):
    automation = make_engine_automation(user_based=True)
    add_webhook(automation, receiver.url("/gate"), position=0, continue_on_error=False)
    Action.objects.filter(automation=automation, kind="revoke_licenses").update(position=1)
    delayed(automation, "revoke_licenses", WEEK)
    receiver.answer(400)

    execution = deactivate(leaver)

    later = execution.logs.get(action_kind="revoke_licenses")
    assert later.status == ActionLog.Status.SKIPPED
    assert later.insight.startswith("Not run: “Trigger webhook” (action 1) failed")
    assert not execution.logs.filter(target_type=ActionLog.TargetType.SCHEDULE).exists()
    assert not Schedule.objects.filter(func=TASK).exists()
    assert Entitlement.objects.live().filter(member=leaver).count() == 1


def test_a_delayed_action_does_not_hold_the_immediate_ones_after_it(receiver, leaver, deactivate):
    """Delays count from the trigger: an immediate action after a delayed one runs now."""
    automation = make_engine_automation(user_based=True)
    add_webhook(automation, receiver.url("/later"), position=0, delay=WEEK)
    Action.objects.filter(automation=automation, kind="revoke_licenses").update(position=1)

    execution = deactivate(leaver)

    assert Entitlement.objects.live().filter(member=leaver).count() == 0
    assert receiver.requests == []
    assert scheduled_log(execution).status == ActionLog.Status.SCHEDULED


def test_running_the_event_again_schedules_nothing_twice(receiver, leaver, deactivate):
    from automations.engine.runner import execution_resume

    delayed_webhook_automation(receiver.url(), WEEK)
    execution = deactivate(leaver)

    execution_resume(execution_id=execution.pk)

    assert execution.logs.filter(target_type=ActionLog.TargetType.SCHEDULE).count() == 1
    assert Schedule.objects.filter(func=TASK).count() == 1
    execution.refresh_from_db()
    assert execution.status == Execution.Status.SCHEDULED


def test_it_runs_with_the_action_settings_at_its_time_even_if_switched_off_since(
    receiver, leaver, deactivate
):
    automation = delayed_webhook_automation(receiver.url("/old"), WEEK)
    log = scheduled_log(deactivate(leaver))
    Action.objects.filter(automation=automation, kind="webhook").update(
        config={"url": receiver.url("/new"), "method": "POST"}
    )
    automation.enabled = False
    automation.save(update_fields=["enabled"])

    assert scheduled_run(log_id=log.pk, now=log.due_at + timedelta(seconds=5)) == "ran"

    assert [r.path for r in receiver.requests] == ["/new"]
