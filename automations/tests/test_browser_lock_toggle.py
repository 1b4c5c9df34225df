"""In Chromium: switching on an automation that locks devices from the list's htmx toggle leads
to the page that asks for a one-time password (htmx follows the 403's HX-Redirect), and the
code switches it on; an IT manager without the MDM permission is told why instead."""

from __future__ import annotations

import pytest

from assetsonar import roles
from automations.models import Automation
from automations.tests.browser import needs_chromium
from automations.tests.builder_factories import make_automation, mdm_feature, totp_code, totp_device
from conftest import make_user

pytestmark = needs_chromium


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f"pw-{username}-Secret1")
    page.click("button[type=submit]")
    page.wait_for_load_state()


@pytest.mark.django_db(transaction=True)
def test_the_toggle_of_a_lock_automation_asks_for_a_code_in_chromium(live_server, browser):
    mdm_feature()
    operator = make_user("olga", roles.IT_MANAGER, roles.MDM_OPERATOR)
    make_user("ida", roles.IT_MANAGER)
    device = totp_device(operator)
    lock = make_automation(name="Lock laptops", enabled=False, mdm={"message": "Return"})
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    sign_in(page, live_server.url, "ida")
    page.goto(f"{live_server.url}/automations/")
    page.get_by_role("switch", name="Enabled: Lock laptops").click()
    page.wait_for_url("**/switch-on/**")
    assert "switching it on needs the MDM feature and permission" in page.content()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()

    sign_in(page, live_server.url, "olga")
    page.goto(f"{live_server.url}/automations/")
    page.get_by_role("switch", name="Enabled: Lock laptops").click()
    page.wait_for_url("**/switch-on/**")
    assert page.locator("h1").inner_text() == "Switch on “Lock laptops”?"
    lock.refresh_from_db()
    assert not lock.enabled

    page.fill("#id_otp_token", totp_code(device))
    page.get_by_role("button", name="Confirm and switch on").click()
    page.wait_for_url("**/automations/")
    assert Automation.objects.get(pk=lock.pk).enabled
    assert (
        page.get_by_role("switch", name="Enabled: Lock laptops").get_attribute("aria-checked")
        == "true"
    )
    assert errors == []
