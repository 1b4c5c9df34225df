"""An IT manager connects an identity provider in Chromium: the Provisioning page from the
navigation, a token shown once, the identity provider's failing request listed first, revoke."""

from __future__ import annotations

import pytest
import requests
from django.apps import apps

from assetsonar import roles
from automations.tests.browser import needs_chromium, screenshot
from conftest import make_member, make_user
from provisioning.models import ScimToken

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]


def test_it_manager_creates_a_token_sees_the_requests_and_revokes_it(live_server, browser):
    roles.sync_roles(apps)
    make_user("ida", roles.IT_MANAGER, first_name="Ida", last_name="Manager")
    member = make_member(full_name="Jordan Rivera")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "ida")
    page.fill("#id_password", "pw-ida-Secret1")
    page.click("button[type=submit]")
    page.click("nav.sidebar >> text=Provisioning")
    page.wait_for_selector("h1:has-text('Provisioning')")
    assert f"{live_server.url}/scim/v2" in page.inner_text("body")

    page.fill("#id_name", "Okta production")
    page.click("button:has-text('Create token')")
    secret = page.inner_text("[data-testid=new-secret]").strip()
    assert ScimToken.objects.get().name == "Okta production"

    base = f"{live_server.url}/scim/v2"
    headers = {"Authorization": f"Bearer {secret}"}
    assert requests.get(f"{base}/Users/{member.pk}", headers=headers, timeout=10).ok
    bad = requests.get(f'{base}/Users?filter=nickName eq "x"', headers=headers, timeout=10)
    assert bad.status_code == 400

    page.goto(f"{live_server.url}/provisioning/")
    assert page.locator("[data-testid=new-secret]").count() == 0  # shown once
    rows = page.locator("table tbody tr")
    assert "400" in rows.nth(0).inner_text()
    assert "Filtering on “nickName” is not supported" in rows.nth(0).inner_text()
    assert "Jordan Rivera" in rows.nth(1).inner_text()
    screenshot(page, "provisioning.png")

    page.click("button:has-text('Revoke')")
    page.wait_for_selector("text=is revoked")
    assert requests.get(f"{base}/Users", headers=headers, timeout=10).status_code == 401
    assert errors == []
