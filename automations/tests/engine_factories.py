"""Factories and helpers for the engine tests: automations with real actions, enrolled devices,
django-q2 in sync mode, and running the retries django-q2's scheduler has due."""

from __future__ import annotations

import itertools

from django.utils import timezone
from django.utils.module_loading import import_string

from assets.models import Asset, MDMConnection
from assetsonar.models import PortalSettings
from automations.models import Action, Automation, Condition
from automations.triggers import MEMBER_DEACTIVATED
from conftest import make_asset

# The Standard Webhooks specification's example secret (its golden vector is tested too).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

_seq = itertools.count(1)


def make_engine_automation(
    *,
    webhook_url: str | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    user_based: bool = False,
    user_machine: bool = False,
    device_based: bool = False,
    mdm: bool = False,
    conditions: list[tuple[str, str, object]] = (),
    match: str = "all",
    trigger_event: str = MEMBER_DEACTIVATED,
    **fields,
) -> Automation:
    """An automation with the actions asked for, in the seed's order: revoke, MDM lock, webhook."""
    n = next(_seq)
    automation = Automation.objects.create(
        name=fields.pop("name", f"Engine offboarding {n}"),
        trigger_event=trigger_event,
        match=match,
        **fields,
    )
    for position, (field, operator, value) in enumerate(conditions):
        Condition.objects.create(
            automation=automation, position=position, field=field, operator=operator, value=value
        )
    if webhook_url:
        action = Action(
            automation=automation,
            kind="webhook",
            position=2,
            config={"url": webhook_url, "method": method},
        )
        action.set_secret(SECRET)
        action.set_secret_config({"headers": headers} if headers else {})
        action.save()
    if user_based or user_machine or device_based:
        Action.objects.create(
            automation=automation,
            kind="revoke_licenses",
            position=0,
            config={
                "user_based": user_based,
                "user_machine": user_machine,
                "device_based": device_based,
            },
        )
    if mdm:
        Action.objects.create(
            automation=automation,
            kind="mdm_lock",
            position=1,
            config={
                "message": "This device belongs to Example Corp. Call IT.",
                "phone": "+1 555 0100",
            },
        )
    return automation


def make_connection(provider: str = "simulator", *, credentials=None, **fields) -> MDMConnection:
    n = next(_seq)
    connection = MDMConnection(
        name=fields.pop("name", f"Engine MDM {n}"), provider=provider, **fields
    )
    connection.set_credentials(credentials or {})
    connection.save()
    return connection


def make_device(member, connection: MDMConnection | None = None, device_id: str = "", **fields):
    """A device in `member`'s custody, enrolled in `connection` when given."""
    n = next(_seq)
    if connection is not None:
        fields.update(mdm_connection=connection, mdm_device_id=device_id or f"dev-{n}")
    return make_asset(custodian=member, **fields)


def mdm_commands(enabled: bool = True) -> None:
    PortalSettings.objects.update_or_create(pk=1, defaults={"mdm_commands_enabled": enabled})


def use_sync_q(monkeypatch, settings) -> None:
    """django-q2 runs tasks in-process, in the caller's transaction. Its Conf is read once at
    import, so the settings override alone would not reach it."""
    from django_q.conf import Conf

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    monkeypatch.setattr(Conf, "SYNC", True)


def fast_retries(settings, attempts: int = 7) -> None:
    """Retries due at once (backoff shrunk to zeros), short timeouts."""
    settings.WEBHOOK_RETRY_DELAYS = (0,) * (attempts - 1)
    settings.MDM_RETRY_DELAYS = (0,) * (attempts - 1)
    settings.WEBHOOK_READ_TIMEOUT = 0.5
    settings.WEBHOOK_TOTAL_TIMEOUT = 2
    settings.MDM_READ_TIMEOUT = 0.5


def run_due_schedules(limit: int = 50) -> int:
    """Run django-q2's scheduler (as the cluster does every 30 s) until no retry is due; in sync
    mode each scheduled task runs right away. Returns how many retries ran."""
    from django_q.models import Schedule
    from django_q.scheduler import scheduler

    ran = 0
    for _ in range(limit):
        due = Schedule.objects.filter(
            func="automations.tasks.retry_action", next_run__lte=timezone.now()
        )
        if not due.exists():
            return ran
        ran += due.count()
        scheduler()
    raise AssertionError("retries kept coming")


def locked_assets(member) -> list[Asset]:
    return list(Asset.objects.filter(custodian=member, lock_state=Asset.LockState.LOCKED))


def work_off_queue() -> int:
    """Do what a django-q2 worker does with each queued task (take it off the broker, run its
    function, acknowledge it) until the queue is empty; returns how many ran."""
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    broker = get_broker()
    ran = 0
    for _ in range(100):
        tasks = broker.dequeue()
        if not tasks:
            return ran
        for ack_id, payload in tasks:
            task = SignedPackage.loads(payload)
            import_string(task["func"])(*task["args"], **task["kwargs"])
            broker.acknowledge(ack_id)
            ran += 1
    raise AssertionError("the queue never emptied")
