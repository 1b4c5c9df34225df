"""The last working day: when it ends (time zones, DST), members_deactivate_due, its schedule,
and what reactivating does to it. The clock is the `now` the tests pass."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.db import connection
from django_q.models import Schedule

from assetsonar.models import AuditEvent, PortalSettings
from automations.models import Event
from conftest import make_member
from members import services, tasks
from members.models import Member, day_end


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _company(zone: str) -> None:
    PortalSettings.load()
    PortalSettings.objects.update(company_time_zone=zone)


# (day, zone, the UTC instant it ends): the day before each change, the change day, the day after.
DST_ENDS = [
    # Berlin, spring forward on 29 Mar 2026 (the day has 23 hours): CET ends 23:00 UTC, CEST 22:00.
    ("2026-03-28", "Europe/Berlin", "2026-03-28T23:00"),
    ("2026-03-29", "Europe/Berlin", "2026-03-29T22:00"),
    ("2026-03-30", "Europe/Berlin", "2026-03-30T22:00"),
    # Berlin, fall back on 25 Oct 2026 (25 hours).
    ("2026-10-24", "Europe/Berlin", "2026-10-24T22:00"),
    ("2026-10-25", "Europe/Berlin", "2026-10-25T23:00"),
    # New York, spring forward on 8 Mar 2026: EST ends 05:00 UTC next day, EDT 04:00.
    ("2026-03-07", "America/New_York", "2026-03-08T05:00"),
    ("2026-03-08", "America/New_York", "2026-03-09T04:00"),
    # New York, fall back on 1 Nov 2026.
    ("2026-10-31", "America/New_York", "2026-11-01T04:00"),
    ("2026-11-01", "America/New_York", "2026-11-02T05:00"),
]


@pytest.mark.parametrize(("day", "zone", "ends"), DST_ENDS)
def test_a_day_ends_at_the_next_local_midnight_across_dst_changes(day, zone, ends):
    assert day_end(date.fromisoformat(day), zone) == at(ends)


@pytest.mark.django_db
@pytest.mark.parametrize(("day", "zone", "ends"), DST_ENDS)
def test_the_member_is_deactivated_at_the_end_of_the_day_not_a_minute_before(day, zone, ends):
    member = make_member(last_working_day=date.fromisoformat(day), time_zone=zone)
    end = at(ends)

    assert services.members_deactivate_due(now=end.replace(minute=59) - _hour()) == 0
    member.refresh_from_db()
    assert member.is_active

    assert services.members_deactivate_due(now=end) == 1
    member.refresh_from_db()
    assert member.status == Member.Status.DEACTIVATED
    assert member.deactivated_by is None
    when = date.fromisoformat(day)
    assert member.deactivation_reason == (
        f"Last working day ({when.day} {when:%b %Y}) ended at 23:59 {zone}"
    )


def _hour():
    from datetime import timedelta

    return timedelta(hours=1)


@pytest.mark.django_db
def test_a_member_without_a_zone_ends_the_day_in_the_company_zone_and_one_with_a_zone_in_theirs():
    _company("Europe/Berlin")
    berlin = make_member(last_working_day=date(2026, 12, 13))
    new_york = make_member(last_working_day=date(2026, 12, 13), time_zone="America/New_York")

    # 23:00 UTC on 13 Dec is midnight in Berlin, 18:00 in New York.
    assert services.members_deactivate_due(now=at("2026-12-13T23:00")) == 1
    berlin.refresh_from_db()
    new_york.refresh_from_db()
    assert not berlin.is_active
    assert berlin.deactivation_reason == (
        "Last working day (13 Dec 2026) ended at 23:59 Europe/Berlin"
    )
    assert new_york.is_active

    assert services.members_deactivate_due(now=at("2026-12-14T05:00")) == 1
    new_york.refresh_from_db()
    assert not new_york.is_active


@pytest.mark.django_db
def test_running_twice_deactivates_once_with_one_event_and_one_audit_row():
    member = make_member(last_working_day=date(2026, 12, 13), time_zone="UTC")

    assert services.members_deactivate_due(now=at("2026-12-14T00:01")) == 1
    assert services.members_deactivate_due(now=at("2026-12-14T00:06")) == 0

    assert Event.objects.filter(member=member, kind="member.deactivated").count() == 1
    assert (
        AuditEvent.objects.filter(
            action=AuditEvent.Action.DEACTIVATED, object_id=str(member.pk)
        ).count()
        == 1
    )


@pytest.mark.django_db
def test_a_run_after_downtime_catches_up_and_says_how_late():
    member = make_member(last_working_day=date(2026, 12, 13), time_zone="Europe/Berlin")

    # The day ended at 23:00 UTC; workers came back 2 h 5 min later.
    assert services.members_deactivate_due(now=at("2026-12-14T01:05")) == 1

    member.refresh_from_db()
    assert member.deactivation_reason == (
        "Last working day (13 Dec 2026) ended at 23:59 Europe/Berlin; deactivated 2 h 5 min "
        "late (no worker ran the schedule then)"
    )
    audit = AuditEvent.objects.get(action=AuditEvent.Action.DEACTIVATED)
    assert audit.message == member.deactivation_reason
    assert audit.actor is None


@pytest.mark.django_db
def test_members_without_the_option_or_a_day_or_already_gone_are_left_alone():
    kept = make_member(last_working_day=date(2026, 12, 13), deactivate_on_last_day=False)
    no_day = make_member()
    gone = make_member(last_working_day=date(2026, 12, 13))
    services.member_deactivate(member=gone, actor=None, reason="Left early")
    future = make_member(last_working_day=date(2026, 12, 20))

    assert services.members_deactivate_due(now=at("2026-12-15T00:00")) == 0

    for member in (kept, no_day, future):
        member.refresh_from_db()
        assert member.is_active
    gone.refresh_from_db()
    assert gone.deactivation_reason == "Left early"


def _population(count: int) -> None:
    Member.objects.bulk_create(
        [
            Member(
                full_name=f"P {i}",
                email=f"p{i}@example.com",
                last_working_day=date(2027, 1, 1) if i % 2 else None,
            )
            for i in range(count)
        ]
    )


@pytest.mark.django_db
@pytest.mark.parametrize("population", [10, 300])
def test_a_run_with_nothing_due_costs_the_same_queries_whatever_the_members(
    population, django_assert_num_queries
):
    _population(population)
    PortalSettings.load()

    with django_assert_num_queries(2):  # the settings row, the candidates
        assert services.members_deactivate_due(now=at("2026-12-14T00:00")) == 0


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN output is PostgreSQL's")
def test_the_candidates_are_read_through_the_partial_index():
    _population(50)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE members_member")
        # A 50-row table is read whole whatever the indexes; without seq scans the planner
        # shows which index it would use.
        cursor.execute("SET LOCAL enable_seqscan = off")
    plan = services.last_day_candidates(now=at("2026-12-14T00:00")).explain()
    assert "member_last_day_due" in plan


@pytest.mark.django_db
def test_reactivating_after_the_day_ended_clears_it_so_the_member_stays_active():
    member = make_member(last_working_day=date(2020, 12, 13), time_zone="UTC")
    services.members_deactivate_due(now=at("2020-12-14T00:00"))

    services.member_reactivate(member=member.pk, actor=None)

    member.refresh_from_db()
    assert member.is_active
    assert member.last_working_day is None
    audit = AuditEvent.objects.get(action=AuditEvent.Action.REACTIVATED)
    assert audit.changes == {"last_working_day": ["2020-12-13", None]}
    assert services.members_deactivate_due(now=at("2020-12-15T00:00")) == 0


@pytest.mark.django_db
def test_reactivating_before_a_future_day_keeps_it():
    member = make_member(last_working_day=date(2999, 1, 1))
    services.member_deactivate(member=member, actor=None, reason="Early")

    services.member_reactivate(member=member.pk, actor=None)

    member.refresh_from_db()
    assert member.last_working_day == date(2999, 1, 1)
    assert AuditEvent.objects.get(action=AuditEvent.Action.REACTIVATED).changes == {}


@pytest.mark.django_db
def test_setting_changing_and_clearing_the_day_is_audited(it_manager):
    member = make_member()

    services.member_update(member=member, actor=it_manager, last_working_day=date(2026, 12, 13))
    services.member_update(member=member, actor=it_manager, last_working_day=date(2026, 12, 18))
    services.member_update(member=member, actor=it_manager, last_working_day=None)

    changes = list(
        AuditEvent.objects.filter(action=AuditEvent.Action.CHANGED)
        .order_by("id")
        .values_list("changes", flat=True)
    )
    assert changes == [
        {"last_working_day": [None, "2026-12-13"]},
        {"last_working_day": ["2026-12-13", "2026-12-18"]},
        {"last_working_day": ["2026-12-18", None]},
    ]


@pytest.mark.django_db
def test_an_unknown_time_zone_is_refused_with_a_clear_message(it_manager):
    from django.core.exceptions import ValidationError

    member = make_member()
    with pytest.raises(ValidationError) as caught:
        services.member_update(member=member, actor=it_manager, time_zone="Europe/Atlantis")
    assert caught.value.message_dict["time_zone"] == [
        "“Europe/Atlantis” is not a time zone name; use an IANA name such as Europe/Berlin or "
        "America/New_York."
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("default", [True, False])
def test_a_new_member_takes_the_option_from_the_portal_setting(it_manager, default):
    PortalSettings.load()
    PortalSettings.objects.update(deactivate_on_last_day_default=default)

    member = services.member_create(actor=it_manager, full_name="N", email="n@example.com")

    assert member.deactivate_on_last_day is default


@pytest.mark.django_db
def test_the_schedule_exists_every_5_minutes_and_runs_the_service():
    # A transactional test earlier in this process may have flushed the migration's row: the
    # migration calls this same function.
    tasks.ensure_deactivate_due_schedule()
    schedule = Schedule.objects.get(name=tasks.DEACTIVATE_DUE_SCHEDULE_NAME)
    assert (schedule.func, schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        "members.tasks.deactivate_due",
        Schedule.MINUTES,
        5,
        -1,
    )
    tasks.ensure_deactivate_due_schedule()
    assert Schedule.objects.filter(name=tasks.DEACTIVATE_DUE_SCHEDULE_NAME).count() == 1
    member = make_member(last_working_day=date(2020, 1, 1))

    assert tasks.deactivate_due() == 1
    member.refresh_from_db()
    assert not member.is_active


@pytest.mark.django_db
def test_django_q2s_scheduler_runs_the_schedule_when_due_and_moves_it_5_minutes_on(
    monkeypatch, settings
):
    """The real django-q2 path: its scheduler (what the cluster runs every 30 s) finds the due
    schedule and runs the task (sync mode: in this process), then schedules the next run."""
    from datetime import timedelta

    from django.utils import timezone
    from django_q.conf import Conf
    from django_q.scheduler import scheduler

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    monkeypatch.setattr(Conf, "SYNC", True)
    member = make_member(last_working_day=date(2020, 1, 1))
    tasks.ensure_deactivate_due_schedule()  # the migration's row, even after a flush
    schedule = Schedule.objects.get(name=tasks.DEACTIVATE_DUE_SCHEDULE_NAME)
    Schedule.objects.filter(pk=schedule.pk).update(
        next_run=timezone.now() - timedelta(hours=3)  # the workers were down for 3 hours
    )

    scheduler()

    member.refresh_from_db()
    assert not member.is_active
    assert member.deactivation_reason.startswith(
        "Last working day (1 Jan 2020) ended at 23:59 UTC; deactivated "
    )
    schedule.refresh_from_db()
    assert schedule.next_run > timezone.now()
    assert schedule.next_run <= timezone.now() + timedelta(minutes=5)
    # Catch-up is off: the next run is 5 minutes from now, not 5 minutes after the missed one;
    # running the scheduler again deactivates nobody twice.
    scheduler()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DEACTIVATED).count() == 1
