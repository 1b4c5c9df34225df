"""The "Member's last working day" trigger set in the builder in a real browser (Debian's Chromium
driven by Playwright): choosing it brings the "When it fires" fieldset (htmx), which goes away
for another trigger action; 2 days before at 09:00 is said by the live summary, saved as
{"offset_days": -2, "at": "09:00"}, and the automation page says the sentence."""

from __future__ import annotations

import pytest
from django.apps import apps

from assetsonar import roles
from automations.models import Automation
from automations.tests.browser import needs_chromium, screenshot, settled, wait_until
from conftest import make_user

pytestmark = needs_chromium

SENTENCE = (
    "When any member is 2 days before their last working day (at 09:00 their time): "
    "revoke user-based licenses"
)


@pytest.mark.django_db(transaction=True)
def test_set_two_days_before_the_last_working_day_in_chromium(live_server, browser):
    roles.sync_roles(apps)
    make_user("planner", roles.IT_MANAGER)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "planner")
    page.fill("#id_password", "pw-planner-Secret1")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/automations/new/")
    page.wait_for_selector("#builder-form")
    page.fill("#id_name", "Tell IT two days ahead")
    assert page.locator("#trigger-options").count() == 0

    # Choosing the trigger action brings its settings, at their defaults.
    page.select_option("#id_trigger_event", "member.last_working_day")
    page.wait_for_selector("#trigger-options")
    settled(page)
    assert page.inner_text("#trigger-options legend") == "When it fires"
    assert page.input_value("#id_trigger-when") == "on"
    assert page.input_value("#id_trigger-at") == "18:00"
    assert page.inner_text("label[for=id_trigger-at]").startswith("At (their local time)")

    # Another trigger action takes them away, and choosing it again brings them back.
    page.select_option("#id_trigger_event", "member.deactivated")
    wait_until(page, "() => !document.querySelector('#trigger-options')")
    settled(page)
    page.select_option("#id_trigger_event", "member.last_working_day")
    page.wait_for_selector("#trigger-options")
    settled(page)

    page.fill("#id_trigger-days", "2")
    page.select_option("#id_trigger-when", "before")
    page.fill("#id_trigger-at", "09:00")
    page.press("#id_trigger-at", "Tab")
    settled(page)

    page.click("button.kind-choice[data-kind=revoke_licenses]")
    page.wait_for_selector("#id_actions-0-user_based")
    settled(page)
    page.check("#id_actions-0-user_based")
    wait_until(
        page,
        "(sentence) => document.querySelector('#builder-preview').innerText.includes(sentence)",
        SENTENCE,
    )
    settled(page)
    screenshot(page, "builder-last-working-day.png")  # test-artifacts/, to look at
    page.click(".side-actions button[name=save]")
    page.wait_for_selector(".summary-card .summary-sentence")

    assert page.inner_text(".summary-card .summary-sentence") == SENTENCE
    body = page.inner_text("body")
    assert "2 days before their last working day, at 09:00 their time" in body
    assert "It runs 2 days before each member's last working day, at 09:00 their time." in body
    automation = Automation.objects.get(name="Tell IT two days ahead")
    assert automation.trigger_event == "member.last_working_day"
    assert automation.trigger_options == {"offset_days": -2, "at": "09:00"}
    assert errors == []
