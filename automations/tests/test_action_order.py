"""One order of actions everywhere, the IT manager's (issue 9; issue 7 item 3 made the builder,
the engine, the execution log and the member's panel agree): the builder's cards, the engine's
preparation and sending (device locks apart: they go first, in a pool of their own), the
execution log, the member's Automated actions panel and the admin. Several actions of one kind
(two webhooks) each have their own logs and idempotency keys, and an action may stop the
remaining ones when it fails."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from automations.models import Action, ActionLog, Automation, Execution
from automations.selectors_executions import execution_logs, member_action_logs
from automations.tests.engine_factories import (
    SECRET,
    make_connection,
    make_device,
    mdm_commands,
    use_sync_q,
)
from automations.tests.execution_factories import make_execution, make_log
from automations.tests.servers import WebhookReceiver
from conftest import make_entitlement, make_license, make_member
from members.services import member_deactivate

pytestmark = pytest.mark.django_db


def kinds_in(html: str) -> list[str]:
    """The action kinds of the rows, in page order, each run of equal kinds once."""
    kinds = re.findall(r'data-kind="(\w+)"', html)
    return [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]


def webhook(automation, position: int, url: str, **fields) -> Action:
    action = Action(
        automation=automation,
        kind="webhook",
        position=position,
        config={"url": url, "method": "POST"},
        **fields,
    )
    action.set_secret(SECRET)
    action.save()
    return action


def revoke(automation, position: int, **fields) -> Action:
    return Action.objects.create(
        automation=automation,
        kind="revoke_licenses",
        position=position,
        config={"user_based": True},
        **fields,
    )


def lock(automation, position: int) -> Action:
    return Action.objects.create(
        automation=automation,
        kind="mdm_lock",
        position=position,
        config={"message": "Return it to IT.", "phone": "+1 555 0100"},
    )


def deactivate(member, capture) -> None:
    with capture(execute=True):
        member_deactivate(member=member, actor=None, reason="Left")


def test_the_builder_shows_the_actions_in_their_order(manager_client):
    automation = Automation.objects.create(name="Order")
    webhook(automation, 2, "https://127.0.0.1/hr")
    revoke(automation, 1)
    webhook(automation, 0, "https://127.0.0.1/ticketing")

    html = manager_client.get(reverse("automations:edit", args=[automation.pk])).text
    section = html[html.index('id="action-rows"') : html.index('id="add-action"')]

    assert re.findall(r'data-kind="(\w+)"', section) == ["webhook", "revoke_licenses", "webhook"]
    assert section.index("https://127.0.0.1/ticketing") < section.index("https://127.0.0.1/hr")
    page = manager_client.get(automation.get_absolute_url()).text
    assert page.index("https://127.0.0.1/ticketing") < page.index("https://127.0.0.1/hr")


def test_two_webhooks_of_one_automation_are_sent_in_order_each_with_its_own_key(
    monkeypatch, settings, django_capture_on_commit_callbacks
):
    use_sync_q(monkeypatch, settings)
    mdm_commands(enabled=True)
    member = make_member()
    make_device(member, make_connection())
    make_entitlement(license=make_license(), member=member)
    with WebhookReceiver() as receiver:
        automation = Automation.objects.create(name="Two webhooks")
        revoke(automation, 0)
        hr = webhook(automation, 1, receiver.url("/hr"))
        ticketing = webhook(automation, 2, receiver.url("/ticketing"))
        lock(automation, 3)
        deactivate(member, django_capture_on_commit_callbacks)

    # The lock went first (its own pool); the two webhooks one after the other, in order.
    assert [r.path for r in receiver.requests] == ["/hr", "/ticketing"]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 2
    execution = Execution.objects.get()
    assert execution.status == Execution.Status.SUCCEEDED
    logs = execution_logs(execution)
    assert [log.action_kind for log in logs] == [
        "revoke_licenses",
        "webhook",
        "webhook",
        "mdm_lock",
    ]
    hooks = [log for log in logs if log.action_kind == "webhook"]
    assert [log.action_id for log in hooks] == [hr.pk, ticketing.pk]
    assert f":{hr.pk}:" in hooks[0].key and f":{ticketing.pk}:" in hooks[1].key


def test_the_execution_log_the_panel_and_the_admin_show_that_order_whatever_was_recorded_first(
    manager_client, client, support_staff
):
    member = make_member()
    automation = Automation.objects.create(name="Newer run")
    actions = [
        webhook(automation, 0, "https://127.0.0.1/hr"),
        lock(automation, 1),
        revoke(automation, 2),
    ]
    older = make_execution(member, Automation.objects.create(name="Older run"))
    newer = make_execution(member, automation)
    for execution in (older, newer):
        # Recorded in the reverse of the automation's order.
        for action in reversed(actions):
            make_log(
                execution,
                kind=action.kind,
                action=action if execution is newer else None,
                target_label=f"target of {action.kind}",
            )
    order = ["webhook", "mdm_lock", "revoke_licenses"]

    assert [log.action_kind for log in execution_logs(newer)] == order
    logs, _ = member_action_logs(member)
    assert [(log.execution_id, log.action_kind) for log in logs][:3] == [
        (newer.pk, kind) for kind in order
    ]
    detail = manager_client.get(newer.get_absolute_url()).content.decode()
    assert kinds_in(detail) == order
    panel = manager_client.get(
        reverse("automations:member_actions_panel", args=[member.pk])
    ).content.decode()
    assert kinds_in(panel)[:3] == order
    # One heading per execution, newest first, instead of the name on every row.
    headings = re.findall(r'<h3 class="run-heading">\s*<a href="[^"]+">([^<]+)</a>', panel)
    assert headings == ["Newer run", "Older run"]

    client.force_login(support_staff)
    html = client.get(
        reverse("admin:automations_execution_change", args=[newer.pk])
    ).content.decode()
    positions = [html.index(f"target of {kind}") for kind in order]
    assert positions == sorted(positions)


def test_a_failed_action_set_to_stop_skips_the_remaining_ones_naming_it(
    monkeypatch, settings, django_capture_on_commit_callbacks
):
    use_sync_q(monkeypatch, settings)
    member = make_member()
    entitlement = make_entitlement(license=make_license(), member=member)
    with WebhookReceiver() as receiver:
        receiver.answer(400)  # final: not retried
        automation = Automation.objects.create(name="Approve first")
        webhook(automation, 0, receiver.url("/hr"), continue_on_error=False)
        revoke(automation, 1)
        webhook(automation, 2, receiver.url("/ticketing"))
        deactivate(member, django_capture_on_commit_callbacks)

    assert [r.path for r in receiver.requests] == ["/hr"]
    execution = Execution.objects.get()
    assert execution.status == Execution.Status.FAILED
    logs = execution_logs(execution)
    assert [(log.action_kind, log.status) for log in logs] == [
        ("webhook", ActionLog.Status.FAILED),
        ("revoke_licenses", ActionLog.Status.SKIPPED),
        ("webhook", ActionLog.Status.SKIPPED),
    ]
    for skipped in logs[1:]:
        assert skipped.insight == (
            "Not run: “Trigger webhook” (action 1) failed, and it is set to stop the remaining "
            "actions of this automation when it fails."
        )
    entitlement.refresh_from_db()
    assert entitlement.revoked_at is None
    assert "3 of 3 actions were not done" in execution.insight


def test_after_a_stopping_action_succeeds_the_remaining_ones_run(
    monkeypatch, settings, django_capture_on_commit_callbacks
):
    use_sync_q(monkeypatch, settings)
    member = make_member()
    entitlement = make_entitlement(license=make_license(), member=member)
    with WebhookReceiver() as receiver:
        automation = Automation.objects.create(name="Tell HR first")
        webhook(automation, 0, receiver.url("/hr"), continue_on_error=False)
        revoke(automation, 1)
        webhook(automation, 2, receiver.url("/ticketing"))
        deactivate(member, django_capture_on_commit_callbacks)

    assert [r.path for r in receiver.requests] == ["/hr", "/ticketing"]
    execution = Execution.objects.get()
    assert execution.status == Execution.Status.SUCCEEDED
    assert [log.status for log in execution_logs(execution)] == [ActionLog.Status.SUCCEEDED] * 3
    assert not ActionLog.objects.filter(detail__held_by__isnull=False).exists()
    entitlement.refresh_from_db()
    assert entitlement.revoked_at is not None


def test_a_failing_action_that_continues_on_error_leaves_the_others_running(
    monkeypatch, settings, django_capture_on_commit_callbacks
):
    use_sync_q(monkeypatch, settings)
    member = make_member()
    make_entitlement(license=make_license(), member=member)
    with WebhookReceiver() as receiver:
        receiver.answer(400)
        automation = Automation.objects.create(name="Default")
        webhook(automation, 0, receiver.url("/hr"))
        revoke(automation, 1)
        deactivate(member, django_capture_on_commit_callbacks)

    execution = Execution.objects.get()
    assert execution.status == Execution.Status.PARTIALLY_FAILED
    assert [log.status for log in execution_logs(execution)] == [
        ActionLog.Status.FAILED,
        ActionLog.Status.SUCCEEDED,
    ]


def test_retrying_a_failed_stopping_action_runs_the_ones_it_held(
    monkeypatch, settings, django_capture_on_commit_callbacks
):
    from automations.engine.retry import execution_retry_failed

    use_sync_q(monkeypatch, settings)
    member = make_member()
    entitlement = make_entitlement(license=make_license(), member=member)
    with WebhookReceiver() as receiver:
        receiver.answer(400)
        automation = Automation.objects.create(name="Tell HR first")
        webhook(automation, 0, receiver.url("/hr"), continue_on_error=False)
        revoke(automation, 1)
        deactivate(member, django_capture_on_commit_callbacks)
        execution = Execution.objects.get()
        assert execution.status == Execution.Status.FAILED

        with django_capture_on_commit_callbacks(execute=True):
            execution_retry_failed(execution=execution, actor=None)

    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED
    assert [r.path for r in receiver.requests] == ["/hr", "/hr"]
    assert [(log.action_kind, log.status) for log in execution_logs(execution)] == [
        ("webhook", ActionLog.Status.SUCCEEDED),
        ("revoke_licenses", ActionLog.Status.SUCCEEDED),
    ]
    entitlement.refresh_from_db()
    assert entitlement.revoked_at is not None


def test_each_webhook_has_its_own_secret_rotated_on_its_own(manager_client):
    automation = Automation.objects.create(name="Two secrets")
    hr = webhook(automation, 0, "https://127.0.0.1/hr")
    ticketing = webhook(automation, 1, "https://127.0.0.1/ticketing")

    response = manager_client.post(
        reverse("automations:rotate_secret", args=[automation.pk]), {"action": ticketing.pk}
    )

    assert response.status_code == 302
    hr.refresh_from_db()
    ticketing.refresh_from_db()
    assert hr.get_secret() == SECRET and hr.secret_rotated_at is None
    assert ticketing.get_secret() != SECRET and ticketing.secret_rotated_at is not None
    assert ticketing.previous_secret_signs()
    page = manager_client.get(automation.get_absolute_url()).text
    assert f'id="rotate-dialog-{hr.pk}"' in page and f'id="rotate-dialog-{ticketing.pk}"' in page
