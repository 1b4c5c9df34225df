"""The deactivate dialog's preview in Debian's Chromium (issue 10): it loads when the dialog opens
and names the concrete targets (the licenses, the device and its MDM, the webhook's receiver,
the manager's address) and what would be skipped and why; axe finds nothing serious in it; the
engine then does what it said; without JavaScript the confirmation page shows the same preview."""

from __future__ import annotations

import pytest

from automations.actions.mdm_lock import NOT_ENROLLED
from automations.models import Action, ActionLog
from automations.tests.browser import needs_chromium, screenshot_path, settled
from automations.tests.builder_factories import mdm_feature
from automations.tests.engine_factories import make_connection, make_device, make_engine_automation
from automations.tests.servers import WebhookReceiver
from automations.tests.test_browser_offboarding import work_off_queue
from automations.tests.test_browser_polish import manager, no_serious_axe_findings, sign_in
from conftest import make_entitlement, make_license, make_member

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]


def test_the_deactivate_dialog_previews_each_actions_targets(live_server, browser):
    manager()
    mdm_feature()
    boss = make_member(full_name="Alex Chen", email="alex.chen@example.com")
    lena = make_member(full_name="Lena Leaver", department="Sales", manager=boss)
    laptop = make_device(lena, make_connection(name="prod"), "sim-lena", asset_tag="AS-000101")
    phone = make_device(lena, None, asset_tag="AS-000102", category="phone", platform="ios")
    make_entitlement(license=make_license(name="Figma"), member=lena)
    make_entitlement(license=make_license(name="Slack"), member=lena)
    with WebhookReceiver() as receiver:
        offboard = make_engine_automation(
            name="Offboard sales",
            conditions=[("department", "is", "Sales")],
            webhook_url=receiver.url(),
            user_based=True,
            mdm=True,
        )
        Action.objects.create(
            automation=offboard,
            kind="email",
            position=3,
            config={
                "manager": True,
                "member": "",
                "addresses": [],
                "roles": [],
                "subject": "{{ member.full_name }} has left",
                "body": "{{ devices }}",
            },
        )
        page, errors = sign_in(browser, live_server.url, "ida")

        page.goto(f"{live_server.url}{lena.get_absolute_url()}")
        page.click("a[data-dialog-open=deactivate-dialog]")
        page.wait_for_selector("#deactivate-dialog .member-preview")
        dialog = page.locator("#deactivate-dialog")
        assert dialog.locator(".planned-action-summary").all_inner_texts() == [
            "Revoke user-based licenses",
            "Lock their devices through MDM",
            f"Call {receiver.url()}",
            "Email the manager",
        ]
        assert dialog.locator(".planned-count").all_inner_texts() == [
            "· 2 license seats",
            "· 1 device lock",
            "· 1 webhook",
            "· 1 email",
        ]
        to_do = dialog.locator(".target-to-do").all_inner_texts()
        assert to_do[:2] == ["Figma", "Slack"]
        assert f"{laptop} (via Simulator (demo) “prod”)" in to_do
        assert f"127.0.0.1:{receiver.port}" in to_do
        assert "alex.chen@example.com (Manager Alex Chen)" in to_do
        skipped = dialog.locator(".target-skipped").all_inner_texts()
        assert skipped == [f"{phone} — skipped: {NOT_ENROLLED}"]
        no_serious_axe_findings(page)
        dialog.screenshot(path=str(screenshot_path("deactivate-preview.png")))

        dialog.locator("textarea[name=reason]").fill("Left the company")
        with page.expect_navigation():
            dialog.locator("button[type=submit]").click()
        assert work_off_queue() >= 1
        receiver.wait_for(1)

    # What it said is what ran.
    logs = {log.target_label: log for log in ActionLog.objects.all()}
    assert {label for label, log in logs.items() if log.status == "succeeded"} >= {
        "Figma",
        "Slack",
        str(laptop),
        f"127.0.0.1:{receiver.port}",
    }
    assert (logs[str(phone)].status, logs[str(phone)].insight) == ("skipped", NOT_ENROLLED)
    assert not errors, errors


def test_without_javascript_the_confirmation_page_shows_the_preview(live_server, browser):
    manager()
    lena = make_member(full_name="Lena Leaver")
    make_entitlement(license=make_license(name="Figma"), member=lena)
    make_engine_automation(name="Offboard", user_based=True)
    page, _ = sign_in(browser, live_server.url, "ida", java_script_enabled=False)

    page.goto(f"{live_server.url}{lena.get_absolute_url()}")
    page.click("a[data-dialog-open=deactivate-dialog]")  # a plain link without JavaScript
    settled(page)

    assert page.url.endswith(f"/members/{lena.pk}/deactivate/")
    preview = page.locator(".member-preview")
    assert "Offboard" in preview.inner_text()
    assert preview.locator(".target-to-do").all_inner_texts() == ["Figma"]
