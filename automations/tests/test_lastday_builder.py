"""The builder side of the "Member's last working day" trigger (issue 10): the "When it fires"
fieldset (only for that trigger, re-rendered by htmx), what is stored, the messages for bad or
hand-made input, editing, the one-time password for a lock automation, the history, the admin,
the page without JavaScript, the live summary, and the list and automation pages."""

from __future__ import annotations

from datetime import date, timedelta
from html import unescape

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from automations import services
from automations.models import Automation, AutomationChange
from automations.tests.builder_factories import (
    builder_data,
    make_automation,
    mdm_feature,
    totp_code,
    totp_device,
)
from conftest import make_member

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
LWD = "member.last_working_day"
LOCK = {"message": "Return to IT", "phone": "+1 555 0100"}
TWO_DAYS_BEFORE = {"trigger-when": "before", "trigger-days": "2", "trigger-at": "09:00"}
SENTENCE = (
    "When a member in Engineering is 2 days before their last working day (at 09:00 their "
    "time): revoke user-based licenses"
)


def text_of(response) -> str:
    return unescape(response.content.decode())


def lwd_data(**kwargs):
    """A builder POST with the last working day trigger, 2 days before at 09:00 by default."""
    fields = {**TWO_DAYS_BEFORE, **kwargs.pop("trigger", {})}
    return builder_data(trigger_event=LWD, **kwargs, **fields)


def create(client, **kwargs):
    return client.post(reverse("automations:create"), lwd_data(**kwargs))


def lwd_automation(*, options=None, **kwargs) -> Automation:
    automation = make_automation(trigger_event=LWD, **kwargs)
    automation.trigger_options = options or {"offset_days": -2, "at": "09:00"}
    automation.save()
    return automation


# --- The fieldset, only for that trigger -------------------------------------------------------


def test_choosing_the_last_working_day_shows_when_it_fires_with_its_defaults(manager_client):
    response = manager_client.get(
        reverse("automations:builder_trigger_events"),
        {"trigger_module": "members", "trigger_event": LWD},
        headers=HTMX,
    )

    text = response.text
    assert response.status_code == 200
    assert text.strip().startswith('<div class="trigger-event-group" id="trigger-event-field">')
    assert '<fieldset class="trigger-options" id="trigger-options">' in text
    assert "<legend>When it fires</legend>" in text
    assert f'<option value="{LWD}" selected>' in text
    assert '<option value="on" selected>on the day</option>' in text
    assert 'name="trigger-at" value="18:00"' in text
    assert 'name="trigger-days"' in text
    assert "errorlist" not in text  # just chosen: nothing to correct yet


@pytest.mark.parametrize("event", ["member.deactivated", "member.reactivated"])
def test_other_trigger_actions_have_no_fieldset(manager_client, event):
    response = manager_client.get(
        reverse("automations:builder_trigger_events"),
        {"trigger_module": "members", "trigger_event": event},
        headers=HTMX,
    )

    assert f'<option value="{event}" selected>' in response.text
    assert 'id="trigger-options"' not in response.text
    assert 'name="trigger-' not in response.text


def test_a_new_automation_starts_without_the_fieldset(manager_client):
    page = manager_client.get(reverse("automations:create")).text

    assert 'id="trigger-options"' not in page
    assert f'<option value="{LWD}">Member&#x27;s last working day</option>' in page


# --- Saving -------------------------------------------------------------------------------------


def test_saving_two_days_before_at_nine_stores_the_offset_and_time(manager_client):
    response = create(manager_client)

    assert response.status_code == 302, text_of(response)
    automation = Automation.objects.get()
    assert automation.trigger_event == LWD
    assert automation.trigger_options == {"offset_days": -2, "at": "09:00"}
    change = automation.changes.get()
    assert change.diff["Trigger"] == [
        "",
        "Members › Member's last working day (2 days before their last working day, at 09:00 "
        "their time)",
    ]


@pytest.mark.parametrize(
    ("fields", "stored"),
    [
        ({"trigger-when": "after", "trigger-days": "7"}, {"offset_days": 7, "at": "09:00"}),
        (
            {"trigger-when": "on", "trigger-days": "", "trigger-at": "18:00"},
            {"offset_days": 0, "at": "18:00"},
        ),
        # "on the day" ignores a number left in Days, whatever it is, as the help says.
        ({"trigger-when": "on", "trigger-days": "0"}, {"offset_days": 0, "at": "09:00"}),
        ({"trigger-when": "on", "trigger-days": "400"}, {"offset_days": 0, "at": "09:00"}),
        ({"trigger-when": "before", "trigger-days": "90"}, {"offset_days": -90, "at": "09:00"}),
        # Seconds from a time input are dropped: the trigger runs on the minute.
        ({"trigger-at": "17:30:00"}, {"offset_days": -2, "at": "17:30"}),
    ],
)
def test_other_offsets_are_stored_as_signed_days(manager_client, fields, stored):
    response = create(manager_client, trigger=fields)

    assert response.status_code == 302, text_of(response)
    assert Automation.objects.get().trigger_options == stored


BAD = {
    "before without days": (
        {"trigger-when": "before", "trigger-days": ""},
        "Say how many days before the last working day (1 to 90).",
    ),
    "after without days": (
        {"trigger-when": "after", "trigger-days": ""},
        "Say how many days after the last working day (1 to 90).",
    ),
    "zero days": (
        {"trigger-when": "before", "trigger-days": "0"},
        "Enter 1 to 90 days before the last working day (for the day itself, choose “on the day”).",
    ),
    "91 days": (
        {"trigger-when": "after", "trigger-days": "91"},
        "Enter 1 to 90 days after the last working day (for the day itself, choose “on the day”).",
    ),
    "negative days": (
        {"trigger-when": "after", "trigger-days": "-3"},
        "Enter 1 to 90 days after the last working day",
    ),
    "days not a number": (
        {"trigger-days": "two"},
        "Enter the number of days as a whole number, e.g. 2.",
    ),
    "a bad time": ({"trigger-at": "25:00"}, "Enter a time of day such as 18:00."),
    "a time in words": ({"trigger-at": "teatime"}, "Enter a time of day such as 18:00."),
    "no time": ({"trigger-at": ""}, "Enter the time of day it fires, such as 18:00."),
    "tampered direction": (
        {"trigger-when": "sideways"},
        "Choose days before, on the day, or days after the last working day.",
    ),
}


@pytest.mark.parametrize(("fields", "message"), BAD.values(), ids=BAD.keys())
def test_bad_settings_get_a_specific_message_and_nothing_is_saved(manager_client, fields, message):
    response = create(manager_client, trigger=fields)

    assert response.status_code == 200
    text = text_of(response)
    assert message in text
    assert 'id="trigger-options"' in text
    assert "Please correct the highlighted parts; nothing was saved." in text
    assert not Automation.objects.exists()
    assert not AutomationChange.objects.exists()


def test_settings_posted_with_another_trigger_are_ignored(manager_client):
    response = manager_client.post(
        reverse("automations:create"), builder_data(name="Plain", **TWO_DAYS_BEFORE)
    )

    assert response.status_code == 302
    automation = Automation.objects.get()
    assert automation.trigger_event == "member.deactivated"
    assert automation.trigger_options == {}


@pytest.mark.parametrize(
    ("event", "options", "message"),
    [
        (LWD, {"offset_days": 500, "at": "09:00"}, "at most 90 days before or after"),
        (LWD, {"offset_days": True, "at": "09:00"}, "at most 90 days before or after"),
        (LWD, {"offset_days": -2, "at": "9 am"}, "Enter the trigger's time of day such as 18:00."),
        (LWD, {"offset_days": -2, "at": "09:00", "x": 1}, "settings are not understood"),
        (LWD, ["offset_days"], "settings are not understood"),
        ("member.deactivated", {"offset_days": 1}, "This trigger has no settings of its own."),
    ],
)
def test_the_services_refuse_settings_the_form_would_not_make(it_manager, event, options, message):
    spec = services.AutomationSpec(
        name="Crafted",
        trigger_module="members",
        trigger_event=event,
        trigger_options=options,
        actions=(services.ActionSpec(kind="revoke_licenses", config={"user_based": True}),),
    )

    with pytest.raises(ValidationError) as caught:
        services.automation_create(actor=it_manager, spec=spec)

    assert any(message in m for m in caught.value.message_dict["trigger_options"])
    assert not Automation.objects.exists()


# --- Without JavaScript -------------------------------------------------------------------------


def test_without_javascript_choosing_the_trigger_brings_the_fields_back_and_saves_nothing(
    manager_client,
):
    # The select changed with JavaScript off: the page was posted without the trigger-* fields.
    response = manager_client.post(reverse("automations:create"), builder_data(trigger_event=LWD))

    assert response.status_code == 200
    text = text_of(response)
    assert "This trigger has settings of its own: check when it fires, then save again." in text
    assert '<fieldset class="trigger-options" id="trigger-options">' in text
    assert '<option value="on" selected>on the day</option>' in text
    assert 'name="trigger-at" value="18:00"' in text
    assert not Automation.objects.exists()

    # Posting the page as it came back saves it, at the defaults shown.
    again = manager_client.post(
        reverse("automations:create"),
        builder_data(trigger_event=LWD, **{"trigger-when": "on", "trigger-at": "18:00"}),
    )
    assert again.status_code == 302
    assert Automation.objects.get().trigger_options == {"offset_days": 0, "at": "18:00"}


# --- Editing ------------------------------------------------------------------------------------


def edit(client, automation: Automation, trigger=None, **changes):
    fields = {"name": automation.name, "initial_conditions": 1, **changes}
    return client.post(
        reverse("automations:edit", args=[automation.pk]),
        lwd_data(automation=automation, trigger=trigger or {}, **fields),
    )


def test_the_edit_page_shows_the_stored_settings(manager_client):
    automation = lwd_automation(name="Tell the manager")

    page = manager_client.get(reverse("automations:edit", args=[automation.pk])).text

    assert '<option value="before" selected>days before</option>' in page
    assert 'name="trigger-days" value="2"' in page
    assert 'name="trigger-at" value="09:00"' in page
    assert "errorlist" not in page


def test_saving_unchanged_settings_changes_nothing(manager_client):
    automation = lwd_automation(name="Tell the manager")

    response = edit(manager_client, automation)

    assert response.status_code == 302
    automation.refresh_from_db()
    assert automation.trigger_options == {"offset_days": -2, "at": "09:00"}
    assert not automation.changes.exists()
    follow = manager_client.get(response.url)
    assert "Nothing changed, so nothing was saved." in follow.text


def test_changing_the_offset_is_saved_and_the_history_says_it_in_words(manager_client):
    automation = lwd_automation(name="Tell the manager")

    response = edit(
        manager_client, automation, trigger={"trigger-when": "after", "trigger-days": "7"}
    )

    assert response.status_code == 302
    automation.refresh_from_db()
    assert automation.trigger_options == {"offset_days": 7, "at": "09:00"}
    change = automation.changes.get()
    assert change.diff == {
        "Trigger": [
            "Members › Member's last working day (2 days before their last working day, at "
            "09:00 their time)",
            "Members › Member's last working day (7 days after their last working day, at "
            "09:00 their time)",
        ]
    }
    page = manager_client.get(automation.get_absolute_url()).text
    assert "7 days after their last working day, at 09:00 their time" in unescape(page)


def test_switching_an_automation_to_another_trigger_drops_its_settings(manager_client):
    automation = lwd_automation(name="Tell the manager")

    response = manager_client.post(
        reverse("automations:edit", args=[automation.pk]),
        builder_data(automation=automation, name=automation.name, initial_conditions=1),
    )

    assert response.status_code == 302
    automation.refresh_from_db()
    assert automation.trigger_event == "member.deactivated"
    assert automation.trigger_options == {}
    assert automation.changes.get().diff["Trigger"][1] == "Members › Member is deactivated"


# --- A lock automation: the one-time password ---------------------------------------------------


@pytest.fixture
def operator_client(client, mdm_operator):
    client.force_login(mdm_operator)
    return client


def lock_automation() -> Automation:
    mdm_feature()
    return lwd_automation(name="Lock laptops", mdm=LOCK)


def test_an_it_manager_without_mdm_cannot_move_when_a_lock_automation_fires(manager_client):
    automation = lock_automation()

    response = edit(manager_client, automation, mdm=LOCK, trigger={"trigger-days": "3"})

    assert response.status_code == 403
    assert "changes whom or when this automation locks devices" in text_of(response)
    automation.refresh_from_db()
    assert automation.trigger_options == {"offset_days": -2, "at": "09:00"}
    assert not automation.changes.exists()


@pytest.mark.parametrize(
    "fields",
    [{"trigger-days": "3"}, {"trigger-at": "18:00"}, {"trigger-when": "on"}],
    ids=["days", "time", "direction"],
)
def test_moving_when_a_lock_automation_fires_needs_a_one_time_password(
    operator_client, mdm_operator, fields
):
    automation = lock_automation()
    device = totp_device(mdm_operator)

    asked = edit(operator_client, automation, mdm=LOCK, trigger=fields)

    assert asked.status_code == 200
    assert '<dialog id="otp-dialog"' in asked.text
    assert "changes whom or when this automation locks devices" in text_of(asked)
    automation.refresh_from_db()
    assert automation.trigger_options == {"offset_days": -2, "at": "09:00"}

    wrong = edit(operator_client, automation, mdm=LOCK, trigger=fields, otp_token="000000")
    assert wrong.status_code == 200 and 'id="otp-error"' in wrong.text
    automation.refresh_from_db()
    assert automation.trigger_options == {"offset_days": -2, "at": "09:00"}

    device.refresh_from_db()
    device.throttling_failure_count = 0  # the wrong code above throttles the next try
    device.save()
    saved = edit(operator_client, automation, mdm=LOCK, trigger=fields, otp_token=totp_code(device))
    assert saved.status_code == 302
    automation.refresh_from_db()
    assert automation.trigger_options != {"offset_days": -2, "at": "09:00"}
    change = automation.changes.get()
    assert change.otp_verified
    assert "Trigger" in change.diff


def test_a_lock_automation_with_the_same_settings_needs_no_password(operator_client, mdm_operator):
    automation = lock_automation()
    totp_device(mdm_operator)

    response = edit(operator_client, automation, mdm=LOCK, description="Leavers' laptops")

    assert response.status_code == 302
    automation.refresh_from_db()
    assert automation.description == "Leavers' laptops"


def test_the_services_refuse_a_moved_lock_without_a_password(mdm_operator):
    automation = lock_automation()
    spec = services.spec_from_automation(automation)
    moved = services.AutomationSpec(
        **{**spec.__dict__, "trigger_options": {"offset_days": -3, "at": "09:00"}}
    )

    assert services.lock_change(spec, moved) == "retargeted"
    with pytest.raises(services.OTPRequired):
        services.automation_update(automation=automation, actor=mdm_operator, spec=moved)
    automation.refresh_from_db()
    assert automation.trigger_options == {"offset_days": -2, "at": "09:00"}


# --- Admin --------------------------------------------------------------------------------------


def test_the_admin_change_page_shows_when_it_fires(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-Secret1")
    client.force_login(user)
    automation = lwd_automation(name="Tell the manager")
    plain = make_automation(name="On deactivation")

    page = text_of(client.get(reverse("admin:automations_automation_change", args=[automation.pk])))
    other = text_of(client.get(reverse("admin:automations_automation_change", args=[plain.pk])))

    assert "When it fires" in page
    assert "2 days before their last working day, at 09:00 their time" in page
    assert "When it fires" in other and "When the member is deactivated" in other


# --- The live summary ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "phrase"),
    [
        (TWO_DAYS_BEFORE, "is 2 days before their last working day (at 09:00 their time)"),
        (
            {"trigger-when": "before", "trigger-days": "1", "trigger-at": "09:00"},
            "is 1 day before their last working day (at 09:00 their time)",
        ),
        (
            {"trigger-when": "on", "trigger-days": "", "trigger-at": "18:00"},
            "reaches their last working day (at 18:00 their time)",
        ),
        (
            {"trigger-when": "after", "trigger-days": "7", "trigger-at": "09:00"},
            "is 7 days past their last working day (at 09:00 their time)",
        ),
    ],
)
def test_the_live_summary_says_when_it_fires(manager_client, fields, phrase):
    data = builder_data(trigger_event=LWD, **fields)

    response = manager_client.post(reverse("automations:builder_preview"), data, headers=HTMX)

    assert response.status_code == 200
    assert f"When a member in Engineering {phrase}: revoke user-based licenses" in text_of(response)
    assert not Automation.objects.exists()


def test_the_live_summary_of_a_just_chosen_trigger_says_its_defaults(manager_client):
    # The summary is asked for while the fieldset is still on its way: no trigger-* fields.
    data = builder_data(trigger_event=LWD)

    response = manager_client.post(reverse("automations:builder_preview"), data, headers=HTMX)

    assert "When a member in Engineering reaches their last working day (at 18:00 their time)" in (
        text_of(response)
    )


def test_the_live_summary_leaves_out_unfinished_settings(manager_client):
    # "days before" chosen, the number not typed yet: no settings nobody typed in the sentence.
    data = builder_data(trigger_event=LWD, **{**TWO_DAYS_BEFORE, "trigger-days": ""})

    text = text_of(manager_client.post(reverse("automations:builder_preview"), data, headers=HTMX))

    assert (
        "When a member in Engineering reaches their last working day: revoke user-based "
        "licenses" in text
    )
    assert "“When it fires” is unfinished: left out until it is complete." in text
    assert "18:00" not in text and "errorlist" not in text


def test_the_builder_page_summary_says_when_it_fires(manager_client):
    automation = lwd_automation(name="Tell the manager")

    page = text_of(manager_client.get(reverse("automations:edit", args=[automation.pk])))

    assert SENTENCE in page


# --- The list and the automation page -----------------------------------------------------------


def test_the_list_and_the_automation_page_say_the_sentence(manager_client):
    automation = lwd_automation(name="Tell the manager")

    listing = text_of(manager_client.get(reverse("automations:list")))
    page = text_of(manager_client.get(automation.get_absolute_url()))

    assert SENTENCE in listing
    assert SENTENCE in page
    assert (
        "<dt>When it fires</dt><dd>2 days before their last working day, at 09:00 their time"
        in (page)
    )


@pytest.mark.parametrize(
    ("options", "conditions", "enabled", "expected"),
    [
        (
            {"offset_days": -2, "at": "09:00"},
            None,
            True,
            "Not run yet. It runs 2 days before each matching member's last working day, at "
            "09:00 their time.",
        ),
        (
            {"offset_days": 0, "at": "18:00"},
            [],
            False,
            "Not run yet. It runs on each member's last working day, at 18:00 their time, once "
            "it is enabled.",
        ),
        (
            {"offset_days": 1, "at": "08:15"},
            None,
            True,
            "Not run yet. It runs 1 day after each matching member's last working day, at 08:15 "
            "their time.",
        ),
    ],
)
def test_the_automation_page_says_when_it_will_run(
    manager_client, options, conditions, enabled, expected
):
    automation = lwd_automation(
        name="Tell the manager", options=options, conditions=conditions, enabled=enabled
    )

    page = text_of(manager_client.get(automation.get_absolute_url()))

    assert expected in page
    assert "deactivated" not in page.split('aria-labelledby="runs-h"')[1].split("</section>")[0]


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            "member.deactivated",
            "Not run yet. It runs when a member is deactivated and matches its conditions.",
        ),
        ("member.reactivated", "Not run yet. It runs when a member is reactivated and matches"),
    ],
)
def test_the_automation_page_of_other_triggers_still_says_the_event(
    manager_client, event, expected
):
    automation = make_automation(name="Plain", trigger_event=event)

    assert expected in text_of(manager_client.get(automation.get_absolute_url()))


def test_who_it_would_run_for_is_the_matching_members_with_a_day_ahead(manager_client):
    today = timezone.now().date()
    # Due today (2 days before), due in 28 days; no day; another department; two days whose
    # "2 days before" is past: nothing more fires for them.
    make_member(full_name="Ada Leaving", last_working_day=today + timedelta(days=2))
    make_member(full_name="Bo Later", last_working_day=today + timedelta(days=30))
    make_member(full_name="Cy Staying")
    make_member(full_name="Di Sales", department="Sales", last_working_day=today + timedelta(2))
    make_member(full_name="Ed Gone", last_working_day=today)
    make_member(full_name="Flo Long Gone", last_working_day=date(2020, 1, 31))
    automation = lwd_automation(name="Tell the manager")

    page = text_of(manager_client.get(automation.get_absolute_url()))
    full = text_of(manager_client.get(reverse("automations:audience", args=[automation.pk])))

    expected = (
        "members with a last working day set match its conditions now: it would run for each "
        "of them 2 days before their last working day, at 09:00 their time."
    )
    for text in (page, full):
        assert expected in text
        assert "<strong>2</strong>" in text
        members = text.split("audience-members")[1].split("</ul>")[0]
        assert "Ada Leaving" in members and "Bo Later" in members
        assert "Cy Staying" not in members and "Di Sales" not in members
        assert "Ed Gone" not in members and "Flo Long Gone" not in members
        assert "if they were deactivated" not in text


def test_who_it_would_run_for_counts_days_after_that_are_still_to_come(manager_client):
    today = timezone.now().date()
    make_member(
        full_name="Fay Left", department="Engineering", last_working_day=today - timedelta(days=3)
    )
    automation = lwd_automation(
        name="Take licenses back", options={"offset_days": 7, "at": "09:00"}
    )

    page = text_of(manager_client.get(automation.get_absolute_url()))

    assert (
        "1</strong> member with a last working day set matches its conditions now: it would run "
        "for them 7 days after their last working day, at 09:00 their time."
    ) in page
    assert "Fay Left" in page


def test_who_it_would_run_for_says_when_nobody_has_a_day(manager_client):
    make_member(full_name="Cy Staying", department="Engineering")
    automation = lwd_automation(name="Tell the manager")

    page = text_of(manager_client.get(automation.get_absolute_url()))

    assert "No member with a last working day set matches its conditions now." in page


@pytest.mark.parametrize("leavers", [2, 40])
def test_its_automation_and_audience_pages_have_a_fixed_query_budget(
    manager_client, django_assert_max_num_queries, leavers
):
    ahead = timezone.now().date() + timedelta(days=10)
    for _ in range(leavers):
        make_member(last_working_day=ahead)
    automation = lwd_automation(name="Tell the manager")

    with django_assert_max_num_queries(12):
        page = manager_client.get(automation.get_absolute_url())
    # The budgets of a deactivation automation's pages (test_preview.py): the day adds none.
    with django_assert_max_num_queries(10):
        full = manager_client.get(reverse("automations:audience", args=[automation.pk]))

    assert f"<strong>{leavers}</strong> members with a last working day set" in text_of(page)
    assert f"<strong>{leavers}</strong> members with a last working day set" in text_of(full)
