"""The builder in a real browser (Debian's Chromium driven by Playwright): sign in, build an
automation with two conditions and all three kinds of action (two webhooks, reordered, a third
removed), pass the one-time password step with a code
from the user's authenticator, and find the automation on the list. Saves the screenshot the
README shows (builder.png; see automations/tests/browser.py for where it goes)."""

from __future__ import annotations

import re

import pytest
from django.apps import apps

from assetsonar import roles
from automations.models import Automation
from automations.tests.browser import (
    needs_chromium,
    screenshot,
    settled,
    wait_until,
)
from automations.tests.builder_factories import mdm_feature, totp_code, totp_device
from conftest import make_member, make_user

pytestmark = needs_chromium


@pytest.mark.django_db(transaction=True)
def test_build_an_automation_with_two_conditions_and_all_actions_in_chromium(live_server, browser):
    # A transactional test starts from whatever the previous one flushed: make sure the roles exist.
    roles.sync_roles(apps)
    mdm_feature()
    user = make_user(
        "operator", roles.IT_MANAGER, roles.MDM_OPERATOR, first_name="Olu", last_name="Operator"
    )
    device = totp_device(user)
    for department in ("Engineering", "Finance", "Sales"):
        make_member(department=department)

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "pw-operator-Secret1")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/automations/")
    page.click("text=Create Automation")
    page.wait_for_selector("#builder-form")

    page.fill("#id_name", "Offboard engineers")
    page.fill("#id_description", "Take back licenses and devices when an engineer leaves.")

    # Two conditions, added without a page reload; the second row re-renders for its field.
    page.click("button.add-condition")
    page.wait_for_selector("#id_conditions-0-value")
    settled(page)
    page.fill("#id_conditions-0-value", "Engineering")
    page.click("button.add-condition")
    page.wait_for_selector("#id_conditions-1-field")
    settled(page)
    page.select_option("#id_conditions-1-field", "assets_in_custody")
    page.wait_for_selector("#id_conditions-1-value[type=number]")
    settled(page)
    page.select_option("#id_conditions-1-operator", "greater_than")
    settled(page)
    page.fill("#id_conditions-1-value", "0")
    assert page.input_value("#id_conditions-TOTAL_FORMS") == "2"

    # All three kinds, from the "Add action" menu (htmx re-renders the Actions section).
    def add(kind: str, prefix: str) -> None:
        page.click(f'button[value="add:{kind}"]')
        page.wait_for_selector(f"#action-{prefix}")
        settled(page)

    add("revoke_licenses", "actions-0")
    page.check("#id_actions-0-device_based")
    add("mdm_lock", "actions-1")
    page.fill(
        "#id_actions-1-message", "This laptop belongs to Example Ltd. Please return it to IT."
    )
    page.fill("#id_actions-1-phone", "+1 555 0100")
    # Three webhooks: HR (with a header), ticketing moved up before it, a spare one removed.
    add("webhook", "actions-2")
    page.fill("#id_actions-2-url", "https://127.0.0.1/hooks/offboard")
    page.fill("#id_actions-2-headers-0-name", "Authorization")
    page.fill("#id_actions-2-headers-0-value", "Bearer hr-system-token")
    add("webhook", "actions-3")
    page.fill("#id_actions-3-url", "https://127.0.0.1/ticketing")
    add("webhook", "actions-4")
    page.fill("#id_actions-4-url", "https://127.0.0.1/spare")
    page.click('#action-actions-3 button[value="up:3"]')
    settled(page)
    page.click('#action-actions-4 button[value="remove:4"]')
    page.wait_for_selector("#action-actions-4", state="detached")
    settled(page)
    order = page.eval_on_selector_all(
        "#action-rows .action-card", "cards => cards.map(card => card.id)"
    )
    assert order == ["action-actions-0", "action-actions-1", "action-actions-3", "action-actions-2"]
    assert page.input_value("#id_actions-TOTAL_FORMS") == "5"
    # What was typed survived the re-renders (header values too, never sent back by the server
    # once saved, but kept while the form is being built).
    assert page.input_value("#id_actions-2-headers-0-value") == "Bearer hr-system-token"
    page.click("text=Preview the JSON payload")
    page.click("#id_description")  # leave the last field so its change event fires

    summary = page.locator("#builder-preview .summary-sentence")
    expected = (
        "When a member in Engineering whose number of assets in custody is more than 0 is "
        "deactivated: revoke user-based and device-based licenses, lock their devices through "
        "MDM, call https://127.0.0.1/ticketing, call https://127.0.0.1/hooks/offboard"
    )
    wait_until(
        page,
        "text => document.querySelector('#builder-preview .summary-sentence')"
        ".textContent.trim() === text",
        expected,
    )
    assert summary.inner_text().strip() == expected
    assert '"name": "Offboard engineers"' in page.inner_text("#payload-preview")

    # The screenshot for the README: the whole filled builder, 1280 px wide.
    screenshot(page, "builder.png")

    # Saving asks for the one-time password in a dialog.
    page.click("aside button[name=save]")
    page.wait_for_selector("#otp-dialog[open]")
    assert not Automation.objects.exists()
    page.fill("#id_otp_token", totp_code(device))
    page.click("#otp-dialog button[type=submit]")

    page.wait_for_selector(".secret-panel")
    secret = page.inner_text("#new-secret").strip()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{32}", secret)

    page.click("nav.sidebar >> text=Workflows & Automations")
    row = page.locator("tr", has_text="Offboard engineers")
    row.wait_for()
    assert "A member in Engineering" in row.inner_text()
    assert row.locator('[role="switch"][aria-checked="true"]').count() == 1

    automation = Automation.objects.get(name="Offboard engineers")
    assert automation.conditions.count() == 2
    assert [(a.kind, a.config.get("url")) for a in automation.actions.order_by("position")] == [
        ("revoke_licenses", None),
        ("mdm_lock", None),
        ("webhook", "https://127.0.0.1/ticketing"),
        ("webhook", "https://127.0.0.1/hooks/offboard"),
    ]
    assert automation.changes.get().otp_verified
    assert not errors, errors
