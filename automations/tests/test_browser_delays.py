"""A delay set in the builder in a real browser (Debian's Chromium driven by Playwright): the
"When it runs" select re-renders its block with htmx, the live summary says "after 7 days", and
the saved automation's page says when the action runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.apps import apps

from assetsonar import roles
from automations.models import Action
from automations.tests.browser import needs_chromium, settled, wait_until
from conftest import make_user

pytestmark = needs_chromium


@pytest.mark.django_db(transaction=True)
def test_set_a_delay_of_7_days_in_chromium(live_server, browser):
    roles.sync_roles(apps)
    make_user("planner", roles.IT_MANAGER)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "planner")
    page.fill("#id_password", "pw-planner-Secret1")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/automations/new/")
    page.wait_for_selector("#builder-form")
    page.fill("#id_name", "Revoke a week later")
    page.click("button.kind-choice[data-kind=revoke_licenses]")
    page.wait_for_selector("#id_actions-0-delay_unit")
    settled(page)
    page.check("#id_actions-0-user_based")
    assert "Runs as soon as the trigger fires." in page.inner_text("#actions-0-delay")

    page.select_option("#id_actions-0-delay_unit", "days")
    wait_until(
        page,
        "() => document.querySelector('#actions-0-delay').dataset.delayed === 'yes'",
    )
    settled(page)
    page.fill("#id_actions-0-delay_amount", "7")
    page.press("#id_actions-0-delay_amount", "Tab")
    wait_until(
        page,
        "() => document.querySelector('#builder-preview').innerText.includes('after 7 days')",
    )
    settled(page)
    page.click(".side-actions button[name=save]")
    page.wait_for_selector(".summary-sentence")

    assert "Runs after 7 days" in page.inner_text("body")
    assert Action.objects.get(automation__name="Revoke a week later").delay == timedelta(days=7)
    assert errors == []
