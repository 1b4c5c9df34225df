"""Issue 10's "done when", end to end on the real services and engine (django-q2 in sync mode, the
clock passed as `now`): a member with a last working day three days ahead is in Upcoming
offboardings and the deactivate dialog with what will happen; on the day the automation locks the
laptop at 18:00 their time with nobody clicking; the revocation delayed by a week runs a week
later, and not at all for a member reactivated before it."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from automations import lastday
from automations.engine.scheduled import scheduled_run
from automations.models import ActionLog, Execution
from automations.tests.delay_factories import delayed
from automations.tests.engine_factories import (
    locked_assets,
    make_connection,
    make_device,
    make_engine_automation,
    mdm_commands,
    use_sync_q,
)
from conftest import make_entitlement, make_license, make_member
from licenses.models import Entitlement, License
from members import services as member_services
from members.selectors import company_time_zone, company_today

pytestmark = pytest.mark.django_db

ZONE = "Europe/Berlin"


@pytest.fixture
def setup(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)
    mdm_commands(enabled=True)
    automation = make_engine_automation(
        name="Leaver on the day",
        trigger_event=lastday.KEY,
        trigger_options={"offset_days": 0, "at": "18:00"},
        user_based=True,
        mdm=True,
    )
    delayed(automation, "revoke_licenses", timedelta(days=7))
    day = company_today(company_time_zone()) + timedelta(days=3)
    connection = make_connection()

    def leaver(name: str):
        member = make_member(full_name=name, last_working_day=day, time_zone=ZONE)
        make_device(member, connection)
        make_entitlement(license=make_license(kind=License.Kind.USER), member=member)
        return member

    return automation, day, leaver


def test_done_when(setup, manager_client, django_capture_on_commit_callbacks):
    automation, day, leaver = setup
    lena, rory = leaver("Lena Leaver"), leaver("Rory Returner")
    due = lastday.due_at(day, ZONE, automation.trigger_options)
    local = f"{due.astimezone(ZoneInfo(ZONE)):%-d %b} 18:00 {ZONE}"

    # Three days ahead: in Upcoming offboardings, and the dialog says what and when.
    upcoming = manager_client.get(reverse("members:upcoming")).text
    assert "Lena Leaver" in upcoming and "Leaver on the day" in upcoming
    dialog = manager_client.get(reverse("members:deactivate", args=[lena.pk])).text
    assert f"on their last working day, at 18:00 their time: {local}" in dialog
    assert "after 7 days" in dialog  # the delayed revocation

    # A minute before 18:00 their time nothing happens; at 18:00 the laptop is locked.
    with django_capture_on_commit_callbacks(execute=True):
        assert lastday.last_day_fire_due(now=due - timedelta(minutes=1)) == 0
        assert lastday.last_day_fire_due(now=due) == 2
    for member in (lena, rory):
        execution = Execution.objects.get(member=member, automation=automation)
        assert execution.status == Execution.Status.SCHEDULED
        assert len(locked_assets(member)) == 1
        assert Entitlement.objects.live().filter(member=member).exists()  # not yet

    # Rory stays after all: deactivated at the end of the day, then reactivated.
    member_services.member_deactivate(member=rory, actor=None, reason="Last day")
    member_services.member_reactivate(member=rory, actor=None)

    # A week later the revocation runs for Lena, once; Rory's was cancelled.
    (lena_log,) = ActionLog.objects.filter(execution__member=lena, status="scheduled")
    assert lena_log.due_at == due + timedelta(days=7)
    assert scheduled_run(
        log_id=lena_log.pk, now=due + timedelta(days=7) - timedelta(seconds=1)
    ) == ("not due")
    assert scheduled_run(log_id=lena_log.pk, now=due + timedelta(days=7)) == "ran"
    assert scheduled_run(log_id=lena_log.pk, now=due + timedelta(days=7, minutes=1)) == (
        "done before"
    )
    assert not Entitlement.objects.live().filter(member=lena).exists()
    assert Execution.objects.get(member=lena).status == Execution.Status.SUCCEEDED
    rory_log = ActionLog.objects.get(execution__member=rory, target_type="schedule")
    assert rory_log.status == ActionLog.Status.CANCELLED
    assert Entitlement.objects.live().filter(member=rory).exists()
