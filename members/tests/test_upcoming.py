"""Upcoming offboardings: who leaves in the next N days, when their day ends in their time zone,
whether they are deactivated then, which deactivation automations match; its CSV, filters,
permissions and query budget. What runs when, and what is done: test_offboarding_plan.py."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse

from assetsonar.models import PortalSettings
from automations.tests.builder_factories import make_automation
from conftest import make_member, make_user
from members.models import Member
from members.selectors import company_today

pytestmark = pytest.mark.django_db

URL = reverse("members:upcoming")
EXPORT = reverse("members:upcoming_export")


@pytest.fixture
def today():
    PortalSettings.load()
    PortalSettings.objects.update(company_time_zone="Europe/Berlin")
    return company_today("Europe/Berlin")


def test_the_page_lists_the_next_30_days_by_date_with_the_local_end_and_the_automations(
    manager_client, today
):
    make_automation(name="Offboard engineers", conditions=[("department", "is", "Engineering")])
    make_automation(name="Sales only", conditions=[("department", "is", "Sales")])
    make_automation(name="Switched off", enabled=False, conditions=[])
    later = make_member(
        full_name="Later Lee",
        last_working_day=today + timedelta(days=20),
        time_zone="America/New_York",
        deactivate_on_last_day=False,
    )
    soon = make_member(full_name="Soon Sam", last_working_day=today + timedelta(days=2))
    make_member(full_name="Too Late", last_working_day=today + timedelta(days=31))
    make_member(full_name="Already Past", last_working_day=today - timedelta(days=1))
    make_member(full_name="No Date")

    response = manager_client.get(URL)

    assert response.status_code == 200
    rows = response.context["rows"]
    assert [row.member for row in rows] == [soon, later]
    first, second = rows
    assert (first.time_zone, first.own_zone, first.automatic, first.days_left) == (
        "Europe/Berlin",
        False,
        True,
        2,
    )
    assert f"{first.last_minute:%H:%M}" == "23:59"
    assert [automation.name for automation in first.automations] == ["Offboard engineers"]
    assert second.time_zone == "America/New_York"
    assert second.automatic is False
    # The same instant where the company is: New York's midnight is 06:00 in Berlin.
    assert f"{second.company_last_minute:%H:%M}" == "05:59"
    html = response.content.decode()
    assert "23:59 America/New_York" in html
    assert f"{second.company_last_minute.day} {second.company_last_minute:%b} 05:59" in html
    assert "No, by hand" in html
    assert "Offboard engineers" in html
    assert "Sales only" not in html and "Switched off" not in html
    assert "Too Late" not in html and "Already Past" not in html and "No Date" not in html


def test_filters_by_department_location_and_date_range(manager_client, today):
    make_member(full_name="Eng Berlin", last_working_day=today + timedelta(days=5))
    make_member(
        full_name="Sales Paris",
        department="Sales",
        location="Paris",
        last_working_day=today + timedelta(days=5),
    )
    make_member(full_name="In Spring", last_working_day=today + timedelta(days=100))

    def names(**params):
        response = manager_client.get(URL, params)
        assert response.status_code == 200
        return [row.member.full_name for row in response.context["rows"]]

    assert names(department="Sales") == ["Sales Paris"]
    assert names(location="Berlin") == ["Eng Berlin"]
    assert names(days=120) == ["Eng Berlin", "Sales Paris", "In Spring"]
    start, end = today + timedelta(days=90), today + timedelta(days=110)
    assert names(start=start.isoformat(), end=end.isoformat()) == ["In Spring"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"days": "0"}, "Enter a number of days from 1 to 366."),
        ({"start": "13.12.2026"}, "Enter the date as YYYY-MM-DD, e.g. 2026-12-13."),
        ({"start": "2026-12-13", "end": "2026-12-01"}, "The end date is before the start date."),
    ],
)
def test_bad_filters_say_why_and_the_page_shows_the_default_window(
    manager_client, today, params, message
):
    soon = make_member(last_working_day=today + timedelta(days=1))

    response = manager_client.get(URL, params)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert [row.member for row in response.context["rows"]] == [soon]


def test_the_csv_has_the_same_rows_with_formulas_neutralised(manager_client, today):
    make_automation(name="Offboard engineers", conditions=[("department", "is", "Engineering")])
    make_member(
        full_name="=cmd()",
        email="x@example.com",
        last_working_day=today + timedelta(days=3),
        time_zone="America/New_York",
    )
    make_member(full_name="Other", department="Sales", last_working_day=today + timedelta(days=4))
    make_member(full_name="Outside", last_working_day=today + timedelta(days=40))

    response = manager_client.get(EXPORT, {"days": "10"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == [
        "full_name",
        "email",
        "department",
        "location",
        "last_working_day",
        "time_zone",
        "day_ends_local",
        "day_ends_company",
        "deactivates_automatically",
        "automations",
        "steps",
    ]
    day = (today + timedelta(days=3)).isoformat()
    assert rows[1][:6] == [
        "'=cmd()",
        "x@example.com",
        "Engineering",
        "Berlin",
        day,
        "America/New_York",
    ]
    assert rows[1][6] == f"{day} 23:59 America/New_York"
    assert rows[1][8:10] == ["yes", "Offboard engineers"]
    assert [r[0] for r in rows[1:]] == ["'=cmd()", "Other"]
    assert rows[2][9] == ""


def test_without_view_member_the_page_and_its_csv_are_refused(client, today):
    client.force_login(make_user("licensing"))

    assert client.get(URL).status_code == 403
    assert client.get(EXPORT).status_code == 403


def test_the_navigation_links_the_page_for_viewers(viewer_client, today):
    response = viewer_client.get(URL)

    assert response.status_code == 200
    assert f'href="{URL}" aria-current="page"' in response.content.decode()


def _leavers(count: int, today) -> None:
    Member.objects.bulk_create(
        [
            Member(
                full_name=f"Leaver {n}",
                email=f"leaver{n}@example.com",
                department="Engineering" if n % 2 else "Sales",
                last_working_day=today + timedelta(days=n % 25),
                time_zone="America/New_York" if n % 3 else "",
            )
            for n in range(count)
        ]
    )


@pytest.mark.parametrize("count", [5, 120])
def test_the_page_and_the_csv_have_a_fixed_query_budget(
    manager_client, today, count, django_assert_max_num_queries
):
    make_automation(name="Offboard engineers", conditions=[("department", "is", "Engineering")])
    make_automation(name="Everyone", conditions=[])
    _leavers(count, today)

    # Session, user, permissions (2), the company time zone, departments, locations, the
    # count, the page, and the steps of the page's members (selectors_offboarding: the delayed
    # logs, the automations with their conditions and actions (3), the snapshots (3), the
    # fired triggers (1)).
    with django_assert_max_num_queries(18):
        response = manager_client.get(URL)
    assert len(response.context["rows"]) == min(count, 50)
    with django_assert_max_num_queries(18):
        response = manager_client.get(EXPORT)
    assert len(response.content.decode().splitlines()) == count + 1


def test_the_member_page_shows_the_last_working_day_its_end_the_zone_and_the_option(
    manager_client, today
):
    leaver = make_member(
        last_working_day=today + timedelta(days=3),
        time_zone="America/New_York",
        personal_email="sam@home.example",
    )
    stayer = make_member(deactivate_on_last_day=False)

    html = manager_client.get(leaver.get_absolute_url()).content.decode()
    day = leaver.last_working_day
    assert f"{day:%a} {day.day} {day:%b %Y}</time>, ends 23:59 America/New_York" in html
    assert "(in 3 days)" in html
    assert "Yes, when the last working day ends" in html
    assert "sam@home.example" in html

    html = manager_client.get(stayer.get_absolute_url()).content.decode()
    assert "<dt>Last working day</dt><dd>—</dd>" in html
    assert 'Europe/Berlin <span class="muted">(the company\'s)</span>' in html
    assert "<dt>Deactivated automatically</dt><dd>No</dd>" in html


def test_the_csv_stops_at_its_limit_and_says_so(manager_client, today, monkeypatch):
    from members import views

    monkeypatch.setattr(views, "UPCOMING_EXPORT_LIMIT", 2)
    for n in range(3):
        make_member(full_name=f"L{n}", last_working_day=today + timedelta(days=n))

    rows = list(csv.reader(io.StringIO(manager_client.get(EXPORT).content.decode())))

    assert [r[0] for r in rows[1:]] == ["L0", "L1", "Only the first 2 rows; narrow the dates."]
