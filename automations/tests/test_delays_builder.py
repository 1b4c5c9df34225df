"""A delay on each action row of the builder ("When it runs": immediately, or minutes, hours or
days after the trigger): saved on the action, validated with specific messages, re-rendered by
htmx and kept without JavaScript, shown in the summary and on the automation page ("after 7
days"), in the history diff, and a lock's delay counts as a change of when it locks (MDM gate)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from automations import delays, services
from automations.actions import ActionSpec
from automations.models import Action, Automation, AutomationChange
from automations.tests.builder_factories import (
    automation_spec,
    builder_data,
    mdm_feature,
    mdm_spec,
    revoke_spec,
)

pytestmark = pytest.mark.django_db


def post_create(client, **row):
    data = builder_data(name="Delayed offboarding")
    for name, value in row.items():
        data[f"actions-0-{name}"] = value
    return client.post(reverse("automations:create"), data)


def test_a_delay_of_7_days_is_saved_and_described(manager_client):
    response = post_create(manager_client, delay_unit="days", delay_amount="7")

    assert response.status_code == 302
    automation = Automation.objects.get(name="Delayed offboarding")
    action = automation.actions.get()
    assert action.delay == timedelta(days=7)
    assert action.delay_label == "after 7 days"
    page = manager_client.get(automation.get_absolute_url()).content.decode()
    assert "revoke user-based licenses after 7 days" in page  # the summary sentence
    assert "Runs after 7 days" in page
    change = AutomationChange.objects.get(automation=automation)
    assert change.diff["Revoke licenses: runs"] == ["", "after 7 days"]


def test_immediately_is_the_default(manager_client):
    assert post_create(manager_client).status_code == 302

    action = Action.objects.get(automation__name="Delayed offboarding")
    assert action.delay == timedelta(0)
    assert action.delay_label == "immediately"


@pytest.mark.parametrize(
    ("unit", "amount", "message"),
    [
        ("days", "366", "A delay is at most 365 days."),
        ("hours", "9000", "A delay is at most 365 days (8,760 hours)."),
        ("minutes", "600000", "A delay is at most 365 days (525,600 minutes)."),
        ("days", "", "Enter how many days after the trigger this action runs (1 to 365)."),
        ("hours", "0", "A delay is at least 1 hour; choose “Immediately” for none."),
        ("days", "seven", "Enter the delay as a whole number, e.g. 7."),
        ("weeks", "2", "Select a valid choice. weeks is not one of the available choices."),
    ],
)
def test_a_bad_delay_says_what_is_wrong_and_nothing_is_saved(manager_client, unit, amount, message):
    response = post_create(manager_client, delay_unit=unit, delay_amount=amount)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Automation.objects.filter(name="Delayed offboarding").exists()


def test_the_service_refuses_a_delay_over_365_days(it_manager):
    too_long = automation_spec(
        name="Too late",
        trigger_module="members",
        trigger_event="member.deactivated",
        revoke=ActionSpec("revoke_licenses", {"user_based": True}, delay=timedelta(days=400)),
    )
    with pytest.raises(services.ValidationError) as refused:
        services.automation_create(actor=it_manager, spec=too_long)
    assert refused.value.message_dict["action-0:delay"] == ["A delay is at most 365 days."]


def test_the_edit_page_shows_the_stored_delay_without_javascript(manager_client):
    post_create(manager_client, delay_unit="hours", delay_amount="48")
    automation = Automation.objects.get(name="Delayed offboarding")
    assert automation.actions.get().delay == timedelta(hours=48)

    page = manager_client.get(reverse("automations:edit", args=[automation.pk])).content.decode()

    # 48 hours reads as 2 days (the largest unit that divides it).
    assert '<option value="days" selected>' in page
    assert 'name="actions-0-delay_amount" id="id_actions-0-delay_amount" min="1"' in page
    assert 'value="2"' in page


def test_htmx_re_renders_the_delay_block_when_the_unit_changes(manager_client):
    url = reverse("automations:builder_action_delay")

    days = manager_client.get(
        url, {"prefix": "actions-0", "actions-0-delay_unit": "days"}, HTTP_HX_REQUEST="true"
    )
    now = manager_client.get(
        url, {"prefix": "actions-0", "actions-0-delay_unit": "immediately"}, HTTP_HX_REQUEST="true"
    )
    typed = manager_client.get(
        url,
        {"prefix": "actions-0", "actions-0-delay_unit": "days", "actions-0-delay_amount": "400"},
        HTTP_HX_REQUEST="true",
    )

    assert days.status_code == 200
    html = days.content.decode()
    assert html.lstrip().startswith('<div class="field delay-field')
    assert 'data-delayed="yes"' in html and "errorlist" not in html  # no error before typing
    assert "Runs as soon as the trigger fires." in now.content.decode()
    assert "A delay is at most 365 days." in typed.content.decode()
    assert manager_client.get(url, {"prefix": "conditions-0"}).status_code == 400


def test_the_live_summary_says_after_the_delay(manager_client):
    data = builder_data(name="Delayed offboarding")
    data.update({"actions-0-delay_unit": "hours", "actions-0-delay_amount": "2"})

    response = manager_client.post(reverse("automations:builder_preview"), data)

    assert "revoke user-based licenses after 2 hours" in response.content.decode()


def test_the_history_shows_a_changed_delay(manager_client):
    post_create(manager_client, delay_unit="days", delay_amount="7")
    automation = Automation.objects.get(name="Delayed offboarding")
    data = builder_data(name="Delayed offboarding", automation=automation)
    data.update({"actions-0-delay_unit": "days", "actions-0-delay_amount": "14"})

    assert (
        manager_client.post(reverse("automations:edit", args=[automation.pk]), data).status_code
        == 302
    )

    change = AutomationChange.objects.filter(automation=automation).latest("pk")
    assert change.kind == AutomationChange.Kind.CHANGED
    assert change.diff["Revoke licenses: runs"] == ["after 7 days", "after 14 days"]


def test_changing_when_a_lock_runs_needs_a_one_time_password(mdm_operator):
    mdm_feature(True)
    spec = automation_spec(
        name="Lock later",
        trigger_module="members",
        trigger_event="member.deactivated",
        revoke=revoke_spec(user_based=True),
        mdm=mdm_spec("Call IT", "+1 555 0100"),
    )
    automation = services.automation_create(
        actor=mdm_operator, spec=spec, otp_verified=True
    ).automation
    before = services.spec_from_automation(automation)
    lock = next(a for a in before.actions if a.kind == "mdm_lock")
    later = type(before)(
        **{
            **before.__dict__,
            "actions": tuple(
                ActionSpec(
                    a.kind,
                    a.config,
                    a.continue_on_error,
                    a.action_id,
                    delay=timedelta(hours=2) if a is lock else a.delay,
                )
                for a in before.actions
            ),
        }
    )

    assert services.lock_change(before, later) == "rescheduled"
    with pytest.raises(services.OTPRequired):
        services.automation_update(automation=automation, actor=mdm_operator, spec=later)
    services.automation_update(
        automation=automation, actor=mdm_operator, spec=later, otp_verified=True
    )
    assert automation.actions.get(kind="mdm_lock").delay == timedelta(hours=2)


def test_delay_words():
    assert delays.label(timedelta(0)) == "immediately"
    assert delays.label(timedelta(minutes=90)) == "after 90 minutes"
    assert delays.label(timedelta(hours=1)) == "after 1 hour"
    assert delays.label(timedelta(days=7)) == "after 7 days"
    assert delays.split(timedelta(days=2)) == (2, "days")
    assert delays.join(3, "hours") == timedelta(hours=3)


def test_the_admin_says_when_an_action_runs(manager_client):
    from django.contrib import admin

    from automations.admin_builder import ActionInline

    post_create(manager_client, delay_unit="days", delay_amount="7")
    action = Action.objects.get(automation__name="Delayed offboarding")

    text = ActionInline(Automation, admin.site).settings(action)

    assert text.endswith(" · runs 7 days after the trigger")
