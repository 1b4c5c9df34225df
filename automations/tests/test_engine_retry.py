""" "Retry failed actions": only failed actions run again, with a fresh attempt budget and the
same webhook-id; what succeeded is not repeated; a dead-lettered execution is completed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from assets.models import MDMCommand
from automations import tasks
from automations.engine.retry import execution_retry_failed
from automations.models import ActionLog, Event, Execution
from automations.tests.engine_factories import (
    fast_retries,
    make_connection,
    make_device,
    make_engine_automation,
    mdm_commands,
    run_due_schedules,
    use_sync_q,
)
from automations.tests.servers import WebhookReceiver
from conftest import make_entitlement, make_license, make_member
from licenses.models import Entitlement
from members.services import member_deactivate

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def sync_q(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)
    fast_retries(settings, attempts=2)
    mdm_commands(enabled=True)


@pytest.fixture
def receiver():
    with WebhookReceiver() as hook:
        yield hook


def test_retry_runs_only_the_failed_actions(
    receiver, it_manager, django_capture_on_commit_callbacks
):
    receiver.answer(503, times=2)
    member = make_member()
    make_entitlement(license=make_license(), member=member)
    make_device(member, make_connection())
    make_engine_automation(webhook_url=receiver.url(), user_based=True, mdm=True)
    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=member, actor=None, reason="Last day")
    run_due_schedules()
    execution = Execution.objects.get()
    assert execution.status == Execution.Status.PARTIALLY_FAILED
    webhook_log = execution.logs.get(action_kind="webhook")
    assert (webhook_log.status, webhook_log.attempts) == (ActionLog.Status.FAILED, 2)

    with django_capture_on_commit_callbacks(execute=True):
        assert execution_retry_failed(execution=execution, actor=it_manager) == 1

    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED
    webhook_log.refresh_from_db()
    assert (webhook_log.status, webhook_log.attempts) == (ActionLog.Status.SUCCEEDED, 3)
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    assert MDMCommand.objects.count() == 1
    assert execution.logs.filter(action_kind="mdm_lock").get().attempts == 1
    assert Entitlement.objects.live().count() == 0


def test_a_retried_action_gets_a_fresh_budget(receiver, django_capture_on_commit_callbacks):
    receiver.answer(503, times=10)
    make_engine_automation(webhook_url=receiver.url())
    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=make_member(), actor=None, reason="Last day")
    run_due_schedules()
    execution = Execution.objects.get()
    assert execution.status == Execution.Status.FAILED

    with django_capture_on_commit_callbacks(execute=True):
        execution_retry_failed(execution=execution, actor=None)
    run_due_schedules()

    log = execution.logs.get()
    assert (log.status, log.attempts) == (ActionLog.Status.FAILED, 4)
    assert log.insight.startswith("Webhook endpoint answered 503 on 2 attempts")
    assert [a.number for a in log.webhook_attempts.all()] == [1, 2, 3, 4]


def test_only_failed_executions_can_be_retried(receiver, django_capture_on_commit_callbacks):
    make_engine_automation(webhook_url=receiver.url())
    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=make_member(), actor=None, reason="Last day")
    with pytest.raises(ValidationError):
        execution_retry_failed(execution=Execution.objects.get(), actor=None)


def test_retry_completes_a_dead_lettered_execution(receiver, django_capture_on_commit_callbacks):
    member = make_member()
    make_entitlement(license=make_license(), member=member)
    make_device(member, make_connection())
    make_engine_automation(webhook_url=receiver.url(), user_based=True, mdm=True)
    with django_capture_on_commit_callbacks():
        member_deactivate(member=member, actor=None, reason="Last day")
    Event.objects.update(
        status=Event.Status.PROCESSING,
        attempts=Event.MAX_ATTEMPTS,
        last_dispatched_at=timezone.now() - timedelta(hours=1),
    )
    tasks.process_event(str(Event.objects.get().pk))
    execution = Execution.objects.get()
    assert execution.status == Execution.Status.FAILED
    assert not execution.logs.exists()  # it died before claiming anything

    with django_capture_on_commit_callbacks(execute=True):
        execution_retry_failed(execution=execution, actor=None)

    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED
    assert execution.logs.count() == 3
    assert len(receiver.requests) == 1
    assert Event.objects.get().status == Event.Status.DEAD
