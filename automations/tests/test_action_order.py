"""One order of actions everywhere, the builder's: revoke licenses → lock devices → webhook
(issue 7, item 3): the builder's cards, the engine's recorded logs, the execution log and the
member's Automated actions panel, which groups the actions by execution."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from automations.models import ActionLog, Execution
from automations.selectors_executions import execution_logs, member_action_logs
from automations.tests.engine_factories import (
    make_connection,
    make_device,
    make_engine_automation,
    mdm_commands,
    use_sync_q,
)
from automations.tests.execution_factories import make_automation, make_execution, make_log
from automations.tests.servers import WebhookReceiver
from conftest import make_entitlement, make_license, make_member
from members.services import member_deactivate

pytestmark = pytest.mark.django_db

BUILDER_ORDER = ["revoke_licenses", "mdm_lock", "webhook"]


def kinds_in(html: str) -> list[str]:
    """The action kinds of the rows, in page order, each run of equal kinds once."""
    kinds = re.findall(r'data-kind="(\w+)"', html)
    return [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]


def test_the_order_is_the_builders():
    assert list(ACTION_ORDER) == BUILDER_ORDER


def test_the_builder_shows_the_actions_in_that_order(manager_client):
    html = manager_client.get(reverse("automations:create")).content.decode()

    positions = [html.index(f'id="action-{card}"') for card in ("revoke", "mdm", "webhook")]
    assert positions == sorted(positions)


def test_the_engine_records_the_actions_in_the_builders_order(
    monkeypatch, settings, django_capture_on_commit_callbacks
):
    use_sync_q(monkeypatch, settings)
    mdm_commands(enabled=True)
    member = make_member()
    make_device(member, make_connection())
    make_entitlement(license=make_license(), member=member)
    with WebhookReceiver() as receiver:
        # Stored positions put the webhook first; the order is the builder's regardless.
        make_engine_automation(webhook_url=receiver.url(), user_based=True, mdm=True)
        with django_capture_on_commit_callbacks(execute=True):
            member_deactivate(member=member, actor=None, reason="Left")

    logs = ActionLog.objects.order_by("id").values_list("action_kind", flat=True)
    assert list(logs) == BUILDER_ORDER
    assert Execution.objects.get().status == Execution.Status.SUCCEEDED


def test_the_execution_log_and_the_panel_show_that_order_whatever_was_recorded_first(
    manager_client,
):
    member = make_member()
    older = make_execution(member, make_automation(name="Older run"))
    newer = make_execution(member, make_automation(name="Newer run"))
    for execution in (older, newer):
        # Recorded webhook first, then the lock, then the licenses (as main's engine did).
        make_log(execution, kind="webhook", target_label="https://hr.example.com")
        make_log(execution, kind="mdm_lock", target_label="MacBook")
        make_log(execution, kind="revoke_licenses", target_label="Figma")

    assert [log.action_kind for log in execution_logs(newer)] == BUILDER_ORDER
    logs, _ = member_action_logs(member)
    assert [(log.execution_id, log.action_kind) for log in logs] == [
        (newer.pk, kind) for kind in BUILDER_ORDER
    ] + [(older.pk, kind) for kind in BUILDER_ORDER]

    detail = manager_client.get(newer.get_absolute_url()).content.decode()
    assert kinds_in(detail) == BUILDER_ORDER

    panel = manager_client.get(
        reverse("automations:member_actions_panel", args=[member.pk])
    ).content.decode()
    assert kinds_in(panel) == BUILDER_ORDER * 2
    # One heading per execution, newest first, instead of the name on every row.
    headings = re.findall(r'<h3 class="run-heading">\s*<a href="[^"]+">([^<]+)</a>', panel)
    assert headings == ["Newer run", "Older run"]
    assert panel.count("Newer run") == 1


def test_the_admin_lists_an_executions_actions_in_that_order(client, support_staff):
    member = make_member()
    execution = make_execution(member)
    for kind in ("webhook", "mdm_lock", "revoke_licenses"):
        make_log(execution, kind=kind, target_label=f"target of {kind}")
    client.force_login(support_staff)

    html = client.get(
        reverse("admin:automations_execution_change", args=[execution.pk])
    ).content.decode()

    positions = [html.index(f"target of {kind}") for kind in BUILDER_ORDER]
    assert positions == sorted(positions)
