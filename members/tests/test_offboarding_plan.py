"""What will run for a leaver and when, and what is done (issue 10): the steps of the Upcoming
offboardings page and its CSV, and the member page's Offboarding timeline
(automations/selectors_offboarding.py): due times in the member's own zone, a fired trigger
linked to its execution, delayed actions scheduled and cancelled with the reason, and the
query budgets at two data sizes."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from assetsonar.models import PortalSettings
from automations import lastday
from automations.models import Action, ActionLog, Automation, Execution
from automations.tests.builder_factories import make_automation
from automations.tests.engine_factories import use_sync_q
from conftest import make_entitlement, make_license, make_member
from licenses.models import License
from members.models import Member
from members.selectors import company_today
from members.services import member_deactivate, member_reactivate
from members.tests.test_views import DETAIL_QUERY_BUDGET, PANEL_LOGS_QUERY, TIMELINE_QUERIES

pytestmark = pytest.mark.django_db

URL = reverse("members:upcoming")
EXPORT = reverse("members:upcoming_export")
WEEK = timedelta(days=7)


@pytest.fixture
def today():
    PortalSettings.load()
    PortalSettings.objects.update(company_time_zone="Europe/Berlin")
    return company_today("Europe/Berlin")


@pytest.fixture(autouse=True)
def sync_q(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)


def last_day_automation(name: str, *, offset_days: int, at: str, **fields) -> Automation:
    """A "Member's last working day" automation (revoke licenses), older than any due time
    the tests use, so the scan does not skip it as created after it was due."""
    automation = make_automation(name=name, trigger_event=lastday.KEY, **fields)
    Automation.objects.filter(pk=automation.pk).update(
        trigger_options={"offset_days": offset_days, "at": at},
        created_at=timezone.now() - timedelta(days=30),
    )
    automation.refresh_from_db()
    return automation


def delay(automation: Automation, amount: timedelta) -> None:
    Action.objects.filter(automation=automation).update(delay=amount)


def local(moment, zone: str) -> str:
    moment = moment.astimezone(ZoneInfo(zone))
    return f"{moment.day} {moment:%b %H:%M} {zone}"


def steps_of(response, member) -> list:
    return next(row.steps for row in response.context["rows"] if row.member == member)


def fire(now, django_capture_on_commit_callbacks) -> int:
    """The every-minute scan at `now`, its events run by the engine (django-q2 in-process)."""
    with django_capture_on_commit_callbacks(execute=True):
        return lastday.last_day_fire_due(now=now)


def test_the_page_says_when_each_step_runs_in_the_members_own_time_zone(manager_client, today):
    notify = last_day_automation("Notify manager", offset_days=-2, at="09:00")
    offboard = make_automation(name="Offboard engineers")
    delay(offboard, WEEK)
    make_automation(name="Sales only", conditions=[("department", "is", "Sales")])
    day = today + timedelta(days=5)
    leaver = make_member(full_name="Nia York", last_working_day=day, time_zone="America/New_York")

    response = manager_client.get(URL)

    steps = steps_of(response, leaver)
    assert [(s.kind, s.title) for s in steps] == [
        ("last_day", "Notify manager"),
        ("day_end", "Deactivated automatically"),
        ("deactivation", "Offboard engineers"),
    ]
    due = lastday.due_at(day, "America/New_York", notify.trigger_options)
    assert f"{due.astimezone(ZoneInfo('America/New_York')):%H:%M}" == "09:00"
    assert steps[0].at == due
    assert steps[0].when == local(due, "America/New_York")
    ends = (
        datetime.combine(day + timedelta(days=1), time(0), tzinfo=ZoneInfo("America/New_York"))
        - timedelta(minutes=1)
    ).astimezone(UTC)
    assert steps[1].at == ends
    assert steps[2].actions[0].text == (
        f"Revoke licenses + 7 days ({local(ends + WEEK, 'America/New_York')})"
    )
    html = response.content.decode()
    assert f'<time datetime="{timezone.localtime(due).isoformat()}">' in html
    assert f'{local(due, "America/New_York")}</time>, <span class="step-note">2 days before' in html
    assert f"{local(ends, 'America/New_York')}</time>" in html
    assert "Revoke licenses + 7 days" in html
    assert "Sales only" not in html
    assert f'href="{offboard.get_absolute_url()}"' in html

    rows = list(csv.reader(io.StringIO(manager_client.get(EXPORT).content.decode())))
    assert rows[0][-1] == "steps"
    assert rows[1][-1] == " | ".join(
        [
            f"Notify manager: {local(due, 'America/New_York')}, 2 days before [Revoke licenses]",
            f"Deactivated automatically: {local(ends, 'America/New_York')}, end of the last "
            "working day",
            f"Offboard engineers: {local(ends, 'America/New_York')}, runs when deactivated "
            f"[Revoke licenses + 7 days ({local(ends + WEEK, 'America/New_York')})]",
        ]
    )


def test_a_fired_trigger_links_its_execution_and_its_status(
    manager_client, today, django_capture_on_commit_callbacks
):
    notify = last_day_automation("Notify manager", offset_days=-2, at="09:00")
    later = last_day_automation("Lock on the day", offset_days=0, at="18:00", revoke=False)
    leaver = make_member(last_working_day=today + timedelta(days=1), time_zone="Asia/Tokyo")
    make_entitlement(license=make_license(kind=License.Kind.USER), member=leaver)

    assert fire(timezone.now(), django_capture_on_commit_callbacks) == 1

    execution = Execution.objects.get(member=leaver, automation=notify)
    assert execution.status == Execution.Status.SUCCEEDED
    response = manager_client.get(URL)
    fired, *rest = steps_of(response, leaver)
    assert (fired.title, fired.done, fired.execution_id) == ("Notify manager", True, execution.pk)
    assert fired.status_label == "Fired: Succeeded"
    assert fired.actions == []  # what it did is on the execution page
    planned = next(s for s in rest if s.automation == later)
    assert (planned.done, planned.execution_id, planned.status_label) == (False, None, "")
    html = response.content.decode()
    link = reverse("automations:execution_detail", args=[execution.pk])
    assert f'<a href="{link}"><span class="badge badge-green">Fired: Succeeded</span></a>' in html

    # The member page's timeline: the same, marked done, linked; the later one planned.
    html = manager_client.get(leaver.get_absolute_url()).content.decode()
    timeline = html[html.index('id="offboarding-timeline"') :]
    timeline = timeline[: timeline.index("</section>")]
    assert '<h2 id="offboarding-timeline-h">Offboarding timeline</h2>' in timeline
    assert "Times in Asia/Tokyo" in timeline
    assert (
        f'<a href="{link}"><span class="badge badge-green">Fired: Succeeded</span></a>' in timeline
    )
    assert timeline.index("Notify manager") < timeline.index("Lock on the day")
    assert (
        '<tr class="timeline-row is-done" data-kind="last_day" data-status="succeeded">' in timeline
    )
    assert '<span class="badge">Planned</span>' in timeline


def test_a_cancelled_delayed_action_shows_its_reason(
    manager_client, today, it_manager, django_capture_on_commit_callbacks
):
    offboard = make_automation(name="Offboard engineers")
    delay(offboard, WEEK)
    leaver = make_member(full_name="Back Again", last_working_day=today + timedelta(days=10))
    make_entitlement(license=make_license(kind=License.Kind.USER), member=leaver)
    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=leaver, actor=it_manager, reason="By mistake")
    log = ActionLog.objects.get(execution__member=leaver, target_type="schedule")
    assert log.status == ActionLog.Status.SCHEDULED
    deactivated = Member.objects.get(pk=leaver.pk)

    # Scheduled: on the deactivated member's timeline with its due time, after the deactivation.
    html = manager_client.get(leaver.get_absolute_url()).content.decode()
    zone = "Europe/Berlin"
    assert f"{log.due_at.astimezone(ZoneInfo(zone)):%H:%M}</time>" in html
    timeline = html[html.index('id="offboarding-timeline"') :]
    assert timeline.index("Deactivated") < timeline.index("Revoke licenses (Offboard engineers)")
    assert '<span class="badge badge-blue">Scheduled</span>' in timeline
    link = reverse("automations:execution_detail", args=[log.execution_id])
    # The execution the deactivation started waits for its delayed action.
    assert f'<a href="{link}"><span class="badge badge-blue">Scheduled</span></a>' in timeline
    assert '<span class="help">By mistake</span>' in timeline
    assert deactivated.deactivated_at is not None

    with django_capture_on_commit_callbacks(execute=True):
        member_reactivate(member=leaver, actor=it_manager)

    log.refresh_from_db()
    assert log.status == ActionLog.Status.CANCELLED
    response = manager_client.get(URL)
    (cancelled,) = [s for s in steps_of(response, leaver) if s.kind == "delayed"]
    assert (cancelled.done, cancelled.status_label) == (True, "Cancelled")
    assert cancelled.note == log.insight
    assert log.insight.startswith("Member was reactivated on ")
    assert log.insight in response.content.decode()
    html = manager_client.get(leaver.get_absolute_url()).content.decode()
    assert f'<span class="help">{log.insight}</span>' in html
    assert '<span class="badge">Cancelled</span>' in html


def test_without_a_last_working_day_or_delayed_actions_there_is_no_timeline(manager_client):
    member = make_member()

    html = manager_client.get(member.get_absolute_url()).content.decode()

    assert "Offboarding timeline" not in html


def test_by_hand_the_deactivation_automations_are_listed_without_a_time(manager_client, today):
    make_automation(name="Offboard engineers")
    leaver = make_member(last_working_day=today + timedelta(days=3), deactivate_on_last_day=False)

    steps = steps_of(manager_client.get(URL), leaver)

    assert [(s.kind, s.title, s.when) for s in steps][1:] == [
        ("deactivation", "Offboard engineers", "When deactivated by hand")
    ]
    assert steps[0].title == "Last working day ends"
    assert steps[0].note == "not deactivated automatically: deactivate them by hand"
    html = manager_client.get(leaver.get_absolute_url()).content.decode()
    assert '<th scope="rowgroup" rowspan="1" class="nowrap">When deactivated by hand</th>' in html


def test_the_filters_still_narrow_the_rows_and_their_steps(manager_client, today):
    last_day_automation("Notify manager", offset_days=-1, at="10:00", conditions=[])
    make_member(full_name="Eng", last_working_day=today + timedelta(days=4))
    sales = make_member(
        full_name="Sales Paris",
        department="Sales",
        location="Paris",
        last_working_day=today + timedelta(days=6),
    )

    response = manager_client.get(URL, {"department": "Sales", "location": "Paris"})

    assert [row.member for row in response.context["rows"]] == [sales]
    assert steps_of(response, sales)[0].title == "Notify manager"
    rows = list(
        csv.reader(io.StringIO(manager_client.get(EXPORT, {"location": "Paris"}).content.decode()))
    )
    assert [r[0] for r in rows[1:]] == ["Sales Paris"]
    assert rows[1][-1].startswith("Notify manager: ")


# --- Query budgets ---------------------------------------------------------------------------


def _population(count: int, today, it_manager, capture) -> Member:
    """`count` leavers in three zones, four automations of the two triggers, a fired trigger,
    scheduled and cancelled delayed actions; returns a leaver who has all of them."""
    for n, (offset, at) in enumerate([(-2, "09:00"), (0, "18:00")]):
        last_day_automation(f"Last day {n}", offset_days=offset, at=at, conditions=[])
    delay(make_automation(name="Offboard engineers", mdm={}), WEEK)
    delay(make_automation(name="Everyone", conditions=[], mdm={}), WEEK)
    license = make_license(kind=License.Kind.USER, seats=10_000)
    zones = ["America/New_York", "Asia/Tokyo", ""]
    members = Member.objects.bulk_create(
        [
            Member(
                full_name=f"Leaver {n}",
                email=f"leaver{n}@example.com",
                department="Engineering" if n % 2 else "Sales",
                location="Berlin",
                last_working_day=today + timedelta(days=1 + n % 20),
                time_zone=zones[n % 3],
            )
            for n in range(count)
        ]
    )
    for member in members[:3]:
        make_entitlement(license=license, member=member)
        # A deactivation cancelled by a reactivation, then a delayed action still scheduled.
        with capture(execute=True):
            member_deactivate(member=member, actor=it_manager, reason="Early")
        with capture(execute=True):
            member_reactivate(member=member, actor=it_manager)
    with capture(execute=True):
        lastday.last_day_fire_due(now=timezone.now())
    return members[0]


@pytest.mark.parametrize("count", [3, 30])
def test_the_page_the_csv_and_the_timeline_have_fixed_query_budgets(
    manager_client,
    today,
    it_manager,
    count,
    django_assert_max_num_queries,
    django_capture_on_commit_callbacks,
):
    leaver = _population(count, today, it_manager, django_capture_on_commit_callbacks)

    # Session, user, permissions (2), the company time zone, departments, locations, the
    # count, the page; the steps (selectors_offboarding.offboarding_plans): the delayed logs,
    # the automations with their conditions and actions (3), the snapshots (3), the fired
    # triggers (1).
    with django_assert_max_num_queries(18):
        response = manager_client.get(URL)
    rows = response.context["rows"]
    assert len(rows) == count
    steps = steps_of(response, leaver)
    assert {s.kind for s in steps} == {"last_day", "day_end", "deactivation", "delayed"}
    assert any(s.status == "cancelled" for s in steps)
    assert any(s.execution_id for s in steps if s.kind == "last_day")
    with django_assert_max_num_queries(18):
        response = manager_client.get(EXPORT)
    assert len(response.content.decode().splitlines()) == count + 1

    with django_assert_max_num_queries(DETAIL_QUERY_BUDGET + TIMELINE_QUERIES + PANEL_LOGS_QUERY):
        html = manager_client.get(leaver.get_absolute_url()).content.decode()
    assert "Offboarding timeline" in html


def test_a_member_deactivated_before_their_day_shows_that_nothing_runs_then(
    manager_client, today, it_manager, django_capture_on_commit_callbacks
):
    make_automation(name="Offboard engineers")
    leaver = make_member(last_working_day=today + timedelta(days=6))
    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=leaver, actor=it_manager, reason="Left early")

    html = manager_client.get(leaver.get_absolute_url()).content.decode()

    timeline = html[html.index('id="offboarding-timeline"') :]
    timeline = timeline[: timeline.index("</section>")]
    assert "Last working day ends" in timeline
    assert '<span class="help">already deactivated: nothing runs then</span>' in timeline
    assert '<span class="badge">Nothing runs</span>' in timeline
    # What the deactivation started is done and linked; nothing is planned for the day.
    execution = Execution.objects.get(member=leaver)
    link = reverse("automations:execution_detail", args=[execution.pk])
    assert f'<a href="{link}"><span class="badge badge-green">Succeeded</span></a>' in timeline
    assert "Planned" not in timeline
