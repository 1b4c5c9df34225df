"""The migrations of issue 9: automations saved in the old shape (one column per setting, at most
one action per kind) run identically after 0007 carried them into `Action.config` (same targets,
same payload, same headers and signature); MDM command rows survive their model's move to the
assets app (a state-only move: same table, same rows)."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from standardwebhooks import Webhook

from assetsonar import crypto
from automations.tests.engine_factories import SECRET, mdm_commands, use_sync_q
from automations.tests.servers import WebhookReceiver
from conftest import make_entitlement, make_license, make_member

BEFORE = [
    ("automations", "0006_execution_newest_index"),
    ("assets", "0003_mdmconnection_max_concurrent_requests"),
]


def _latest(executor: MigrationExecutor) -> list[tuple[str, str]]:
    return [
        node for node in executor.loader.graph.leaf_nodes() if node[0] in {"automations", "assets"}
    ]


@pytest.mark.django_db(transaction=True)
def test_old_automations_run_identically_after_the_migration(monkeypatch, settings):
    executor = MigrationExecutor(connection)
    latest = _latest(executor)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Automation = old.get_model("automations", "Automation")
    Action = old.get_model("automations", "Action")
    MDMConnection = old.get_model("assets", "MDMConnection")
    OldAsset = old.get_model("assets", "Asset")
    OldCommand = old.get_model("automations", "MDMCommand")

    with WebhookReceiver() as receiver:
        automation = Automation.objects.create(name="Offboard (old shape)")
        Action.objects.create(
            automation=automation,
            kind="webhook",
            position=2,
            url=receiver.url("/hr"),
            method="PUT",
            headers_encrypted=crypto.encrypt(json.dumps({"X-Api-Key": "k-123"})),
            secret_encrypted=crypto.encrypt(SECRET),
        )
        Action.objects.create(
            automation=automation,
            kind="revoke_licenses",
            position=0,
            revoke_user_based=True,
            revoke_user_machine=False,
            revoke_device_based=False,
        )
        Action.objects.create(
            automation=automation,
            kind="mdm_lock",
            position=1,
            lock_message="Return this laptop to IT.",
            lock_phone="+1 555 0100",
        )
        simulator = MDMConnection.objects.create(name="Old simulator", provider="simulator")
        old_asset = OldAsset.objects.create(
            name="Old Mac", asset_tag="OLD-1", category="laptop", platform="macos"
        )
        command = OldCommand.objects.create(
            asset=old_asset, connection=simulator, status="sent", message="Old lock"
        )

        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(latest)

        from assets.models import Asset, MDMCommand
        from automations.actions import get_kind
        from automations.models import Action as NewAction
        from automations.models import ActionLog, Execution

        # The MDM command row is still there, now read through the assets app.
        moved = MDMCommand.objects.get(pk=command.pk)
        assert (moved.asset_id, moved.connection_id, moved.status, moved.message) == (
            old_asset.pk,
            simulator.pk,
            "sent",
            "Old lock",
        )

        # Every setting is in config (headers still encrypted, never in config).
        actions = {a.kind: a for a in NewAction.objects.filter(automation_id=automation.pk)}
        assert {k: get_kind(k).read(a) for k, a in actions.items()} == {
            "webhook": {
                "url": receiver.url("/hr"),
                "method": "PUT",
                "headers": {"X-Api-Key": "k-123"},
            },
            "revoke_licenses": {"user_based": True, "user_machine": False, "device_based": False},
            "mdm_lock": {"message": "Return this laptop to IT.", "phone": "+1 555 0100"},
        }
        assert "k-123" not in json.dumps(actions["webhook"].config)
        assert "k-123" not in actions["webhook"].secrets_encrypted
        assert [a.kind for a in NewAction.objects.filter(automation_id=automation.pk)] == [
            "revoke_licenses",
            "mdm_lock",
            "webhook",
        ]

        # And it runs as it did: same targets, same payload, same headers, the old secret signs.
        use_sync_q(monkeypatch, settings)
        mdm_commands(enabled=True)
        from automations.tests.engine_factories import make_connection, make_device
        from members.services import member_deactivate

        member = make_member(full_name="Jordan Rivera")
        device = make_device(member, make_connection())
        entitlement = make_entitlement(license=make_license(name="Figma"), member=member)
        member_deactivate(member=member, actor=None, reason="Left")

    execution = Execution.objects.get(automation_id=automation.pk)
    assert execution.status == Execution.Status.SUCCEEDED
    request = receiver.requests[0]
    assert (request.method, request.path) == ("PUT", "/hr")
    assert request.headers["x-api-key"] == "k-123"
    Webhook(SECRET).verify(request.body, request.headers)
    body = json.loads(request.body)
    assert body["type"] == "member.deactivated"
    assert body["data"]["member"]["full_name"] == "Jordan Rivera"
    assert body["data"]["automation"] == {"id": automation.pk, "name": "Offboard (old shape)"}
    entitlement.refresh_from_db()
    assert entitlement.revoked_at is not None
    lock = MDMCommand.objects.get(asset=device)
    assert (lock.message, lock.phone) == ("Return this laptop to IT.", "+1 555 0100")
    assert Asset.objects.get(pk=device.pk).lock_state == Asset.LockState.LOCKED
    assert sorted(ActionLog.objects.values_list("action_kind", flat=True)) == [
        "mdm_lock",
        "revoke_licenses",
        "webhook",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_migration_reverses_to_the_old_columns():
    executor = MigrationExecutor(connection)
    latest = _latest(executor)
    from automations.models import Action, Automation

    automation = Automation.objects.create(name="New shape")
    hook = Action(automation=automation, kind="webhook", config={"url": "https://127.0.0.1/x"})
    hook.set_secret_config({"headers": {"X-Key": "v"}})
    hook.save()
    Action.objects.create(
        automation=automation, kind="mdm_lock", config={"message": "M", "phone": "1"}
    )

    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    rows = {a.kind: a for a in old.get_model("automations", "Action").objects.all()}
    assert (rows["webhook"].url, rows["webhook"].method) == ("https://127.0.0.1/x", "POST")
    assert json.loads(crypto.decrypt(rows["webhook"].headers_encrypted)) == {"X-Key": "v"}
    assert (rows["mdm_lock"].lock_message, rows["mdm_lock"].lock_phone) == ("M", "1")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(latest)
