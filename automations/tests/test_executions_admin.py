"""The Django admin's execution log: read-only, filterable, searchable, no PIN, fixed queries."""

from __future__ import annotations

import pytest
from django.urls import reverse

from assets.tests.factories import make_mdm_connection
from automations.models import ActionLog
from automations.tests.execution_factories import (
    make_execution,
    make_log,
    make_mdm_command,
    make_webhook_attempt,
)
from conftest import make_asset, make_member

pytestmark = pytest.mark.django_db

MODELS = ["event", "execution", "actionlog", "webhookattempt", "mdmcommand"]


def admin_url(name: str, view: str) -> str:
    # MDMCommand lives in the assets app (issue 9); its admin is still the automations one.
    label = "assets" if name == "mdmcommand" else "automations"
    return f"admin:{label}_{name}_{view}"


def _populate(size: int):
    connection = make_mdm_connection()
    command = None
    for n in range(size):
        member = make_member(full_name=f"Leaver {n}")
        execution = make_execution(member, status="partially_failed")
        webhook = make_log(execution, "webhook", status=ActionLog.Status.FAILED)
        make_webhook_attempt(webhook, 1, status_code=503)
        make_log(execution, "revoke_licenses")
        asset = make_asset(custodian=member, mdm_connection=connection, mdm_device_id=f"a-{n}")
        command = make_mdm_command(make_log(execution, "mdm_lock", asset=asset), pin="975310")
    return command


@pytest.fixture
def support_client(client, support_staff):
    client.force_login(support_staff)
    return client


def test_support_staff_can_browse_every_execution_log_model_but_change_nothing(support_client):
    command = _populate(2)
    execution = command.log.execution
    objects = {
        "event": execution.event,
        "execution": execution,
        "actionlog": command.log,
        "webhookattempt": execution.logs.get(action_kind="webhook").webhook_attempts.get(),
        "mdmcommand": command,
    }

    for name in MODELS:
        changelist = support_client.get(reverse(admin_url(name, "changelist")))
        assert changelist.status_code == 200, name
        change_url = reverse(admin_url(name, "change"), args=[objects[name].pk])
        page = support_client.get(change_url)
        assert page.status_code == 200, name
        assert 'type="submit" value="Save"' not in page.content.decode(), name
        assert support_client.get(reverse(admin_url(name, "add"))).status_code == 403
        delete_url = reverse(admin_url(name, "delete"), args=[objects[name].pk])
        assert support_client.post(delete_url, {"post": "yes"}).status_code == 403


def test_admin_never_shows_the_unlock_pin(admin_client):
    command = _populate(1)

    pages = [
        admin_client.get(reverse("admin:assets_mdmcommand_changelist")),
        admin_client.get(reverse("admin:assets_mdmcommand_change", args=[command.pk])),
        admin_client.get(reverse("admin:automations_actionlog_change", args=[command.log.pk])),
        admin_client.get(
            reverse("admin:automations_execution_change", args=[command.log.execution_id])
        ),
    ]

    for page in pages:
        html = page.content.decode()
        assert page.status_code == 200
        assert "975310" not in html
        assert command.pin_encrypted not in html
        assert "pin_encrypted" not in html


def test_admin_filters_and_searches_the_execution_log(support_client):
    _populate(3)
    make_log(make_execution(make_member(full_name="Solo Person")), status="skipped")

    def rows(name: str, **params) -> int:
        response = support_client.get(reverse(admin_url(name, "changelist")), params)
        assert response.status_code == 200
        return response.context["cl"].result_count

    assert rows("execution", status="partially_failed") == 3
    assert rows("execution", q="Solo") == 1
    assert rows("actionlog", action_kind="mdm_lock") == 3
    assert rows("actionlog", status="skipped") == 1
    assert rows("actionlog", q='"Leaver 1"') == 3
    assert rows("webhookattempt", status_code="503") == 3
    assert rows("mdmcommand", status="sent") == 3
    assert rows("event", q='"leaver 2"') == 1


@pytest.mark.parametrize("name", MODELS)
def test_admin_changelists_cost_the_same_at_two_sizes(support_client, name):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = reverse(admin_url(name, "changelist"))
    support_client.get(url)  # warm the per-process caches (content types, permissions)
    counts = []
    for size in (2, 12):
        _populate(size)
        with CaptureQueriesContext(connection) as queries:
            assert support_client.get(url).status_code == 200
        counts.append(len(queries))

    assert counts[0] == counts[1], counts


def test_execution_change_page_with_its_action_log_inline_costs_the_same_at_two_sizes(
    support_client,
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # Warm the per-process caches (content types, permissions) on a first change page.
    warm = make_execution(make_member())
    support_client.get(reverse("admin:automations_execution_change", args=[warm.pk]))
    counts = []
    for size in (2, 20):
        execution = make_execution(make_member())
        for _ in range(size):
            make_log(execution)
        url = reverse("admin:automations_execution_change", args=[execution.pk])
        with CaptureQueriesContext(connection) as queries:
            assert support_client.get(url).status_code == 200
        counts.append(len(queries))

    assert counts[0] == counts[1], counts
