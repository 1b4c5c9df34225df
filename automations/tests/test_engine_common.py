"""The engine's shared helpers: the bulk row update the batch's deferred writes end with."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from assets.models import Asset
from automations.engine.common import deferred_writes, rows_update, write_save
from automations.models import ActionLog, Event, Execution
from automations.tests.engine_factories import make_engine_automation
from conftest import make_asset, make_member

pytestmark = pytest.mark.django_db


def _logs(count: int) -> list[ActionLog]:
    member = make_member()
    automation = make_engine_automation(user_based=True)
    event = Event.objects.create(
        kind="member_deactivated", member=member, occurred_at=timezone.now(), member_snapshot={}
    )
    execution = Execution.objects.create(
        event=event, automation=automation, automation_name=automation.name, member=member
    )
    return [
        ActionLog.objects.create(
            key=f"{execution.pk}:{n}",
            execution=execution,
            action_kind="webhook",
            target_type=ActionLog.TargetType.WEBHOOK,
            target_label=f"target {n}",
            next_attempt_at=timezone.now(),
            detail={"n": n},
        )
        for n in range(count)
    ]


def test_rows_update_writes_each_row_its_own_values_and_nothing_else():
    logs = _logs(3)
    untouched = _logs(1)[0]
    now = timezone.now()
    for n, log in enumerate(logs):
        log.status = ActionLog.Status.SUCCEEDED if n else ActionLog.Status.FAILED
        log.insight = f"insight ’{n}’ with 'quotes'"
        log.next_attempt_at = None
        log.finished_at = now + timedelta(seconds=n)
        log.detail = {"n": n, "done": True}
        log.target_label = "not saved"

    with CaptureQueriesContext(connection) as queries:
        rows_update(
            ActionLog, logs, ["status", "insight", "next_attempt_at", "finished_at", "detail"]
        )

    if connection.vendor == "postgresql":
        assert len(queries) == 1
    for n, log in enumerate(logs):
        stored = ActionLog.objects.get(pk=log.pk)
        assert stored.status == (ActionLog.Status.SUCCEEDED if n else ActionLog.Status.FAILED)
        assert stored.insight == f"insight ’{n}’ with 'quotes'"
        assert stored.next_attempt_at is None
        assert stored.finished_at == now + timedelta(seconds=n)
        assert stored.detail == {"n": n, "done": True}
        assert stored.target_label == f"target {n}"
    stored = ActionLog.objects.get(pk=untouched.pk)
    assert (stored.status, stored.insight, stored.detail) == (untouched.status, "", {"n": 0})


def test_deferred_saves_of_several_models_are_flushed_in_bulk():
    assets = [make_asset(custodian=make_member()) for _ in range(3)]
    logs = _logs(2)
    with deferred_writes():
        for asset in assets:
            asset.lock_state = Asset.LockState.PENDING
            write_save(asset, ["lock_state"])
        assets[0].lock_state = Asset.LockState.LOCKED  # a later write of the same row wins
        write_save(assets[0], ["lock_state"])
        for log in logs:
            log.insight = f"log {log.pk}"
            write_save(log, ["insight"])
        assert not Asset.objects.filter(lock_state=Asset.LockState.PENDING).exists()

    states = dict(
        Asset.objects.filter(pk__in=[a.pk for a in assets]).values_list("pk", "lock_state")
    )
    assert states == {
        assets[0].pk: Asset.LockState.LOCKED,
        assets[1].pk: Asset.LockState.PENDING,
        assets[2].pk: Asset.LockState.PENDING,
    }
    assert [ActionLog.objects.get(pk=log.pk).insight for log in logs] == [
        f"log {log.pk}" for log in logs
    ]
