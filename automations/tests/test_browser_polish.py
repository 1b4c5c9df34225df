"""Issue 7's items a person sees, in Debian's Chromium: the deactivate dialogs say which
automations will run and what they do (1) and show the server's message for a missing reason
(7); one action order and a grouped Automated actions panel that works at 768 px (3, 24); quiet
table links, one destructive colour, one enabled control (25); dates in the browser's format
(26); filter bars on a grid and flash messages in a fixed place (27); "Acknowledged." and the
keyboard-reachable payload preview (28); the Django admin in the portal's colours (29).
"""

from __future__ import annotations

from datetime import date

import pytest
from django.apps import apps
from django.urls import reverse

from assets.models import Asset, MDMCommand
from assetsonar import roles
from assetsonar.tests.test_browser_axe import AXE, axe_violations
from automations.models import ActionLog, Automation
from automations.tests.browser import needs_chromium, settled
from automations.tests.builder_factories import mdm_feature
from automations.tests.engine_factories import make_connection, make_device, make_engine_automation
from automations.tests.servers import WebhookReceiver
from automations.tests.test_browser_offboarding import work_off_queue
from conftest import make_entitlement, make_license, make_member, make_user
from members.models import Member

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]

DANGER = "rgb(185, 28, 28)"  # --danger in app.css
NAVY = "rgb(15, 27, 51)"  # the portal's sidebar
BUILDER_ORDER = ["revoke_licenses", "mdm_lock", "webhook"]


def sign_in(browser, base: str, username: str, **context):
    page = browser.new_context(viewport={"width": 1280, "height": 900}, **context).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f"pw-{username}-Secret1")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page, errors


def manager():
    roles.sync_roles(apps)  # a transactional test starts from a flushed database
    return make_user("ida", roles.IT_MANAGER, first_name="Ida", last_name="Manager")


def no_serious_axe_findings(page) -> None:
    """axe-core on the page as it is now (open dialogs and expanded parts included)."""
    found = axe_violations(page, AXE.read_text())
    assert not found, found


def kinds(page, selector: str) -> list[str]:
    """Row action kinds in page order, each run of one kind once."""
    found = page.eval_on_selector_all(selector, "rows => rows.map(r => r.dataset.kind)")
    return [k for i, k in enumerate(found) if i == 0 or found[i - 1] != k]


def test_deactivating_says_what_will_run_and_the_log_keeps_the_builders_order(live_server, browser):
    manager()
    mdm_feature()
    lena = make_member(full_name="Lena Leaver", department="Sales")
    make_device(lena, make_connection(), "sim-lena-mac", asset_tag="AS-000101")
    make_entitlement(license=make_license(name="Figma"), member=lena)
    with WebhookReceiver() as receiver:
        make_engine_automation(
            name="Offboard sales",
            conditions=[("department", "is", "Sales")],
            webhook_url=receiver.url(),
            user_based=True,
            mdm=True,
        )
        make_engine_automation(
            name="Offboard engineers", conditions=[("department", "is", "Engineering")]
        )
        page, errors = sign_in(browser, live_server.url, "ida")

        page.goto(f"{live_server.url}{lena.get_absolute_url()}")
        page.click("a[data-dialog-open=deactivate-dialog]")
        dialog = page.locator("#deactivate-dialog")
        page.wait_for_selector("#deactivate-dialog .member-preview")  # loaded when it opens
        text = dialog.inner_text()
        assert "Offboard sales" in text
        steps = dialog.locator(".planned-action-summary").all_inner_texts()
        assert steps == [
            "Revoke user-based licenses",
            "Lock their devices through MDM",
            f"Call {receiver.url()}",
        ]
        assert "Offboard engineers" not in text
        assert "Their assets and licenses stay with them until" not in text
        no_serious_axe_findings(page)

        # No reason: the server refuses, and says so inside the dialog (no browser bubble).
        dialog.locator("button[type=submit]").click()
        settled(page)
        assert dialog.get_attribute("open") is not None
        assert "Say why the member is deactivated" in dialog.locator(".errorlist").inner_text()
        lena.refresh_from_db()
        assert lena.status == Member.Status.ACTIVE
        assert "Offboard sales" in dialog.inner_text()  # the preview is still there

        dialog.locator("textarea[name=reason]").fill("Left the company")
        with page.expect_navigation():
            dialog.locator("button[type=submit]").click()
        assert work_off_queue() >= 1
        receiver.wait_for(1)

    assert set(ActionLog.objects.values_list("status", flat=True)) == {"succeeded"}
    # The panel at tablet width: one heading per execution, the builder's order, no strip.
    page.set_viewport_size({"width": 768, "height": 1000})
    page.goto(f"{live_server.url}{lena.get_absolute_url()}")
    panel = page.locator("#automated-actions")
    assert panel.locator(".run-heading").all_inner_texts()[0].startswith("Offboard sales")
    assert panel.locator(".run-group").count() == 1
    assert panel.inner_text().count("Offboard sales") == 1
    assert kinds(page, "#automated-actions tr[data-kind]") == BUILDER_ORDER
    widths = page.eval_on_selector_all(
        "#automated-actions tbody tr:first-child td",
        "cells => cells.map(c => c.getBoundingClientRect().width)",
    )
    assert min(widths) >= 150, widths
    assert page.evaluate("document.documentElement.scrollWidth") <= 768

    # The execution log lists them in the same order.
    page.click("#automated-actions .run-heading a")
    page.wait_for_selector("h1:has-text('Offboard sales for Lena Leaver')")
    assert kinds(page, "tr[data-kind]") == BUILDER_ORDER
    assert not errors, errors


def test_the_bulk_dialog_says_for_whom_each_automation_runs(live_server, browser):
    manager()
    make_engine_automation(
        name="Offboard sales", conditions=[("department", "is", "Sales")], user_based=True
    )
    sales = make_member(full_name="Sam Sales", department="Sales")
    engineer = make_member(full_name="Eve Engineer", department="Engineering")
    page, errors = sign_in(browser, live_server.url, "ida")

    page.goto(f"{live_server.url}{reverse('members:list')}")
    # Sorting swaps the results (and the button that opens the dialog) in place first.
    page.click("#member-results thead a:has-text('Name')")
    settled(page)
    page.check(f"input[name=ids][value='{sales.pk}']")
    page.check(f"input[name=ids][value='{engineer.pk}']")
    page.click("button[data-dialog-open=bulk-dialog]")
    page.wait_for_selector("#bulk-preview .deactivation-preview")
    preview = page.inner_text("#bulk-preview")
    assert "Offboard sales" in preview and "(for 1 of 2)" in preview
    assert "Revoke user-based licenses" in preview
    no_serious_axe_findings(page)

    page.click("#bulk-dialog button[type=submit]")
    settled(page)
    assert page.locator("#bulk-dialog").get_attribute("open") is not None
    assert "Say why the member is deactivated" in page.inner_text("#bulk-dialog .errorlist")
    assert not Member.objects.filter(status=Member.Status.DEACTIVATED).exists()

    page.fill("#bulk-dialog textarea[name=reason]", "Team closed")
    with page.expect_navigation():
        page.click("#bulk-dialog button[type=submit]")
    assert Member.objects.filter(status=Member.Status.DEACTIVATED).count() == 2
    assert not errors, errors


@pytest.fixture
def polish(live_server, browser):
    """A signed-in IT manager, a license with three holders, an automation, and a laptop whose
    lock the MDM acknowledged."""
    manager()
    mdm_feature()
    holder = make_member(full_name="Hana Holder")
    figma = make_license(name="Figma")
    for n in range(3):
        make_entitlement(license=figma, member=make_member(full_name=f"Seat holder {n}"))
    automation = make_engine_automation(name="Offboard everyone", user_based=True)
    laptop = make_device(holder, make_connection(), "sim-hana", asset_tag="AS-000201")
    log = ActionLog.objects.create(
        key="k1",
        execution=_execution(automation, holder),
        action_kind="mdm_lock",
        target_type=ActionLog.TargetType.ASSET,
        asset=laptop,
        target_label="AS-000201",
        status=ActionLog.Status.SUCCEEDED,
    )
    MDMCommand.objects.create(
        asset=laptop, connection=laptop.mdm_connection, log=log, status="acknowledged"
    )
    Asset.objects.filter(pk=laptop.pk).update(lock_state=Asset.LockState.LOCKED)
    page, errors = sign_in(browser, live_server.url, "ida")
    yield {
        "page": page,
        "url": live_server.url,
        "figma": figma,
        "automation": automation,
        "laptop": laptop,
    }
    assert not errors, errors


def test_table_links_are_quiet_and_only_the_confirming_dialog_is_red(polish):
    page, url = polish["page"], polish["url"]
    page.goto(f"{url}{reverse('members:list')}")
    decorations = page.eval_on_selector_all(
        ".members-table td a", "links => links.map(a => getComputedStyle(a).textDecorationLine)"
    )
    assert decorations and set(decorations) == {"none"}

    page.goto(f"{url}{polish['figma'].get_absolute_url()}")
    revoke = page.locator("a:has-text('Revoke')")
    assert revoke.count() == 3
    for colour in revoke.evaluate_all(
        "links => links.map(a => [getComputedStyle(a).color, getComputedStyle(a).backgroundColor])"
    ):
        assert DANGER not in colour
    revoke.first.click()
    page.wait_for_selector("#revoke-dialog[open] button[type=submit]")
    confirm = page.locator("#revoke-dialog button[type=submit]")
    assert confirm.evaluate("b => getComputedStyle(b).backgroundColor") == DANGER


def test_an_automation_shows_one_enabled_control(polish):
    page = polish["page"]
    page.goto(f"{polish['url']}{polish['automation'].get_absolute_url()}")

    assert page.locator("main [role=switch]").count() == 1
    assert page.locator(".page-header .badge").count() == 0


def test_flash_messages_float_in_a_corner_without_moving_the_page(polish):
    page = polish["page"]
    page.goto(f"{polish['url']}{polish['automation'].get_absolute_url()}")
    top = page.evaluate("document.querySelector('main h1').getBoundingClientRect().top")

    with page.expect_navigation():
        page.click("main [role=switch]")

    assert page.locator("#messages .alert").count() == 1
    assert page.evaluate("getComputedStyle(document.getElementById('messages')).position") == (
        "fixed"
    )
    assert page.evaluate("document.querySelector('main h1').getBoundingClientRect().top") == top
    page.click("#messages .toast-close")
    assert page.locator("#messages .alert").count() == 0


@pytest.mark.parametrize("width", [1280, 1024, 800])
def test_filter_bars_wrap_on_a_grid_with_every_label_on_one_line(polish, width):
    page = polish["page"]
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{polish['url']}{reverse('assets:list')}")

    boxes = page.eval_on_selector_all(
        "form.filters > .field",
        """fields => fields.map(f => {
             const label = f.querySelector('label');
             const line = parseFloat(getComputedStyle(label).lineHeight);
             const r = f.getBoundingClientRect();
             return {left: Math.round(r.left), lines: label.getBoundingClientRect().height / line,
                     text: label.textContent};
           })""",
    )
    assert all(box["lines"] < 1.5 for box in boxes), boxes
    assert any(box["text"] == "Custodian's department" for box in boxes)
    # Every field starts on one of the grid's columns (none alone on a row, out of line).
    starts = page.evaluate(
        """() => {
             const form = document.querySelector('form.filters');
             const style = getComputedStyle(form);
             const gap = parseFloat(style.columnGap);
             let x = form.getBoundingClientRect().left + parseFloat(style.paddingLeft)
                     + parseFloat(style.borderLeftWidth);
             return style.gridTemplateColumns.split(' ').map(w => {
               const start = Math.round(x); x += parseFloat(w) + gap; return start; });
           }"""
    )
    assert len(starts) >= 2, starts
    for box in boxes:
        assert any(abs(box["left"] - start) <= 1 for start in starts), (box, starts)
    actions = page.locator("form.filters .filter-actions").bounding_box()
    form = page.locator("form.filters").bounding_box()
    assert actions["x"] + actions["width"] >= form["x"] + form["width"] - 40


def test_a_lock_notice_reads_acknowledged_with_no_stray_space(polish):
    page = polish["page"]
    page.goto(f"{polish['url']}{polish['laptop'].get_absolute_url()}")

    notice = page.inner_text("#mdm-panel .alert")
    assert "Acknowledged." in notice and "Acknowledged ." not in notice


def test_the_payload_preview_is_reached_with_the_keyboard(polish):
    page = polish["page"]
    page.goto(f"{polish['url']}{reverse('automations:create')}")
    page.click('button[value="add:webhook"]')
    page.wait_for_selector("#id_actions-0-url")
    settled(page)
    page.fill("#id_actions-0-url", "https://hr.example.com/hooks")
    page.click("#id_name")
    settled(page)
    page.click(".payload-preview summary")

    page.focus(".payload-preview summary")
    page.keyboard.press("Tab")

    assert page.evaluate("document.activeElement.id") == "payload-preview"
    no_serious_axe_findings(page)  # scrollable-region-focusable among them


def _execution(automation: Automation, member):
    from automations.tests.execution_factories import make_event, make_execution

    return make_execution(member, automation, event=make_event(member))


@pytest.mark.parametrize(
    ("locale", "shown"), [("en-US", "02/01/2027"), ("de-DE", "01.02.2027"), ("en-GB", "01/02/2027")]
)
def test_dates_are_shown_as_the_browsers_date_inputs_show_them(live_server, browser, locale, shown):
    manager()
    lic = make_license(name="Figma", expires_on=date(2027, 2, 1))
    page, errors = sign_in(browser, live_server.url, "ida", locale=locale)

    # Chromium's own numeric date in this locale: the format of its <input type=date>.
    browsers = page.evaluate(
        "new Intl.DateTimeFormat(navigator.language,"
        " {day: '2-digit', month: '2-digit', year: 'numeric'}).format(new Date(2027, 1, 1))"
    )
    assert browsers == shown
    page.goto(f"{live_server.url}{reverse('licenses:list')}")
    row = page.locator("tr", has_text="Figma").inner_text()
    assert shown in row
    page.goto(f"{live_server.url}{reverse('licenses:edit', args=[lic.pk])}")
    assert page.input_value("#id_expires_on") == "2027-02-01"
    assert not errors, errors


def test_the_admin_wears_the_portals_colours_name_and_logo(live_server, browser):
    roles.sync_roles(apps)
    make_user("support", roles.SUPPORT_STAFF, is_staff=True)
    page, errors = sign_in(browser, live_server.url, "support")

    page.goto(f"{live_server.url}/admin/")
    header = page.evaluate("getComputedStyle(document.getElementById('header')).backgroundColor")
    assert header == NAVY
    assert " ".join(page.text_content("#site-name").split()) == "AssetSonar admin"
    logo = page.locator("#site-name img")
    assert logo.evaluate("img => img.complete && img.naturalWidth > 0")
    assert page.locator("link[rel=icon][href$='img/logo.svg']").count() == 1
    link = page.evaluate("getComputedStyle(document.querySelector('#content-main tr a')).color")
    assert link == "rgb(29, 78, 216)"  # the portal's --primary
    page.goto(f"{live_server.url}/")
    sidebar = page.evaluate("getComputedStyle(document.querySelector('.sidebar')).backgroundColor")
    assert sidebar == header
    assert not errors, errors
