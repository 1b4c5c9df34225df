"""Factories for execution-log tests: events, executions and action logs written directly, so the
pages can be tested for any outcome without running the engine."""

from __future__ import annotations

import itertools
from datetime import timedelta

from django.utils import timezone

from assets.models import MDMCommand
from automations.models import (
    ActionLog,
    Automation,
    Event,
    Execution,
    WebhookAttempt,
)

_seq = itertools.count(1)


def make_automation(**fields) -> Automation:
    n = next(_seq)
    defaults = {"name": f"Offboarding {n}", "trigger_event": "member.deactivated"}
    defaults.update(fields)
    return Automation.objects.create(**defaults)


def make_event(member, **fields) -> Event:
    defaults = {
        "kind": "member.deactivated",
        "occurred_at": timezone.now(),
        "status": Event.Status.DONE,
    }
    defaults.update(fields)
    return Event.objects.create(member=member, **defaults)


def make_execution(
    member, automation: Automation | None = None, *, event: Event | None = None, **fields
) -> Execution:
    automation = automation or make_automation()
    event = event or make_event(member)
    started = timezone.now() - timedelta(seconds=3)
    defaults = {
        "status": Execution.Status.SUCCEEDED,
        "started_at": started,
        "finished_at": started + timedelta(seconds=2, milliseconds=400),
    }
    defaults.update(fields)
    if defaults["status"] in (Execution.Status.PENDING, Execution.Status.RUNNING):
        defaults["finished_at"] = None
    return Execution.objects.create(
        automation=automation,
        automation_name=automation.name,
        event=event,
        member=member,
        **defaults,
    )


def make_log(execution: Execution, kind: str = "revoke_licenses", **fields) -> ActionLog:
    n = next(_seq)
    target_type = {
        "webhook": ActionLog.TargetType.WEBHOOK,
        "revoke_licenses": ActionLog.TargetType.ENTITLEMENT,
        "mdm_lock": ActionLog.TargetType.ASSET,
    }[kind]
    defaults = {
        "key": f"test:{execution.pk}:{kind}:{n}",
        "action_kind": kind,
        "target_type": target_type,
        "target_label": f"Target {n}",
        "status": ActionLog.Status.SUCCEEDED,
        "attempts": 1,
        "finished_at": timezone.now(),
    }
    defaults.update(fields)
    return ActionLog.objects.create(execution=execution, **defaults)


def make_webhook_attempt(log: ActionLog, number: int = 1, **fields) -> WebhookAttempt:
    defaults = {
        "url": "https://hooks.example.com/offboarding",
        "status_code": 200,
        "duration_ms": 42,
        "request_headers": {
            "content-type": "application/json",
            "webhook-signature": "[redacted]",
            "authorization": "[redacted]",
        },
        "response_headers": {"content-type": "text/plain"},
        "response_excerpt": "ok",
    }
    defaults.update(fields)
    return WebhookAttempt.objects.create(log=log, number=number, **defaults)


def make_mdm_command(log: ActionLog, *, pin: str = "246810", **fields) -> MDMCommand:
    defaults = {
        "status": MDMCommand.Status.SENT,
        "vendor_command_id": f"cmd-{log.pk}",
        "sent_at": timezone.now(),
    }
    defaults.update(fields)
    command = MDMCommand(asset=log.asset, connection=log.asset.mdm_connection, log=log, **defaults)
    command.set_pin(pin)
    command.save()
    return command
