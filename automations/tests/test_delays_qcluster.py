"""Delayed actions with a real `manage.py qcluster` (the helpers of test_qcluster.py): a delayed
webhook to a real receiver on 127.0.0.1 fires after its delay through django-q2's scheduler; and
with the workers stopped over its due time, it fires once when they are back, and its log says
how late."""

from __future__ import annotations

import signal
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from automations.models import ActionLog, Execution
from automations.tests.delay_factories import delayed_webhook_automation
from automations.tests.servers import WebhookReceiver
from automations.tests.test_qcluster import qcluster, stop, wait_until
from conftest import make_entitlement, make_license, make_member
from licenses.models import License
from members.services import member_deactivate

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver():
    with WebhookReceiver() as hook:
        yield hook


@pytest.fixture
def leaver():
    member = make_member(full_name="Quinn Cluster")
    make_entitlement(license=make_license(kind=License.Kind.USER), member=member)
    return member


def scheduled():
    return ActionLog.objects.filter(target_type=ActionLog.TargetType.SCHEDULE).first()


def test_a_real_cluster_fires_a_delayed_webhook_after_its_delay(receiver, leaver, tmp_path):
    delayed_webhook_automation(receiver.url(), timedelta(seconds=5))
    log_file = tmp_path / "qcluster.log"

    with qcluster(log_file):
        member_deactivate(member=leaver, actor=None, reason="Last day")
        log = wait_until(scheduled, log_file, "the scheduled log")
        wait_until(
            lambda: Execution.objects.filter(status=Execution.Status.SCHEDULED).exists(),
            log_file,
            "the execution waiting for its delayed action",
        )
        assert receiver.requests == []  # not before its time
        (request,) = receiver.wait_for(1, timeout=90)
        sent_at = timezone.now()
        execution = wait_until(
            lambda: Execution.objects.filter(status=Execution.Status.SUCCEEDED).first(),
            log_file,
            "the execution settled",
        )

    assert request.headers["webhook-id"]
    assert sent_at >= log.due_at
    log.refresh_from_db()
    assert log.status == ActionLog.Status.SUCCEEDED
    assert log.insight.startswith("Ran at ")
    assert execution.logs.get(target_type="webhook").status == ActionLog.Status.SUCCEEDED
    time.sleep(1)
    assert len(receiver.requests) == 1


def test_workers_down_over_the_due_time_it_runs_once_when_they_return(receiver, leaver, tmp_path):
    delayed_webhook_automation(receiver.url(), timedelta(seconds=6))
    log_file = tmp_path / "qcluster.log"

    with qcluster(log_file) as first:
        member_deactivate(member=leaver, actor=None, reason="Last day")
        log = wait_until(scheduled, log_file, "the scheduled log")
        wait_until(
            lambda: Execution.objects.filter(status=Execution.Status.SCHEDULED).exists(),
            log_file,
            "the execution waiting for its delayed action",
        )
        stop(first, signal.SIGKILL)

    # The workers stay down over the due time, and 20 s past it.
    while timezone.now() < log.due_at + timedelta(seconds=20):
        time.sleep(0.5)
    assert receiver.requests == []
    log.refresh_from_db()
    assert log.status == ActionLog.Status.SCHEDULED
    restarted_at = timezone.now()

    with qcluster(log_file):
        receiver.wait_for(1, timeout=90)
        wait_until(
            lambda: Execution.objects.filter(status=Execution.Status.SUCCEEDED).exists(),
            log_file,
            "the execution settled after the restart",
        )
        time.sleep(2)  # a second schedule or sweep would have sent it again by now

    assert len(receiver.requests) == 1
    log.refresh_from_db()
    late = timedelta(seconds=log.detail["late_seconds"])
    assert late >= timedelta(seconds=20)
    assert " late (it was due " in log.insight
    # The measured figure for the report (pytest -s shows it).
    print(  # noqa: T201
        f"\nDELAY-LATENESS: due {log.due_at:%H:%M:%S}, workers back {restarted_at:%H:%M:%S}, "
        f"ran {late.total_seconds():.0f} s late; insight: {log.insight}"
    )
