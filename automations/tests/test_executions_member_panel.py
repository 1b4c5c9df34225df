"""The member detail's "Automated actions" panel: what it lists, when it polls, its endpoint."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.template import Context, Template
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from automations.models import ActionLog, Event, Execution
from automations.selectors_executions import MEMBER_PANEL_LIMIT
from automations.tests.execution_factories import (
    make_automation,
    make_event,
    make_execution,
    make_log,
)
from conftest import make_member, make_user

pytestmark = pytest.mark.django_db

POLL = 'hx-trigger="every 2s"'


def panel(client, member) -> str:
    response = client.get(reverse("automations:member_actions_panel", args=[member.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_panel_lists_every_action_for_the_member_newest_first(manager_client):
    member = make_member()
    older = make_execution(member, make_automation(name="Notify HR"))
    newer = make_execution(member, make_automation(name="Offboard leavers"))
    make_log(older, "webhook", target_label="hr.example.com hook")
    make_log(
        newer,
        "mdm_lock",
        target_label="AT-1 · MacBook",
        status=ActionLog.Status.FAILED,
        insight="Device is not enrolled in an MDM",
    )
    make_log(make_execution(make_member()), target_label="Someone else's seat")

    html = panel(manager_client, member)

    assert html.index("AT-1 · MacBook") < html.index("hr.example.com hook")
    assert "Someone else&#x27;s seat" not in html
    assert "Device is not enrolled in an MDM" in html
    assert "Offboard leavers" in html and "Notify HR" in html
    assert reverse("automations:execution_detail", args=[newer.pk]) in html
    assert POLL not in html


@pytest.mark.parametrize(
    ("event_status", "execution_status"),
    [
        (Event.Status.PENDING, None),
        (Event.Status.PROCESSING, None),
        (Event.Status.DONE, Execution.Status.PENDING),
        (Event.Status.DONE, Execution.Status.RUNNING),
    ],
)
def test_panel_polls_while_work_for_the_member_is_unfinished(
    manager_client, event_status, execution_status
):
    member = make_member()
    event = make_event(member, status=event_status)
    if execution_status:
        make_execution(member, event=event, status=execution_status)

    html = panel(manager_client, member)

    assert POLL in html
    assert f'hx-get="{reverse("automations:member_actions_panel", args=[member.pk])}"' in html
    assert 'data-state="running"' in html


@pytest.mark.parametrize("status", ["succeeded", "partially_failed", "failed"])
def test_panel_stops_polling_once_every_execution_finished(manager_client, status):
    member = make_member()
    make_event(member, status=Event.Status.DEAD)
    make_log(make_execution(member, status=status), status=ActionLog.Status.SUCCEEDED)

    html = panel(manager_client, member)

    assert POLL not in html
    assert 'data-state="idle"' in html


def test_panel_is_capped_and_links_to_the_member_executions(manager_client):
    member = make_member()
    execution = make_execution(member)
    for n in range(MEMBER_PANEL_LIMIT + 3):
        make_log(execution, target_label=f"Seat {n:03d}")

    html = panel(manager_client, member)

    # Newest executions first, each one's actions in the order they ran: the cut falls at the
    # end of this (only) execution, whose page lists the rest.
    assert html.count("<tr data-kind=") == MEMBER_PANEL_LIMIT
    assert "Seat 000" in html
    assert f"Seat {MEMBER_PANEL_LIMIT + 2:03d}" not in html
    assert f"{reverse('automations:executions')}?member_id={member.pk}" in html
    assert "Showing the newest" in html


def test_panel_shows_an_empty_state(manager_client):
    html = panel(manager_client, make_member())

    assert "No automated action has been taken for this member." in html


def test_panel_template_tag_hides_the_log_from_users_without_the_permission():
    member = make_member()
    make_log(make_execution(member), target_label="Secret seat")
    request = RequestFactory().get("/")
    request.user = make_user("plain")
    template = Template("{% load automation_tags %}{% automated_actions member %}")

    html = template.render(Context({"member": member, "request": request}))

    assert "Automated actions" in html
    assert "Secret seat" not in html
    assert POLL not in html


def test_member_detail_page_includes_the_panel(manager_client):
    member = make_member()
    make_log(make_execution(member, status="running"), target_label="Figma seat")

    response = manager_client.get(reverse("members:detail", args=[member.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="automated-actions"' in html
    assert "Figma seat" in html
    assert POLL in html


@pytest.mark.parametrize("size", [2, 40])
def test_panel_query_budget(manager_client, django_assert_max_num_queries, size):
    member = make_member()
    for n in range(size):
        execution = make_execution(member, created_at=timezone.now() - timedelta(minutes=n))
        make_log(execution, "webhook")
        make_log(execution, "revoke_licenses")

    # Session, user, user and group permissions, member, its execution ids, logs, "still
    # running?".
    with django_assert_max_num_queries(8):
        panel(manager_client, member)


def test_the_poll_that_sees_the_work_finish_tells_the_member_page_to_reload_its_sections(
    manager_client,
):
    member = make_member()
    execution = make_execution(member, status=Execution.Status.RUNNING)
    url = reverse("automations:member_actions_panel", args=[member.pk])

    running = manager_client.get(url, headers={"HX-Request": "true"})
    assert "HX-Trigger" not in running.headers

    execution.status = Execution.Status.SUCCEEDED
    execution.save()
    finished = manager_client.get(url, headers={"HX-Request": "true"})
    assert finished.headers["HX-Trigger"] == "automations-finished"

    page = manager_client.get(reverse("members:detail", args=[member.pk])).content.decode()
    assert 'hx-trigger="automations-finished from:body"' in page
    assert 'id="member-banner"' in page and 'hx-select="#member-sections"' in page
