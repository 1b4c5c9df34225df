"""Two runs of one due scheduled action at the same moment (two schedules, or a schedule and the
sweeper), in two threads with their own database connections: one claims it, the other finds
it claimed, and the side effect happens once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection

from automations.engine.scheduled import scheduled_run
from automations.models import ActionLog, Execution
from automations.tests.delay_factories import delayed_webhook_automation, scheduled_log
from automations.tests.engine_factories import fast_retries, use_sync_q
from automations.tests.servers import WebhookReceiver
from conftest import make_member
from members.services import member_deactivate

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def sync_q(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)
    fast_retries(settings)


def test_two_runs_of_the_due_task_act_once():
    with WebhookReceiver() as receiver:
        delayed_webhook_automation(receiver.url(), timedelta(days=7))
        member = make_member(full_name="Rae Race")
        member_deactivate(member=member, actor=None, reason="Last day")
        execution = Execution.objects.get(member=member)
        log = scheduled_log(execution)
        due = log.due_at + timedelta(seconds=1)
        start = threading.Barrier(2)
        outcomes: list[str] = []

        def run() -> None:
            try:
                start.wait(timeout=10)
                outcomes.append(scheduled_run(log_id=log.pk, now=due))
            finally:
                connection.close()

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert sorted(outcomes) == ["done before", "ran"]
        assert len(receiver.requests) == 1
        assert execution.logs.filter(target_type="webhook").count() == 1
        log.refresh_from_db()
        assert log.status == ActionLog.Status.SUCCEEDED
