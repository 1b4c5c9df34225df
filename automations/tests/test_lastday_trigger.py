"""The "Member's last working day" trigger (automations/lastday.py): when it is due (time zones
and the daylight-saving nights), firing once per key, moving and clearing the day, reactivating,
downtime and catch-up, and the engine running only the automation that came due. The clock is
the `now` the tests pass; test_lastday_qcluster.py runs it with a real cluster."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from django_q.models import Schedule

from assetsonar.models import PortalSettings
from automations import lastday
from automations.engine.runner import event_process
from automations.models import ActionLog, Automation, Event, Execution
from automations.tests.delay_factories import delayed
from automations.tests.engine_factories import make_engine_automation, use_sync_q
from conftest import make_entitlement, make_license, make_member
from licenses.models import Entitlement, License
from members import services as member_services
from members.models import Member

pytestmark = pytest.mark.django_db


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def company(zone: str) -> None:
    PortalSettings.load()
    PortalSettings.objects.update(company_time_zone=zone)


def lwd_automation(
    offset_days: int = 0, at: str = "18:00", *, created: str = "2027-01-01T00:00", **kwargs
) -> Automation:
    """A last-working-day automation that revokes user-based licenses, created at `created` (so
    the dates below, in 2027, are after it)."""
    automation = make_engine_automation(
        trigger_event=lastday.KEY,
        trigger_options={"offset_days": offset_days, "at": at},
        user_based=True,
        **kwargs,
    )
    Automation.objects.filter(pk=automation.pk).update(created_at=utc(created))
    automation.refresh_from_db()
    return automation


def leaver(day: str, zone: str = "", **fields) -> Member:
    member = make_member(last_working_day=date.fromisoformat(day), time_zone=zone, **fields)
    make_entitlement(license=make_license(kind=License.Kind.USER), member=member)
    return member


@pytest.fixture
def fire(django_capture_on_commit_callbacks):
    """Fire what is due at `now`, and run the events' tasks (sync django-q2) as their
    transactions commit."""

    def run(now: datetime) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return lastday.last_day_fire_due(now=now)

    return run


# (last working day, zone, offset days, wall time, when it is due in UTC): the 2027 changes.
DUE = [
    # Berlin springs forward on Sunday 28 Mar 2027 (CET +1 → CEST +2).
    ("2027-03-27", "Europe/Berlin", 0, "18:00", "2027-03-27T17:00"),
    ("2027-03-28", "Europe/Berlin", 0, "18:00", "2027-03-28T16:00"),
    # Two days before a day after the change, at 09:00: on the change day, in summer time.
    ("2027-03-30", "Europe/Berlin", -2, "09:00", "2027-03-28T07:00"),
    # 02:30 does not exist that night: read with the winter offset, i.e. 03:30 on the clock.
    ("2027-03-28", "Europe/Berlin", 0, "02:30", "2027-03-28T01:30"),
    # Berlin falls back on Sunday 31 Oct 2027.
    ("2027-10-30", "Europe/Berlin", 0, "18:00", "2027-10-30T16:00"),
    ("2027-10-31", "Europe/Berlin", 0, "18:00", "2027-10-31T17:00"),
    ("2027-10-24", "Europe/Berlin", 7, "09:00", "2027-10-31T08:00"),
    # New York springs forward on 14 Mar 2027 (EST -5 → EDT -4).
    ("2027-03-13", "America/New_York", 0, "18:00", "2027-03-13T23:00"),
    ("2027-03-14", "America/New_York", 0, "18:00", "2027-03-14T22:00"),
    ("2027-03-16", "America/New_York", -2, "09:00", "2027-03-14T13:00"),
    # New York falls back on 7 Nov 2027: 01:30 happens twice; the first (EDT) is used.
    ("2027-11-06", "America/New_York", 0, "18:00", "2027-11-06T22:00"),
    ("2027-11-07", "America/New_York", 0, "18:00", "2027-11-07T23:00"),
    ("2027-11-07", "America/New_York", 0, "01:30", "2027-11-07T05:30"),
]


@pytest.mark.parametrize(("day", "zone", "offset", "at", "due"), DUE)
def test_the_due_time_is_the_wall_time_in_the_members_zone_across_dst(day, zone, offset, at, due):
    options = {"offset_days": offset, "at": at}
    assert lastday.due_at(date.fromisoformat(day), zone, options) == utc(due)


@pytest.mark.parametrize(("day", "zone", "offset", "at", "due"), DUE)
def test_it_fires_at_the_due_time_not_a_minute_before_and_only_once(day, zone, offset, at, due):
    automation = lwd_automation(offset, at)
    member = leaver(day, zone)
    due_at = utc(due)

    assert lastday.last_day_fire_due(now=due_at - timedelta(minutes=1)) == 0
    assert lastday.last_day_fire_due(now=due_at) == 1
    assert lastday.last_day_fire_due(now=due_at + timedelta(minutes=1)) == 0

    (event,) = Event.objects.filter(member=member)
    assert event.kind == lastday.KEY
    assert event.automation_id == automation.pk
    assert event.occurred_at == due_at
    assert event.key == f"lastday:{automation.pk}:{member.pk}:{day}:{offset}:{at}"
    assert event.actor_id is None
    assert event.member_snapshot["trigger"]["due_at"] == due_at.isoformat()


def test_the_company_zone_applies_when_the_member_has_none():
    company("America/New_York")
    lwd_automation(0, "18:00")
    leaver("2027-03-14")

    assert lastday.last_day_fire_due(now=utc("2027-03-14T21:59")) == 0
    assert lastday.last_day_fire_due(now=utc("2027-03-14T22:00")) == 1


def test_the_engine_runs_only_the_automation_that_came_due(monkeypatch, settings, fire):
    use_sync_q(monkeypatch, settings)
    two_days_before = lwd_automation(-2, "09:00", name="Two days before")
    on_the_day = lwd_automation(0, "18:00", name="On the day")
    deactivation = make_engine_automation(user_based=True, name="On deactivation")
    member = leaver("2027-05-12", "Europe/Berlin")

    assert fire(utc("2027-05-10T07:00")) == 1

    (execution,) = Execution.objects.filter(member=member)
    assert execution.automation == two_days_before
    assert execution.status == Execution.Status.SUCCEEDED
    assert not Entitlement.objects.live().filter(member=member).exists()
    assert not Execution.objects.filter(automation__in=[on_the_day, deactivation]).exists()
    member.refresh_from_db()
    assert member.is_active  # the trigger is not a deactivation


def test_conditions_are_checked_and_narrow_the_scan(monkeypatch, settings, fire):
    use_sync_q(monkeypatch, settings)
    lwd_automation(0, "18:00", conditions=[("department", "is", "Sales")])
    engineer = leaver("2027-05-12", "UTC", department="Engineering")
    seller = leaver("2027-05-12", "UTC", department="Sales")

    assert fire(utc("2027-05-12T18:00")) == 1

    assert list(Execution.objects.values_list("member_id", flat=True)) == [seller.pk]
    assert not Event.objects.filter(member=engineer).exists()


def test_moving_the_day_moves_what_has_not_fired():
    two_days_before = lwd_automation(-2, "09:00")
    on_the_day = lwd_automation(0, "18:00")
    member = leaver("2027-05-12", "UTC")
    assert lastday.last_day_fire_due(now=utc("2027-05-10T09:00")) == 1  # two days before

    member_services.member_update(member=member, actor=None, last_working_day=date(2027, 5, 20))

    # The old day's "on the day" never fires; the new day's both do, once each.
    assert lastday.last_day_fire_due(now=utc("2027-05-12T18:00")) == 0
    assert lastday.last_day_fire_due(now=utc("2027-05-18T09:00")) == 1
    assert lastday.last_day_fire_due(now=utc("2027-05-20T18:00")) == 1
    keys = sorted(Event.objects.filter(member=member).values_list("key", flat=True))
    assert keys == sorted(
        [
            f"lastday:{two_days_before.pk}:{member.pk}:2027-05-12:-2:09:00",
            f"lastday:{two_days_before.pk}:{member.pk}:2027-05-20:-2:09:00",
            f"lastday:{on_the_day.pk}:{member.pk}:2027-05-20:0:18:00",
        ]
    )


def test_clearing_the_day_stops_what_has_not_fired():
    lwd_automation(0, "18:00")
    member = leaver("2027-05-12", "UTC")

    member_services.member_update(member=member, actor=None, last_working_day=None)

    assert lastday.last_day_fire_due(now=utc("2027-05-12T18:00")) == 0
    assert not Event.objects.exists()


def test_moving_it_between_the_scan_and_the_write_is_seen_under_the_lock(monkeypatch):
    lwd_automation(0, "18:00")
    member = leaver("2027-05-12", "UTC")
    read = lastday._candidates

    def read_then_move(automation, **kwargs):
        rows = read(automation, **kwargs)
        Member.objects.filter(pk=member.pk).update(last_working_day=date(2027, 6, 1))
        return rows

    monkeypatch.setattr(lastday, "_candidates", read_then_move)

    assert lastday.last_day_fire_due(now=utc("2027-05-12T18:00")) == 0
    assert not Event.objects.exists()


def test_reactivating_clears_an_ended_day_so_nothing_after_it_fires(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)
    seven_days_after = lwd_automation(7, "09:00")
    member = leaver("2027-05-12", "UTC")
    member_services.member_deactivate(member=member, actor=None, reason="Left")
    moment = utc("2027-05-14T10:00")
    monkeypatch.setattr(timezone, "now", lambda: moment)

    member_services.member_reactivate(member=member, actor=None)

    member.refresh_from_db()
    assert member.last_working_day is None
    assert lastday.last_day_fire_due(now=utc("2027-05-19T09:00")) == 0
    assert not Event.objects.filter(automation=seven_days_after).exists()


def test_reactivating_cancels_the_delayed_actions_of_a_fired_trigger(monkeypatch, settings, fire):
    use_sync_q(monkeypatch, settings)
    automation = lwd_automation(0, "18:00")
    delayed(automation, "revoke_licenses", timedelta(days=7))
    member = leaver("2027-05-12", "UTC")
    assert fire(utc("2027-05-12T18:00")) == 1
    (log,) = ActionLog.objects.filter(status=ActionLog.Status.SCHEDULED)
    assert log.due_at == utc("2027-05-19T18:00")  # a week after the trigger's due time
    member_services.member_deactivate(member=member, actor=None, reason="Left")

    member_services.member_reactivate(member=member, actor=None)

    log.refresh_from_db()
    assert log.status == ActionLog.Status.CANCELLED
    assert "reactivated" in log.insight
    assert Entitlement.objects.live().filter(member=member).exists()


def test_workers_down_at_the_due_time_it_fires_once_when_they_return_saying_how_late():
    lwd_automation(0, "18:00")
    member = leaver("2027-05-12", "UTC")

    assert lastday.last_day_fire_due(now=utc("2027-05-12T21:10")) == 1
    assert lastday.last_day_fire_due(now=utc("2027-05-12T21:11")) == 0

    (event,) = Event.objects.filter(member=member)
    assert event.occurred_at == utc("2027-05-12T18:00")
    insight = lastday.fired_insight(event.member_snapshot["trigger"])
    assert insight == (
        "Last working day 12 May 2027 (UTC); on their last working day, at 18:00 their time: "
        "due 12 May 18:00, fired 3 hours late (no worker ran the schedule then)."
    )


def test_on_time_says_so():
    lwd_automation(-1, "09:00")
    leaver("2027-05-12", "Europe/Berlin")
    lastday.last_day_fire_due(now=utc("2027-05-11T07:01"))

    (event,) = Event.objects.all()
    assert lastday.fired_insight(event.member_snapshot["trigger"]).endswith(
        "1 day before their last working day, at 09:00 their time: due 11 May 09:00, fired on time."
    )


def test_nothing_older_than_the_catch_up_window_or_the_automation_fires():
    lwd_automation(0, "18:00", created="2027-05-01T00:00")
    too_old = leaver("2027-05-02", "UTC")
    before_it_existed = leaver("2027-04-30", "UTC")
    within = leaver("2027-05-05", "UTC")

    assert lastday.last_day_fire_due(now=utc("2027-05-10T12:00")) == 1

    assert list(Event.objects.values_list("member_id", flat=True)) == [within.pk]
    assert not Event.objects.filter(member__in=[too_old, before_it_existed]).exists()


def test_a_disabled_automation_does_not_fire():
    lwd_automation(0, "18:00", enabled=False)
    leaver("2027-05-12", "UTC")

    assert lastday.last_day_fire_due(now=utc("2027-05-12T18:00")) == 0


def test_two_scans_at_once_fire_once(monkeypatch):
    """The second scan read its candidates before the first wrote: the unique key refuses."""
    lwd_automation(0, "18:00")
    leaver("2027-05-12", "UTC")
    read = lastday._candidates
    fired_meanwhile = []

    def read_then_race(automation, **kwargs):
        rows = read(automation, **kwargs)
        if not fired_meanwhile:
            fired_meanwhile.append(True)
            monkeypatch.setattr(lastday, "_candidates", read)
            assert lastday.last_day_fire_due(now=kwargs["now"]) == 1
        return rows

    monkeypatch.setattr(lastday, "_candidates", read_then_race)

    assert lastday.last_day_fire_due(now=utc("2027-05-12T18:00")) == 0
    assert Event.objects.count() == 1


def test_the_scan_reads_the_days_in_a_fixed_number_of_queries(django_assert_max_num_queries):
    lwd_automation(0, "18:00")
    lwd_automation(-2, "09:00")
    for n in range(12):
        leaver(f"2027-05-{10 + n % 5:02d}", "UTC")
    now = utc("2027-04-01T00:00")  # nothing due: the reads alone

    with django_assert_max_num_queries(6):  # settings, automations, conditions, 2 x (members, keys)
        assert lastday.last_day_fire_due(now=now) == 0


def test_its_schedule_runs_the_task_every_minute():
    lastday.ensure_last_day_schedule()
    schedule = Schedule.objects.get(name=lastday.LAST_DAY_SCHEDULE_NAME)

    assert schedule.func == "automations.tasks.last_day_fire_due"
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 1, -1)
    from automations import tasks

    assert tasks.last_day_fire_due() == 0


def test_the_event_is_processed_by_the_normal_path_when_its_task_is_lost():
    """No broker at fire time: the event stays pending and event_process (the sweeper's path)
    runs it later, once."""
    automation = lwd_automation(0, "18:00")
    member = leaver("2027-05-12", "UTC")
    lastday.last_day_fire_due(now=utc("2027-05-12T18:00"))
    event = Event.objects.get(member=member)

    event_process(event_id=event.pk)
    event_process(event_id=event.pk)

    assert Execution.objects.filter(automation=automation, member=member).count() == 1


# --- What the portal says of it -----------------------------------------------------------------


def test_the_deactivate_dialog_says_what_the_day_sets_off_and_when(manager_client):
    from django.urls import reverse

    company("Europe/Berlin")
    lwd_automation(-2, "09:00", name="Tell the manager", created="2026-01-01T00:00")
    later = lwd_automation(0, "18:00", name="Revoke at the end", created="2026-01-01T00:00")
    delayed(later, "revoke_licenses", timedelta(days=7))
    day = timezone.localdate() + timedelta(days=10)
    member = leaver(day.isoformat(), "America/New_York", full_name="Lena Leaver")

    html = manager_client.get(reverse("members:deactivate", args=[member.pk])).text

    expected = lastday.due_at(day, "America/New_York", {"offset_days": -2, "at": "09:00"})
    assert "Tell the manager" in html and "Revoke at the end" in html
    assert (
        "2 days before their last working day, at 09:00 their time: "
        f"{expected.astimezone(ZoneInfo('America/New_York')):%-d %b} 09:00 America/New_York"
    ) in html
    assert "after 7 days" in html  # the delayed revocation says when


def test_a_member_without_a_day_is_not_in_its_preview():
    from automations.selectors_preview import LAST_WORKING_DAY_EVENTS, member_preview

    lwd_automation(0, "18:00")
    member = make_member()

    assert member_preview(member, trigger_events=LAST_WORKING_DAY_EVENTS).runs == []


def test_the_execution_page_says_when_it_was_due_and_how_late_it_fired(
    manager_client, monkeypatch, settings, fire
):
    use_sync_q(monkeypatch, settings)
    lwd_automation(0, "18:00")
    member = leaver("2027-05-12", "Europe/Berlin")
    fire(utc("2027-05-12T18:30"))  # due 16:00 UTC
    execution = Execution.objects.get(member=member)

    html = manager_client.get(execution.get_absolute_url()).text

    assert "Member&#x27;s last working day" in html
    assert (
        "Last working day 12 May 2027 (Europe/Berlin); on their last working day, at 18:00 "
        "their time: due 12 May 18:00, fired 2 hours late" in html
    )


def test_the_webhook_says_which_day_and_offset_fired(monkeypatch, settings, fire):
    from automations.actions.webhook import event_payload

    automation = lwd_automation(-2, "09:00")
    member = leaver("2027-05-12", "UTC")
    lastday.last_day_fire_due(now=utc("2027-05-10T09:00"))
    event = Event.objects.get(member=member)

    payload = event_payload(event, automation)

    assert payload["type"] == "member.last_working_day"
    assert payload["timestamp"] == "2027-05-10T09:00:00+00:00"
    assert payload["data"]["trigger"] == {
        "last_working_day": "2027-05-12",
        "time_zone": "UTC",
        "offset_days": -2,
        "at": "09:00",
        "due_at": "2027-05-10T09:00:00+00:00",
    }
