"""The dashboard and the members list in Chromium, on the demo company `make run` loads: what an
IT manager sees first. Saves the README's dashboard.png and members.png (see browser.py; the
offboarding and builder tests save the other four). It lives here for the `browser` fixture.

Also: every picture the README shows is one a browser test saves, so none goes stale unnoticed.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse

from assetsonar import roles
from automations.tests.browser import needs_chromium, screenshot, settled
from conftest import make_user
from members.models import Member

ROOT = Path(settings.BASE_DIR)


def test_every_readme_screenshot_is_saved_by_a_browser_test():
    shown = set(re.findall(r"docs/screenshots/([\w-]+\.png)", (ROOT / "README.md").read_text()))
    saved = set()
    for path in (ROOT / "automations" / "tests").glob("test_browser_*.py"):
        saved |= set(re.findall(r'screenshot\(page, "([\w-]+\.png)"\)', path.read_text()))
    assert len(shown) == 6
    assert shown - saved == set()


@needs_chromium
@pytest.mark.django_db(transaction=True)
def test_dashboard_and_members_list_on_the_demo_company(live_server, browser):
    roles.sync_roles(apps)  # a transactional test starts from whatever the previous one flushed
    call_command("seed_demo", "--if-empty", stdout=io.StringIO())
    make_user("ida", roles.IT_MANAGER, first_name="Ida", last_name="Manager")
    active = Member.objects.active().count()
    deactivated = Member.objects.deactivated().count()

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "ida")
    page.fill("#id_password", "pw-ida-Secret1")
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Dashboard')")
    settled(page)

    figures = dict(
        zip(
            page.locator(".stat .label").all_inner_texts(),
            page.locator(".stat .value").all_inner_texts(),
            strict=True,
        )
    )
    assert figures["Active members"] == f"{active:,}"
    assert figures["Deactivated members"] == f"{deactivated:,}"
    assert page.locator("#holding-h").is_visible()
    assert page.locator("#seats-h").is_visible()
    screenshot(page, "dashboard.png")

    page.goto(f"{live_server.url}{reverse('members:list')}")
    page.wait_for_selector("table.members-table tbody tr")
    settled(page)
    total = Member.objects.count()
    assert page.get_by_text(f"{total:,} members", exact=True).is_visible()
    first = Member.objects.order_by("full_name", "id").first()
    first_row = page.locator("table.members-table tbody tr").first.inner_text()
    assert first_row.strip().startswith(first.full_name)
    screenshot(page, "members.png")
    assert errors == []
