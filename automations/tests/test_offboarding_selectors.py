"""automations/selectors_offboarding.py on its own: its last-working-day steps agree with the
trigger's own plan (lastday.last_day_plan: due time, local time, fired, execution), a delay is
counted in real hours across a daylight-saving change, what did not fire says why, and the
query count does not grow with members or automations."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from automations import lastday
from automations.models import Action, Automation
from automations.selectors_offboarding import DAY_END, DEACTIVATION, LAST_DAY, offboarding_plans
from automations.tests.builder_factories import make_automation
from automations.tests.engine_factories import use_sync_q
from conftest import make_member
from members.models import Member

pytestmark = pytest.mark.django_db

COMPANY = "Europe/Berlin"


@pytest.fixture(autouse=True)
def sync_q(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)


def last_day_automation(name: str, offset_days: int, at: str, **fields) -> Automation:
    automation = make_automation(name=name, trigger_event=lastday.KEY, **fields)
    Automation.objects.filter(pk=automation.pk).update(
        trigger_options={"offset_days": offset_days, "at": at},
        created_at=timezone.now() - timedelta(days=30),
    )
    automation.refresh_from_db()
    return automation


def test_the_last_day_steps_agree_with_the_triggers_own_plan(django_capture_on_commit_callbacks):
    last_day_automation("Two days before", -2, "09:00")
    last_day_automation("On the day", 0, "18:00")
    last_day_automation("Sales only", 0, "10:00", conditions=[("department", "is", "Sales")])
    today = timezone.localdate()
    members = [
        make_member(last_working_day=today + timedelta(days=1), time_zone="America/Chicago"),
        make_member(last_working_day=today + timedelta(days=9), time_zone=""),
        make_member(last_working_day=today + timedelta(days=4), time_zone="Australia/Sydney"),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        assert lastday.last_day_fire_due(now=timezone.now()) >= 1
    members = list(Member.objects.filter(pk__in=[m.pk for m in members]))

    expected = lastday.last_day_plan(members, company=COMPANY)
    plans = offboarding_plans(members, company_zone=COMPANY)

    for member in members:
        ours = [
            (s.automation.pk, s.at, s.local, s.execution_id, s.done)
            for s in plans[member.pk]
            if s.kind == LAST_DAY
        ]
        theirs = [
            (f.automation.pk, f.due, f.local, f.execution.pk if f.execution else None, f.fired)
            for f in expected[member.pk]
        ]
        assert ours == theirs
    assert any(s.done for m in members for s in plans[m.pk] if s.kind == LAST_DAY)


def test_a_delay_counts_real_hours_across_the_autumn_change():
    # Berlin leaves summer time on 25 Oct 2026: 7 days after 23:59 on 21 Oct are 22:59 local
    # on 28 Oct (168 hours), as the engine adds the delay to the event's time.
    offboard = make_automation(name="Offboard")
    Action.objects.filter(automation=offboard).update(delay=timedelta(days=7))
    member = make_member(last_working_day=date(2026, 10, 21), time_zone="Europe/Berlin")

    steps = offboarding_plans(
        [member], company_zone=COMPANY, now=datetime(2026, 10, 1, tzinfo=UTC)
    )[member.pk]

    end, run = steps
    assert (end.kind, end.time, end.day) == (DAY_END, "23:59", "Wed 21 Oct 2026")
    assert run.kind == DEACTIVATION
    (action,) = run.actions
    assert action.at - end.at == timedelta(hours=168)
    assert action.when == "28 Oct 22:59 Europe/Berlin"


def test_a_trigger_due_before_the_automation_existed_says_it_did_not_fire():
    automation = make_automation(name="New", trigger_event=lastday.KEY, conditions=[])
    Automation.objects.filter(pk=automation.pk).update(
        trigger_options={"offset_days": -3, "at": "09:00"}
    )
    member = make_member(last_working_day=timezone.localdate() + timedelta(days=1))

    (step,) = [
        s
        for s in offboarding_plans([member], company_zone=COMPANY)[member.pk]
        if s.kind == LAST_DAY
    ]

    assert step.done is False
    assert step.note == "3 days before, not fired: it was due before the automation was created"


@pytest.mark.parametrize("count", [3, 30])
def test_the_query_count_does_not_grow_with_members_or_automations(
    count, django_assert_max_num_queries
):
    for n in range(count // 3):
        last_day_automation(f"Last day {n}", -n, "09:00", conditions=[])
        make_automation(name=f"Offboard {n}", conditions=[])
    members = [
        make_member(
            last_working_day=timezone.localdate() + timedelta(days=n % 5),
            time_zone=["", "Asia/Tokyo", "America/New_York"][n % 3],
        )
        for n in range(count)
    ]
    gone = members[0]
    Member.objects.filter(pk=gone.pk).update(
        status=Member.Status.DEACTIVATED, deactivated_at=timezone.now()
    )
    members = list(Member.objects.filter(pk__in=[m.pk for m in members]))

    with django_assert_max_num_queries(9):
        plans = offboarding_plans(members, company_zone=COMPANY)

    assert all(plans[m.pk] for m in members)
    assert {s.kind for s in plans[gone.pk]} >= {"deactivated", LAST_DAY}
