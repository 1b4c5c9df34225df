"""The Actions section of the builder (issue 9): kinds added from the registry's menu, removed,
moved up and down, with htmx (the section is re-rendered by `builder_actions`) and without
JavaScript (the same buttons post the whole form, which comes back with the change, unsaved);
TOTAL_FORMS and DELETE stay honest; several actions of one kind are saved in the order set."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from automations.models import Automation
from automations.tests.builder_factories import action_rows, builder_data, make_automation

pytestmark = pytest.mark.django_db

CREATE = reverse("automations:create")
HR = {"url": "https://127.0.0.1/hr"}
TICKETING = {"url": "https://127.0.0.1/ticketing"}


def cards(html: str) -> list[tuple[str, str]]:
    """(prefix, kind) of the action cards shown, in page order."""
    return re.findall(r'id="action-(actions-\d+)" data-kind="(\w+)"', html)


def total(html: str) -> int:
    return int(re.search(r'name="actions-TOTAL_FORMS" value="(\d+)"', html).group(1))


def two_webhooks(**extra) -> dict:
    data = builder_data(revoke=None, **extra)
    data.update(action_rows(("webhook", HR), ("webhook", TICKETING)))
    return data


def test_without_javascript_add_puts_a_fresh_card_of_that_kind_and_saves_nothing(manager_client):
    response = manager_client.post(CREATE, builder_data(revoke=None, action_op="add:webhook"))

    assert response.status_code == 200
    html = response.text
    assert cards(html) == [("actions-0", "webhook")]
    assert total(html) == 1
    assert 'name="actions-0-url"' in html and 'name="actions-0-headers-TOTAL_FORMS"' in html
    # A fresh card shows no errors (nothing was asked of it yet).
    assert "Enter the URL the webhook is sent to." not in html
    assert not Automation.objects.exists()


def test_without_javascript_move_and_remove_keep_the_formset_honest(manager_client):
    html = manager_client.post(CREATE, two_webhooks(action_op="up:1")).text

    assert cards(html) == [("actions-1", "webhook"), ("actions-0", "webhook")]
    assert html.index("https://127.0.0.1/ticketing") < html.index("https://127.0.0.1/hr")
    assert 'name="actions-1-position" value="0"' in html
    assert 'name="actions-0-position" value="1"' in html

    html = manager_client.post(CREATE, two_webhooks(action_op="remove:0")).text
    assert cards(html) == [("actions-1", "webhook")]
    assert total(html) == 2  # the removed row stays in the formset, marked DELETE
    assert '<input type="hidden" name="actions-0-DELETE" value="on">' in html
    assert not Automation.objects.exists()


def test_two_webhooks_are_saved_in_the_order_set_each_with_its_own_secret(manager_client):
    data = two_webhooks()
    data["actions-0-position"], data["actions-1-position"] = "1", "0"

    response = manager_client.post(CREATE, data)

    assert response.status_code == 302
    automation = Automation.objects.get()
    hooks = list(automation.actions.order_by("position"))
    assert [(a.kind, a.config["url"], a.position) for a in hooks] == [
        ("webhook", "https://127.0.0.1/ticketing", 0),
        ("webhook", "https://127.0.0.1/hr", 1),
    ]
    assert hooks[0].get_secret() != hooks[1].get_secret()
    assert automation.changes.get().diff["Actions in order"] == [
        "",
        "Trigger webhook, Trigger webhook",
    ]


def test_removing_one_of_two_webhooks_on_edit_deletes_it_and_keeps_the_other(manager_client):
    automation = make_automation(revoke=False, webhook={"url": "https://127.0.0.1/hr"})
    kept = automation.actions.get()
    kept_secret = kept.get_secret()
    data = builder_data(revoke=None, initial_conditions=1)
    data.update(action_rows(("webhook", HR), ("webhook", TICKETING), ids=[kept.pk, None]))

    assert (
        manager_client.post(reverse("automations:edit", args=[automation.pk]), data).status_code
        == 302
    )
    assert automation.actions.count() == 2

    data = builder_data(revoke=None, initial_conditions=1)
    second = automation.actions.get(config__url="https://127.0.0.1/ticketing")
    data.update(action_rows(("webhook", HR), ("webhook", TICKETING), ids=[kept.pk, second.pk]))
    data["actions-1-DELETE"] = "on"
    response = manager_client.post(reverse("automations:edit", args=[automation.pk]), data)

    assert response.status_code == 302
    assert list(automation.actions.values_list("pk", flat=True)) == [kept.pk]
    kept.refresh_from_db()
    assert kept.get_secret() == kept_secret


def test_stop_on_error_is_saved_and_shown(manager_client):
    data = builder_data(revoke=None)
    data.update(
        action_rows(
            ("webhook", {**HR, "on_error": "stop"}), ("revoke_licenses", {"user_based": True})
        )
    )

    assert manager_client.post(CREATE, data).status_code == 302
    automation = Automation.objects.get()
    assert [a.continue_on_error for a in automation.actions.order_by("position")] == [False, True]
    page = manager_client.get(automation.get_absolute_url()).text
    assert "Stops the remaining actions if it fails" in page
    edit = manager_client.get(reverse("automations:edit", args=[automation.pk])).text
    assert '<option value="stop" selected>' in edit


def test_with_htmx_the_section_is_re_rendered_with_the_change(manager_client):
    url = reverse("automations:builder_actions")
    response = manager_client.post(
        url, two_webhooks(action_op="add:revoke_licenses"), headers={"HX-Request": "true"}
    )

    assert response.status_code == 200
    html = response.text
    assert html.lstrip().startswith('<section class="card builder-step" id="actions-section"')
    assert [kind for _, kind in cards(html)] == ["webhook", "webhook", "revoke_licenses"]
    assert total(html) == 3
    # The summary is asked for again, queued behind an older one still on its way.
    refresh = re.search(
        r'<div hidden hx-post="[^"]+"[^>]*id="actions-summary-refresh"', html
    ).group(0)
    assert 'hx-trigger="load"' in refresh and 'hx-sync="#builder-form:queue last"' in refresh
    assert not Automation.objects.exists()


def test_the_lock_cannot_be_added_by_who_may_not_use_it(manager_client):
    url = reverse("automations:builder_actions")

    response = manager_client.post(url, builder_data(action_op="add:mdm_lock"))
    assert response.status_code == 403

    html = manager_client.get(CREATE).text
    button = re.search(r'<button[^>]*value="add:mdm_lock"[^>]*>', html).group(0)
    assert "disabled" in button
