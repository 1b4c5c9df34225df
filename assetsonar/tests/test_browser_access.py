"""In Chromium: a user without a role signs in and sees one page saying they have no access yet
and whom to ask, with an empty navigation; a user allowed only licenses sees only Dashboard and
Licenses, and a dashboard of license figures only."""

from __future__ import annotations

from django.contrib.auth.models import Permission

from automations.tests.browser import needs_chromium
from conftest import make_license, make_member, make_user

pytestmark = needs_chromium


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f"pw-{username}-Secret1")
    page.click("button[type=submit]")
    page.wait_for_load_state()


def nav_links(page) -> list[str]:
    return [text.strip() for text in page.locator("nav.sidebar ul a").all_inner_texts()]


def test_no_role_and_a_single_permission_in_chromium(live_server, browser):
    make_user(
        "root",
        is_superuser=True,
        is_staff=True,
        first_name="Ada",
        last_name="Admin",
        email="ada@example.com",
    )
    make_user("newcomer")
    licensing = make_user("licensing")
    licensing.user_permissions.add(
        Permission.objects.get(content_type__app_label="licenses", codename="view_license")
    )
    make_member(full_name="Secret Person")
    make_license(name="Figma")

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    sign_in(page, live_server.url, "newcomer")
    assert page.locator("h1").inner_text() == "You have no access yet"
    assert page.get_by_role("link", name="ada@example.com").is_visible()
    assert "Ada Admin" in page.locator("main").inner_text()
    assert nav_links(page) == []
    assert "Secret Person" not in page.content()

    # Any other address gives the same page.
    page.goto(f"{live_server.url}/members/")
    assert page.locator("h1").inner_text() == "You have no access yet"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    sign_in(page, live_server.url, "licensing")
    assert nav_links(page) == ["Dashboard", "Licenses"]
    main = page.locator("main").inner_text()
    assert "Seat use" in main and "Figma" in main
    assert "Active members" not in main and "Assets in custody" not in main
    page.locator("nav.sidebar").get_by_role("link", name="Licenses").click()
    page.wait_for_load_state()
    assert page.locator("h1").first.inner_text().startswith("Licenses")
    assert errors == []
