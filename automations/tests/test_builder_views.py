"""The Workflows & Automations pages: list (filters, last run, query budget), create and edit,
enable/disable, duplicate, delete, rotate secret, the automation page with its history, the htmx
partials, and who may do what."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import standardwebhooks
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from assetsonar.models import AuditEvent
from automations.models import Automation, AutomationChange
from automations.tests.builder_factories import (
    builder_data,
    make_automation,
    make_execution,
)
from conftest import make_member

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def create(client, **kwargs):
    return client.post(reverse("automations:create"), builder_data(**kwargs))


def secret_shown(response) -> str:
    match = re.search(r'<code id="new-secret">([^<]+)</code>', response.text)
    return match.group(1) if match else ""


# --- List ----------------------------------------------------------------------------------------


def test_list_shows_each_automation_with_trigger_summary_switch_last_run_and_creator(
    manager_client, it_manager
):
    ran = make_automation(
        name="Offboard engineers",
        created_by=it_manager,
        webhook={"url": "https://127.0.0.1/hooks/offboard"},
    )
    make_execution(ran, status="failed")
    make_execution(ran, status="succeeded")
    make_automation(name="Never ran", enabled=False, conditions=[])

    response = manager_client.get(reverse("automations:list"))

    assert response.status_code == 200
    text = response.text
    assert "Workflows &amp; Automations" in text
    assert 'href="/automations/new/"' in text and "Create Automation" in text
    assert f'href="{reverse("automations:executions")}"' in text
    row = text[text.index(f'id="automation-{ran.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "Member is deactivated" in row
    assert "A member in Engineering" in row
    assert "Revoke licenses" in row and "Webhook" in row
    assert 'role="switch" aria-checked="true"' in row
    assert "Succeeded" in row and "Failed" not in row
    assert "Ida Manager" in row
    never = text[text.index("Never ran") :]
    assert "Never run" in never and "Any member" in never
    assert 'aria-checked="false"' in never


def test_list_and_automation_page_colour_run_statuses_like_the_execution_log(manager_client):
    automation = make_automation(name="Offboard engineers")
    make_execution(automation, status="partially_failed")

    listed = manager_client.get(reverse("automations:list")).text
    page = manager_client.get(automation.get_absolute_url()).text

    badge = '<span class="badge badge-amber" data-status="partially_failed">Partially failed</span>'
    assert badge in listed
    assert badge in page


def test_list_filters_by_search_trigger_and_status(manager_client):
    make_automation(name="Offboard engineers")
    make_automation(name="Welcome back", trigger_event="member.reactivated")
    make_automation(name="Old sales rule", enabled=False)
    url = reverse("automations:list")

    def names(**params):
        response = manager_client.get(url, params)
        return sorted(a.name for a in response.context["page_obj"])

    assert names(q="ENGINEERS") == ["Offboard engineers"]
    assert names(trigger="member.reactivated") == ["Welcome back"]
    assert names(enabled="no") == ["Old sales rule"]
    assert names(enabled="yes") == ["Offboard engineers", "Welcome back"]
    assert "No automation matches these filters" in manager_client.get(url, {"q": "zzz"}).text


def test_list_answers_htmx_filter_requests_with_the_results_only(manager_client):
    make_automation(name="Offboard engineers")

    response = manager_client.get(
        reverse("automations:list"),
        {"q": "off"},
        headers={**HTMX, "HX-Target": "automation-results"},
    )

    assert response.text.lstrip().startswith('<section id="automation-results"')
    assert "<html" not in response.text
    assert "HX-Request" in response["Vary"]


def test_empty_list_invites_to_create_the_first_automation(manager_client, viewer):
    assert "Create your first automation" in manager_client.get(reverse("automations:list")).text
    manager_client.force_login(viewer)
    viewer_page = manager_client.get(reverse("automations:list")).text
    assert "No automations yet" in viewer_page
    assert "Create Automation" not in viewer_page


def _fill(count: int) -> None:
    for _ in range(count):
        automation = make_automation(
            conditions=[("department", "is", "Engineering"), ("title", "is_empty", None)],
            webhook={"headers": {"X-Key": "v"}},
            mdm={"message": "Return it"},
        )
        make_execution(automation)


@pytest.mark.parametrize("count", [3, 30])
def test_list_has_a_fixed_query_budget(manager_client, django_assert_max_num_queries, count):
    _fill(count)

    with django_assert_max_num_queries(9):
        response = manager_client.get(reverse("automations:list"))

    assert response.status_code == 200


def test_list_queries_do_not_grow_with_the_number_of_automations(manager_client):
    def count_queries() -> int:
        cache.clear()  # each request as a first one: the navigation's approvals count is cached
        with CaptureQueriesContext(connection) as queries:
            manager_client.get(reverse("automations:list"))
        return len(queries)

    _fill(2)
    small = count_queries()
    _fill(20)
    assert count_queries() == small


@pytest.mark.parametrize("count", [1, 15])
def test_automation_page_has_a_fixed_query_budget(
    manager_client, it_manager, django_assert_max_num_queries, count
):
    automation = make_automation(webhook={}, mdm={}, created_by=it_manager)
    for _ in range(count):
        make_execution(automation)
        AutomationChange.objects.create(
            automation=automation, automation_name=automation.name, kind="changed", actor=it_manager
        )

    with django_assert_max_num_queries(12):
        response = manager_client.get(automation.get_absolute_url())

    assert response.status_code == 200


# --- Create --------------------------------------------------------------------------------------


def test_create_page_offers_registry_triggers_and_existing_departments(manager_client):
    make_member(department="Finance", location="Lisbon")

    response = manager_client.get(reverse("automations:create"))

    assert response.status_code == 200
    text = response.text
    assert '<option value="members" selected>Members</option>' in text
    assert "Member is reactivated" in text
    assert '<datalist id="suggest-department"><option value="Finance">' in text
    assert '<option value="Lisbon">' in text
    # The "Add action" menu: the registry's kinds, the seed's three first, each with its line.
    labels = re.findall(r'name="action_op" value="add:(\w+)"', text)
    assert labels[:3] == ["webhook", "revoke_licenses", "mdm_lock"]
    for label in (
        "Trigger webhook",
        "Revoke licenses in AssetSonar",
        "Lock devices in custody via MDM",
        "Take back the software seats the member holds (three options).",
    ):
        assert label in text
    assert 'hx-trigger="change delay:300ms"' in text
    assert 'name="conditions-TOTAL_FORMS" value="0"' in text


def test_creating_saves_everything_and_records_who_created_it(manager_client, it_manager):
    response = create(
        manager_client,
        conditions=[
            ("department", "is", "Engineering"),
            ("location", "is_any_of", "Berlin, Paris"),
        ],
        revoke=("user_based", "user_machine"),
    )

    automation = Automation.objects.get()
    assert response.status_code == 302
    assert response.url == automation.get_absolute_url()
    assert automation.name == "Offboard engineers"
    assert automation.created_by == it_manager
    assert [(c.field, c.operator, c.value) for c in automation.conditions.all()] == [
        ("department", "is", "Engineering"),
        ("location", "is_any_of", ["Berlin", "Paris"]),
    ]
    action = automation.actions.get()
    assert (action.kind, action.config["user_based"], action.config["user_machine"]) == (
        "revoke_licenses",
        True,
        True,
    )
    change = automation.changes.get()
    assert change.kind == "created" and change.actor == it_manager and not change.otp_verified
    assert change.diff["Conditions"] == [
        "",
        "department is Engineering; location is any of Berlin, Paris",
    ]
    assert AuditEvent.objects.filter(action="created", object_id=str(automation.pk)).exists()


def test_a_bad_condition_row_shows_its_error_beside_it_and_nothing_is_saved(manager_client):
    response = create(
        manager_client,
        conditions=[
            ("department", "is", "Engineering"),
            ("assets_in_custody", "greater_than", "lots"),
        ],
    )

    assert response.status_code == 200
    assert not Automation.objects.exists()
    text = response.text
    row = text[text.index('id="conditions-1-row"') :]
    row = row[: row.index("</ul>")]
    assert "Enter a whole number for Number of assets in custody." in row
    assert "Please correct the highlighted parts; nothing was saved." in text
    assert 'value="Engineering"' in text  # what was typed stays


def test_webhook_gets_a_standard_webhooks_secret_shown_once(manager_client):
    response = create(
        manager_client,
        webhook={"url": "https://127.0.0.1/hooks/offboard", "method": "PUT"},
        headers=[("Authorization", "Bearer abc123")],
    )
    automation = Automation.objects.get()
    action = automation.actions.get(kind="webhook")

    page = manager_client.get(response.url)
    shown = secret_shown(page)
    assert shown == action.get_secret()
    assert shown.startswith("whsec_") and len(base64.b64decode(shown[6:])) == 24
    assert "no-store" in page["Cache-Control"]
    signer = standardwebhooks.Webhook(shown)  # the receiver's library accepts the format
    body = json.dumps({"type": "member.deactivated"})
    sent_at = datetime.now(tz=UTC)
    signature = signer.sign("msg_1", sent_at, body)
    signer.verify(
        body,
        {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signature,
        },
    )
    assert secret_shown(manager_client.get(response.url)) == ""  # never again
    assert action.get_secret_config().get("headers", {}) == {"Authorization": "Bearer abc123"}
    assert "abc123" not in action.secrets_encrypted and "abc123" not in str(action.config)
    assert action.config["method"] == "PUT"


def test_only_it_managers_may_build(viewer_client):
    urls = [
        ("get", reverse("automations:create")),
        ("post", reverse("automations:create")),
        ("get", reverse("automations:builder_trigger_events")),
        ("get", reverse("automations:builder_condition_row")),
        ("post", reverse("automations:builder_preview")),
    ]
    automation = make_automation()
    for name in ["edit", "toggle", "duplicate", "delete", "rotate_secret"]:
        urls.append(("post", reverse(f"automations:{name}", args=[automation.pk])))

    for method, url in urls:
        data = builder_data(name="Sneaky") if method == "post" else None
        response = getattr(viewer_client, method)(url, data)
        assert response.status_code == 403, url

    assert Automation.objects.count() == 1
    assert viewer_client.get(automation.get_absolute_url()).status_code == 200


# --- Edit ----------------------------------------------------------------------------------------


def test_edit_page_shows_saved_values_and_header_names_but_not_header_values(manager_client):
    automation = make_automation(
        name="Offboard engineers",
        conditions=[("employment_type", "is_any_of", ["contractor", "intern"])],
        webhook={"headers": {"Authorization": "Bearer very-secret"}},
    )

    response = manager_client.get(reverse("automations:edit", args=[automation.pk]))

    text = response.text
    assert 'value="Offboard engineers"' in text
    assert re.search(r'value="contractor" id="id_conditions-0-value_\d" checked', text)
    assert not re.search(r'value="full_time" id="id_conditions-0-value_\d" checked', text)
    assert 'value="Authorization"' in text
    assert "very-secret" not in text
    assert "whsec_" not in text.replace("whsec_…", "")


def test_editing_records_a_diff_and_keeps_the_signing_secret(manager_client, it_manager):
    automation = make_automation(
        name="Offboard engineers",
        webhook={
            "url": "https://127.0.0.1/old",
            "headers": {"X-Key": "one"},
            "secret": "whsec_keep",
        },
    )
    data = builder_data(
        automation=automation,
        name="Offboard all engineers",
        webhook={"url": "https://127.0.0.1/new"},
        headers=[("X-Key", "two")],
        initial_headers=1,
        conditions=[("department", "is", "Engineering")],
        initial_conditions=1,
    )

    response = manager_client.post(reverse("automations:edit", args=[automation.pk]), data)

    assert response.status_code == 302
    automation.refresh_from_db()
    assert automation.name == "Offboard all engineers"
    assert automation.updated_by == it_manager
    webhook = automation.actions.get(kind="webhook")
    assert webhook.get_secret() == "whsec_keep"
    assert webhook.get_secret_config().get("headers", {}) == {"X-Key": "two"}
    change = automation.changes.get(kind="changed")
    assert change.diff == {
        "Name": ["Offboard engineers", "Offboard all engineers"],
        "Webhook": ["POST https://127.0.0.1/old", "POST https://127.0.0.1/new"],
        "Webhook header values": ["", "changed: X-Key"],
    }
    assert "two" not in json.dumps(change.diff) and "one" not in json.dumps(change.diff)
    assert secret_shown(manager_client.get(response.url)) == ""
    history = manager_client.get(automation.get_absolute_url()).text
    assert "Offboard engineers</del>" in history and "Offboard all engineers</ins>" in history


def test_saving_without_changes_writes_no_history(manager_client):
    automation = make_automation(name="Same", conditions=[("department", "is", "Engineering")])
    data = builder_data(automation=automation, name="Same", initial_conditions=1)

    response = manager_client.post(reverse("automations:edit", args=[automation.pk]), data)

    assert response.status_code == 302
    assert not automation.changes.exists()


def test_adding_a_webhook_on_edit_generates_a_secret_shown_once(manager_client):
    automation = make_automation(name="Add hook")
    data = builder_data(automation=automation, name="Add hook", initial_conditions=1, webhook={})

    response = manager_client.post(reverse("automations:edit", args=[automation.pk]), data)

    shown = secret_shown(manager_client.get(response.url))
    assert shown and shown == automation.actions.get(kind="webhook").get_secret()


def test_removing_all_rows_and_actions_is_refused_with_a_message(manager_client):
    automation = make_automation(name="Keep")
    data = builder_data(automation=automation, name="Keep", conditions=[], revoke=None)

    response = manager_client.post(reverse("automations:edit", args=[automation.pk]), data)

    assert response.status_code == 200
    assert "Choose at least one action" in response.text
    assert automation.actions.count() == 1 and automation.conditions.count() == 1


# --- Row actions ---------------------------------------------------------------------------------


def test_switch_disables_and_enables_with_htmx_and_records_it(manager_client, it_manager):
    automation = make_automation(name="Switch me")
    url = reverse("automations:toggle", args=[automation.pk])

    response = manager_client.post(url, {"enabled": "0"}, headers=HTMX)

    assert response.status_code == 200
    assert 'aria-checked="false"' in response.text
    assert 'id="messages"' in response.text and "is now disabled" in response.text
    automation.refresh_from_db()
    assert not automation.enabled
    assert automation.changes.get().kind == "disabled"
    assert AuditEvent.objects.filter(action="automation.disabled", actor=it_manager).exists()

    manager_client.post(url, {"enabled": "0"}, headers=HTMX)  # a double click changes nothing
    assert automation.changes.count() == 1

    response = manager_client.post(url, {"enabled": "1", "next": "/automations/"})
    assert response.status_code == 302 and response.url == "/automations/"
    automation.refresh_from_db()
    assert automation.enabled
    assert [c.kind for c in automation.changes.all()] == ["enabled", "disabled"]


def test_duplicate_copies_conditions_and_actions_switched_off_with_a_new_secret(manager_client):
    source = make_automation(
        name="Offboard",
        conditions=[("department", "is", "Engineering"), ("title", "is_not_empty", None)],
        webhook={"secret": "whsec_original"},
    )

    response = manager_client.post(reverse("automations:duplicate", args=[source.pk]))

    copy = Automation.objects.get(name="Copy of Offboard")
    assert response.url == copy.get_absolute_url()
    assert not copy.enabled
    assert list(copy.conditions.values_list("field", "operator")) == [
        ("department", "is"),
        ("title", "is_not_empty"),
    ]
    assert sorted(copy.actions.values_list("kind", flat=True)) == ["revoke_licenses", "webhook"]
    new_secret = copy.actions.get(kind="webhook").get_secret()
    assert new_secret != "whsec_original"
    assert secret_shown(manager_client.get(response.url)) == new_secret
    assert copy.changes.get().diff["Duplicated from"] == ["", "Offboard"]
    manager_client.post(reverse("automations:duplicate", args=[source.pk]))
    assert Automation.objects.filter(name="Copy of Offboard (2)").exists()


def test_delete_asks_in_a_dialog_then_deletes_and_keeps_the_history(manager_client, it_manager):
    automation = make_automation(name="Delete me")
    make_execution(automation)
    url = reverse("automations:delete", args=[automation.pk])

    dialog = manager_client.get(url, headers=HTMX)
    assert "<dialog" in dialog.text and "data-open-on-load" in dialog.text
    assert "<html" not in dialog.text
    assert "Delete “Delete me”?" in manager_client.get(url).text  # without JavaScript

    response = manager_client.post(url, headers=HTMX)

    assert response["HX-Redirect"] == reverse("automations:list")
    assert not Automation.objects.exists()
    change = AutomationChange.objects.get(kind="deleted")
    assert change.automation is None and change.automation_name == "Delete me"
    assert change.actor == it_manager
    assert change.diff["Name"] == ["Delete me", ""]
    assert AuditEvent.objects.filter(action="deleted", object_repr="Delete me").exists()


def test_rotating_the_secret_shows_the_new_one_once(manager_client):
    automation = make_automation(webhook={"secret": "whsec_old"})

    response = manager_client.post(reverse("automations:rotate_secret", args=[automation.pk]))

    webhook = automation.actions.get(kind="webhook")
    assert webhook.get_secret() != "whsec_old" and webhook.secret_rotated_at
    page = manager_client.get(response.url)
    assert secret_shown(page) == webhook.get_secret()
    assert "rotated" in page.text
    assert secret_shown(manager_client.get(response.url)) == ""
    assert automation.changes.get().kind == "secret_rotated"


def test_rotating_without_a_webhook_says_why(manager_client):
    automation = make_automation()

    response = manager_client.post(
        reverse("automations:rotate_secret", args=[automation.pk]), follow=True
    )

    assert "has no webhook" in response.text


# --- Automation page -----------------------------------------------------------------------------


def test_automation_page_shows_summary_actions_runs_and_history(manager_client, it_manager):
    automation = make_automation(
        name="Offboard",
        created_by=it_manager,
        webhook={"url": "https://127.0.0.1/hooks/x", "headers": {"X-Key": "hidden-value"}},
        mdm={"message": "Return to IT", "phone": "+1 555 0100"},
    )
    execution = make_execution(automation, status="partially_failed")
    manager_client.post(
        reverse("automations:toggle", args=[automation.pk]), {"enabled": "0"}, headers=HTMX
    )

    text = manager_client.get(automation.get_absolute_url()).text

    assert (
        "When a member in Engineering is deactivated: revoke user-based licenses, "
        "lock their devices through MDM, call https://127.0.0.1/hooks/x" in text
    )
    assert "X-Key" in text and "hidden-value" not in text
    assert "Return to IT" in text and "Rotate secret" in text
    assert execution.get_absolute_url() in text and "Partially failed" in text
    assert "Disabled</strong> by Ida Manager" in text


# --- htmx partials -------------------------------------------------------------------------------


def test_trigger_events_partial(manager_client):
    response = manager_client.get(
        reverse("automations:builder_trigger_events"), {"trigger_module": "members"}, headers=HTMX
    )

    assert response.text.strip().startswith(
        '<div class="trigger-event-group" id="trigger-event-field">'
    )
    assert 'id="trigger-options"' not in response.text  # no settings of its own
    assert (
        '<option value="member.deactivated" selected>Member is deactivated</option>'
        in response.text
    )


def test_condition_row_partial_adds_a_row_and_moves_total_forms_on(manager_client):
    response = manager_client.get(
        reverse("automations:builder_condition_row"), {"conditions-TOTAL_FORMS": "2"}, headers=HTMX
    )

    text = response.text
    assert 'id="conditions-2-row"' in text
    assert 'name="conditions-2-field"' in text and 'name="conditions-2-DELETE"' in text
    assert (
        '<input type="hidden" name="conditions-TOTAL_FORMS" value="3" '
        'id="id_conditions-TOTAL_FORMS" hx-swap-oob="true">'
    ) in text


def test_condition_row_partial_rerenders_operators_and_value_for_a_new_field(manager_client):
    response = manager_client.get(
        reverse("automations:builder_condition_row"),
        {
            "prefix": "conditions-1",
            "conditions-1-field": "employment_type",
            "conditions-1-operator": "contains",
            "conditions-1-value": "x",
        },
        headers=HTMX,
    )

    text = response.text
    assert 'id="conditions-1-row"' in text
    assert '<option value="contains"' not in text
    assert '<option value="is" selected>is</option>' in text
    assert '<option value="contractor">Contractor</option>' in text
    assert "hx-swap-oob" not in text


def test_condition_row_partial_refuses_odd_prefixes_and_stops_at_the_limit(manager_client):
    url = reverse("automations:builder_condition_row")

    assert manager_client.get(url, {"prefix": "headers-0"}).status_code == 400
    full = manager_client.get(url, {"conditions-TOTAL_FORMS": "20"}, headers=HTMX)
    assert full.status_code == 204 and full["HX-Trigger"] == "conditions-full"


def test_preview_partial_summarises_the_form_as_typed(manager_client):
    data = builder_data(
        name="Offboard",
        conditions=[("department", "is", "Sales"), ("title", "is", "")],
        webhook={"url": "https://hooks.nonexistent.invalid/offboard"},
        mdm={},
    )

    response = manager_client.post(reverse("automations:builder_preview"), data, headers=HTMX)

    text = response.text
    assert (
        "When a member in Sales is deactivated: revoke user-based licenses, lock their devices "
        "through MDM, call https://hooks.nonexistent.invalid/offboard"
    ) in text
    assert "1 unfinished condition left out" in text
    assert 'id="payload-preview" class="code" hx-swap-oob="true"' in text
    assert "&quot;name&quot;: &quot;Offboard&quot;" in text
    assert not Automation.objects.exists()


# --- CSP -----------------------------------------------------------------------------------------

INLINE = re.compile(r"<script\b[^>]*>\s*[^\s<]|<style\b|\sstyle\s*=|\son[a-z]+\s*=|hx-on", re.I)


def test_builder_templates_have_no_inline_script_or_style():
    folder = Path(settings.BASE_DIR) / "automations" / "templates" / "automations"
    offenders = [
        path.name
        for path in folder.glob("*.html")
        if INLINE.search(path.read_text(encoding="utf-8"))
    ]

    assert not offenders


def test_rendered_builder_page_has_no_inline_script_or_style(manager_client):
    make_member(department="Engineering")
    html = manager_client.get(reverse("automations:create")).text

    assert not INLINE.search(html)


def test_without_javascript_add_condition_posts_the_form_and_adds_a_row(manager_client):
    data = builder_data(add_condition="1")

    response = manager_client.post(reverse("automations:create"), data)

    assert response.status_code == 200
    assert 'id="conditions-1-row"' in response.text
    assert 'name="conditions-TOTAL_FORMS" value="2"' in response.text
    assert not Automation.objects.exists()


def test_the_switch_on_the_automation_page_reloads_the_page(manager_client):
    automation = make_automation(name="Plain")

    page = manager_client.get(automation.get_absolute_url()).text
    switch = page[page.index('class="switch-form"') :]
    switch = switch[: switch.index(">")]
    assert "hx-post" not in switch
    response = manager_client.post(
        reverse("automations:toggle", args=[automation.pk]),
        {"enabled": "0", "next": automation.get_absolute_url()},
    )
    assert response.url == automation.get_absolute_url()


def test_switch_without_htmx_never_redirects_off_site(manager_client):
    automation = make_automation(name="Switch me")
    url = reverse("automations:toggle", args=[automation.pk])

    response = manager_client.post(url, {"enabled": "0", "next": "https://evil.example/"})
    assert response.status_code == 302
    assert response["Location"] == automation.get_absolute_url()

    response = manager_client.post(url, {"enabled": "1", "next": "/automations/?page=2"})
    assert response["Location"] == "/automations/?page=2"
