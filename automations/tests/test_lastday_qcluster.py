"""The "Member's last working day" trigger with a real `manage.py qcluster` (the helpers of
test_qcluster.py): its every-minute django-q2 schedule fires the automation at the member's local
time with nobody clicking, the webhook reaches a real receiver on 127.0.0.1 once, and a second
cluster start fires nothing again."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from django_q.models import Schedule

from automations import lastday
from automations.models import Automation, Event, Execution
from automations.tests.engine_factories import make_engine_automation
from automations.tests.servers import WebhookReceiver
from automations.tests.test_qcluster import qcluster, wait_until
from conftest import make_member

pytestmark = pytest.mark.django_db(transaction=True)

ZONE = "Pacific/Auckland"  # far from the machine's UTC: the local time must be the member's


def test_a_real_cluster_fires_it_at_the_members_local_time(tmp_path):
    # The wall time of the last minute in the member's zone: due, and after the automation.
    local = (timezone.now() - timedelta(minutes=1)).astimezone(ZoneInfo(ZONE))
    with WebhookReceiver() as receiver:
        automation = make_engine_automation(
            webhook_url=receiver.url(),
            trigger_event=lastday.KEY,
            trigger_options={"offset_days": -1, "at": f"{local:%H:%M}"},
        )
        Automation.objects.filter(pk=automation.pk).update(
            created_at=timezone.now() - timedelta(hours=1)
        )
        automation.refresh_from_db()
        member = make_member(
            full_name="Tama Leaver",
            last_working_day=local.date() + timedelta(days=1),
            time_zone=ZONE,
        )
        # The schedule as migration 0014 creates it (a transactional test starts without it).
        lastday.ensure_last_day_schedule()
        Schedule.objects.filter(name=lastday.LAST_DAY_SCHEDULE_NAME).update(next_run=timezone.now())
        log_file = tmp_path / "qcluster.log"

        with qcluster(log_file):
            (request,) = receiver.wait_for(1, timeout=120)
            execution = wait_until(
                lambda: Execution.objects.filter(status=Execution.Status.SUCCEEDED).first(),
                log_file,
                "the execution settled",
            )
            time.sleep(2)
        # A second cluster (a restart) runs the schedule again: the key says it fired.
        Schedule.objects.filter(name=lastday.LAST_DAY_SCHEDULE_NAME).update(next_run=timezone.now())
        with qcluster(log_file):
            wait_until(
                lambda: (
                    Schedule.objects.get(name=lastday.LAST_DAY_SCHEDULE_NAME).next_run
                    > timezone.now()
                ),
                log_file,
                "the schedule ran again",
            )
            time.sleep(3)

        assert len(receiver.requests) == 1
    assert json.loads(request.body)["type"] == "member.last_working_day"
    (event,) = Event.objects.filter(member=member)
    assert event.automation_id == automation.pk
    assert execution.event_id == event.pk
    assert event.member_snapshot["trigger"]["time_zone"] == ZONE
    assert event.occurred_at == lastday.due_at(
        member.last_working_day, ZONE, automation.trigger_options
    )
    # Due within the last two minutes when the cluster started: fired within a few minutes.
    fired = datetime.fromisoformat(event.member_snapshot["trigger"]["fired_at"])
    assert timedelta(0) <= fired - event.occurred_at < timedelta(minutes=4)
