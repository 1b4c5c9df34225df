"""The whole offboarding as an IT manager does it, in a real browser (Debian's Chromium driven by
Playwright): sign in, build an automation with all three actions (passing the one-time password
step), deactivate a member who holds devices and licenses, watch the member's "Automated
actions" panel poll until every action has finished, then open the execution log and the
locked laptop's MDM notice. Saves the README's
screenshots (offboarding-*.png; see automations/tests/browser.py).

The background work: the deactivation's task goes into django-q2's queue exactly as in
production (post_save receiver → on_commit → async_task → ORM broker). Instead of a cluster
process, the test thread takes the queued tasks off the broker and runs them once the browser
has shown the panel in its running state, so the panel's htmx polling is what brings the final
state onto the page. The panel's poll requests are held (page.route) while the tasks run, so the
live server and the test never use the database at the same time (one shared connection on
in-memory SQLite).
"""

from __future__ import annotations

import re

import pytest
from django.apps import apps
from django.urls import reverse
from standardwebhooks import Webhook

from assets.models import Asset
from assetsonar import roles
from automations.models import ActionLog, Automation, Execution
from automations.tests.browser import needs_chromium, screenshot, settled
from automations.tests.builder_factories import mdm_feature, totp_code, totp_device
from automations.tests.engine_factories import make_connection, make_device, work_off_queue
from automations.tests.servers import WebhookReceiver
from conftest import make_entitlement, make_license, make_member, make_user
from licenses.models import Entitlement, License
from members.models import Member

pytestmark = needs_chromium


@pytest.mark.django_db(transaction=True)
def test_offboarding_a_member_end_to_end_in_chromium(live_server, browser):
    # A transactional test starts from whatever the previous one flushed: make sure the roles exist.
    roles.sync_roles(apps)
    mdm_feature()
    user = make_user(
        "ida", roles.IT_MANAGER, roles.MDM_OPERATOR, first_name="Ida", last_name="Manager"
    )
    device = totp_device(user)
    connection = make_connection(name="Demo MDM (simulator)")
    lena = make_member(full_name="Lena Leaver", email="lena.leaver@example.com", department="Sales")
    laptop = make_device(
        lena, connection, "sim-lena-mac", name="MacBook Pro 14", asset_tag="AS-000101"
    )
    make_device(
        lena,
        connection,
        "sim-lena-phone",
        name="iPhone 15",
        asset_tag="AS-000102",
        category=Asset.Category.PHONE,
        platform=Asset.Platform.IOS,
    )
    make_device(
        lena,
        name="Dell UltraSharp 27",
        asset_tag="AS-000103",
        category=Asset.Category.MONITOR,
        platform=Asset.Platform.NONE,
    )
    make_entitlement(license=make_license(name="Figma", kind=License.Kind.USER), member=lena)
    make_entitlement(license=make_license(name="Slack", kind=License.Kind.CLOUD), member=lena)
    make_entitlement(
        license=make_license(name="JetBrains IDE", kind=License.Kind.USER),
        member=lena,
        asset=laptop,
    )
    make_entitlement(
        license=make_license(name="CrowdStrike Falcon", kind=License.Kind.DEVICE), asset=laptop
    )
    bystander = make_member(full_name="Bo Bystander")
    make_entitlement(license=License.objects.get(name="Figma"), member=bystander)

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )

    with WebhookReceiver() as receiver:
        # 1. Sign in and build the automation.
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("#id_username", "ida")
        page.fill("#id_password", "pw-ida-Secret1")
        page.click("button[type=submit]")
        page.goto(f"{live_server.url}{reverse('automations:list')}")
        page.click("text=Create Automation")
        page.wait_for_selector("#builder-form")
        page.fill("#id_name", "Offboard leavers")
        page.fill("#id_description", "Take back licenses and devices and tell HR.")
        for n, kind in enumerate(("revoke_licenses", "mdm_lock", "webhook")):
            page.click(f'button[value="add:{kind}"]')
            page.wait_for_selector(f"#action-actions-{n}")
            settled(page)
        page.check("#id_actions-0-user_based")
        page.check("#id_actions-0-user_machine")
        page.check("#id_actions-0-device_based")
        page.fill(
            "#id_actions-1-message", "This device belongs to Example Ltd. Please return it to IT."
        )
        page.fill("#id_actions-1-phone", "+1 555 0100")
        page.fill("#id_actions-2-url", receiver.url())
        page.click("#id_description")  # leave the last field so its change event fires
        page.click("aside button[name=save]")
        page.wait_for_selector("#otp-dialog[open]")
        page.fill("#id_otp_token", totp_code(device))
        page.click("#otp-dialog button[type=submit]")
        page.wait_for_selector(".secret-panel")
        secret = page.inner_text("#new-secret").strip()
        automation = Automation.objects.get(name="Offboard leavers")
        assert sorted(automation.actions.values_list("kind", flat=True)) == [
            "mdm_lock",
            "revoke_licenses",
            "webhook",
        ]

        # 2. Deactivate the member from their page.
        page.goto(f"{live_server.url}{lena.get_absolute_url()}")
        page.click("a[data-dialog-open=deactivate-dialog]")
        page.fill("#deactivate-dialog textarea, #deactivate-dialog input[name=reason]", "Left")
        with page.expect_navigation():
            page.click("#deactivate-dialog button[type=submit]")
        page.wait_for_selector("text=Lena Leaver was deactivated.")
        lena.refresh_from_db()
        assert lena.status == Member.Status.DEACTIVATED

        # The task is queued, not run: the panel says so and polls.
        panel = page.locator("#automated-actions")
        assert panel.get_attribute("data-state") == "running"
        assert panel.get_attribute("hx-trigger") == "every 2s"
        assert not Execution.objects.exists()

        # 3. The worker runs; the panel's next poll brings the final state.
        held = re.compile(r".*/automations/members/\d+/actions/$")
        page.route(held, lambda route: route.continue_())
        assert work_off_queue() >= 1
        page.wait_for_selector('#automated-actions[data-state="idle"]', timeout=15_000)
        page.unroute(held)
        assert page.locator("#automated-actions").get_attribute("hx-trigger") is None
        # The finished panel makes the page reload what the automation changed: the licenses.
        page.wait_for_selector("#entitlements-h:has-text('License entitlements (0)')")

        execution = Execution.objects.get()
        assert execution.status == Execution.Status.SUCCEEDED, execution.insight
        logs = {
            (log.action_kind, log.target_label): log.status
            for log in ActionLog.objects.filter(execution=execution)
        }
        assert list(logs.values()).count(ActionLog.Status.SUCCEEDED) >= 7, logs
        panel_text = page.inner_text("#automated-actions")
        for label in ("Revoke licenses", "Lock devices via MDM", "Trigger webhook"):
            assert label in panel_text
        assert "Failed" not in panel_text
        assert not Entitlement.objects.live().filter(member=lena).exists()
        assert not Entitlement.objects.live().filter(asset=laptop).exists()
        assert Entitlement.objects.live().filter(member=bystander).count() == 1
        assert set(
            Asset.objects.filter(mdm_connection=connection).values_list("lock_state", flat=True)
        ) == {Asset.LockState.LOCKED}
        screenshot(page, "offboarding-member.png")

        # The webhook arrived once, signed with the secret the builder showed.
        (request,) = receiver.wait_for(1)
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload["type"] == "member.deactivated" or "member.deactivated" in str(payload)

    # 4. The execution log.
    page.click(f"#automated-actions a[href='{execution.get_absolute_url()}'] >> nth=0")
    page.wait_for_selector("h1:has-text('Offboard leavers for Lena Leaver')")
    page.click("summary:has-text('Delivery attempts')")
    detail = page.inner_text("main")
    assert "Succeeded" in detail
    assert "HTTP 200" in detail
    assert "Member is deactivated" in detail
    assert "Demo MDM (simulator)" in detail
    assert "Retry failed actions" not in detail
    screenshot(page, "offboarding-execution.png")

    # The Executions view lists it with its counts.
    page.click("text=Executions")
    row = page.locator("#execution-results tbody tr", has_text="Lena Leaver")
    row.wait_for()
    assert "Succeeded" in row.inner_text()

    # 5. The laptop's lock notice.
    page.goto(f"{live_server.url}{execution.get_absolute_url()}")
    page.click(f"a[href='{laptop.get_absolute_url()}'] >> nth=0")
    page.wait_for_selector("#mdm-panel")
    notice = page.inner_text("#mdm-panel")
    assert "This device was locked via MDM" in notice
    assert "Offboard leavers" in notice
    screenshot(page, "offboarding-asset.png")

    assert not errors, errors
