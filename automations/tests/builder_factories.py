"""Factories for the builder and OTP tests: automations as rows, builder POST data, executions,
TOTP devices and their codes."""

from __future__ import annotations

import itertools
import time
from typing import Any

from django.utils import timezone
from django_otp.oath import TOTP

from assetsonar.models import PortalSettings
from automations.models import Action, AuthenticatorDevice, Automation, Condition, Event, Execution
from conftest import make_member

_seq = itertools.count(1)


def mdm_feature(on: bool = True) -> None:
    settings = PortalSettings.load()
    settings.mdm_commands_enabled = on
    settings.save()


def make_automation(
    *,
    name: str | None = None,
    created_by=None,
    enabled: bool = True,
    trigger_event: str = "member.deactivated",
    match: str = "all",
    conditions: list[tuple[str, str, Any]] | None = None,
    revoke: bool = True,
    webhook: dict | None = None,
    mdm: dict | None = None,
) -> Automation:
    """An automation written straight to the database (the services are what is under test)."""
    automation = Automation.objects.create(
        name=name or f"Automation {next(_seq)}",
        enabled=enabled,
        trigger_module="members",
        trigger_event=trigger_event,
        match=match,
        created_by=created_by,
    )
    for position, (field, operator, value) in enumerate(
        conditions if conditions is not None else [("department", "is", "Engineering")]
    ):
        Condition.objects.create(
            automation=automation, position=position, field=field, operator=operator, value=value
        )
    if revoke:
        Action.objects.create(automation=automation, kind="revoke_licenses", revoke_user_based=True)
    if mdm is not None:
        Action.objects.create(
            automation=automation,
            kind="mdm_lock",
            position=1,
            lock_message=mdm.get("message", "Please return this device."),
            lock_phone=mdm.get("phone", "+1 555 0100"),
        )
    if webhook is not None:
        action = Action(
            automation=automation,
            kind="webhook",
            position=2,
            url=webhook.get("url", "https://127.0.0.1/hooks/offboard"),
            method=webhook.get("method", "POST"),
        )
        action.set_headers(webhook.get("headers", {}))
        action.set_secret(webhook.get("secret", "whsec_" + "A" * 32))
        action.save()
    return automation


def make_execution(automation: Automation, *, status: str = "succeeded", member=None) -> Execution:
    member = member or make_member()
    event = Event.objects.create(
        kind=automation.trigger_event,
        member=member,
        occurred_at=timezone.now(),
        member_snapshot={"id": member.pk},
    )
    return Execution.objects.create(
        automation=automation,
        automation_name=automation.name,
        event=event,
        member=member,
        status=status,
    )


def management(prefix: str, total: int, initial: int = 0) -> dict[str, str]:
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "20",
    }


def builder_data(
    *,
    name: str = "Offboard engineers",
    description: str = "",
    enabled: bool = True,
    trigger_event: str = "member.deactivated",
    match: str = "all",
    conditions: list[tuple[str, str, Any]] | None = None,
    initial_conditions: int = 0,
    revoke: tuple[str, ...] | None = ("user_based",),
    webhook: dict | None = None,
    headers: list[tuple[str, str]] | None = None,
    initial_headers: int = 0,
    mdm: dict | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A POST of the builder form; by default a valid one (one condition, revoke user-based)."""
    conditions = [("department", "is", "Engineering")] if conditions is None else conditions
    data: dict[str, Any] = {
        "name": name,
        "description": description,
        "trigger_module": "members",
        "trigger_event": trigger_event,
        "match": match,
        **management("conditions", len(conditions), initial_conditions),
    }
    if enabled:
        data["enabled"] = "on"
    for i, (field, operator, value) in enumerate(conditions):
        data[f"conditions-{i}-field"] = field
        data[f"conditions-{i}-operator"] = operator
        if value is not None:
            data[f"conditions-{i}-value"] = value
    headers = headers or []
    data.update(management("headers", len(headers), initial_headers))
    for i, (header, value) in enumerate(headers):
        data[f"headers-{i}-name"] = header
        data[f"headers-{i}-value"] = value
    if revoke:
        data["revoke-enabled"] = "on"
        for flag in revoke:
            data[f"revoke-{flag}"] = "on"
    if webhook is not None:
        data["webhook-enabled"] = "on"
        data["webhook-url"] = webhook.get("url", "https://127.0.0.1/hooks/offboard")
        data["webhook-method"] = webhook.get("method", "POST")
    else:
        data["webhook-method"] = "POST"
    if mdm is not None:
        data["mdm-enabled"] = "on"
        data["mdm-message"] = mdm.get("message", "This device belongs to Example Ltd.")
        data["mdm-phone"] = mdm.get("phone", "+1 555 0100")
    data.update(extra)
    return data


def totp_device(user, **fields: Any) -> AuthenticatorDevice:
    return AuthenticatorDevice.objects.create(
        user=user, name="Authenticator app", confirmed=True, **fields
    )


def totp_code(device: AuthenticatorDevice, *, steps: int = 0) -> str:
    """The code the user's app shows now (or `steps` steps from now)."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, 0)
    totp.time = time.time() + steps * device.step
    return f"{totp.token():0{device.digits}d}"
