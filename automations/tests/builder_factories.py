"""Factories for the builder and OTP tests: automations as rows, builder POST data, executions,
TOTP devices and their codes."""

from __future__ import annotations

import itertools
import time
from typing import Any

from django.utils import timezone
from django_otp.oath import TOTP

from assetsonar.models import PortalSettings
from automations.actions import ActionSpec
from automations.models import Action, AuthenticatorDevice, Automation, Condition, Event, Execution
from automations.services import AutomationSpec
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
        Action.objects.create(
            automation=automation, kind="revoke_licenses", config={"user_based": True}
        )
    if mdm is not None:
        Action.objects.create(
            automation=automation,
            kind="mdm_lock",
            position=1,
            config={
                "message": mdm.get("message", "Please return this device."),
                "phone": mdm.get("phone", "+1 555 0100"),
            },
        )
    if webhook is not None:
        action = Action(
            automation=automation,
            kind="webhook",
            position=2,
            config={
                "url": webhook.get("url", "https://127.0.0.1/hooks/offboard"),
                "method": webhook.get("method", "POST"),
            },
        )
        headers = webhook.get("headers", {})
        action.set_secret_config({"headers": headers} if headers else {})
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


def action_rows(
    *actions: tuple[str, dict[str, Any]],
    initial: int = 0,
    ids: list[int | None] | None = None,
) -> dict[str, Any]:
    """The action rows of a builder POST: (kind, settings) in order. Settings as the card's
    fields: webhook {"url", "method", "headers": [(name, value)], "initial_headers"}, revoke
    {"user_based": True, ...}, MDM {"message", "phone"}, and "on_error": "stop" on any."""
    data: dict[str, Any] = management("actions", len(actions), initial)
    for i, (kind, settings) in enumerate(actions):
        prefix = f"actions-{i}"
        data[f"{prefix}-kind"] = kind
        data[f"{prefix}-position"] = str(i)
        if ids and i < len(ids) and ids[i]:
            data[f"{prefix}-action_id"] = str(ids[i])
        settings = dict(settings)
        if settings.pop("on_error", "") == "stop":
            data[f"{prefix}-on_error"] = "stop"
        if kind == "webhook":
            headers = settings.pop("headers", [])
            data.update(
                management(f"{prefix}-headers", len(headers), settings.pop("initial_headers", 0))
            )
            for j, (header, value) in enumerate(headers):
                data[f"{prefix}-headers-{j}-name"] = header
                data[f"{prefix}-headers-{j}-value"] = value
            data[f"{prefix}-url"] = settings.get("url", "https://127.0.0.1/hooks/offboard")
            data[f"{prefix}-method"] = settings.get("method", "POST")
        elif kind == "revoke_licenses":
            for flag, on in settings.items():
                if on:
                    data[f"{prefix}-{flag}"] = "on"
        else:
            for name, value in settings.items():
                data[f"{prefix}-{name}"] = value
    return data


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
    automation: Automation | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A POST of the builder form; by default a valid one (one condition, revoke user-based).
    Actions in the order revoke, MDM lock, webhook (as the seed builds them); with
    `automation`, each row edits that automation's stored action of its kind."""
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
    rows: list[tuple[str, dict[str, Any]]] = []
    if revoke:
        rows.append(("revoke_licenses", dict.fromkeys(revoke, True)))
    if mdm is not None:
        rows.append(
            (
                "mdm_lock",
                {
                    "message": mdm.get("message", "This device belongs to Example Ltd."),
                    "phone": mdm.get("phone", "+1 555 0100"),
                },
            )
        )
    if webhook is not None:
        rows.append(
            (
                "webhook",
                {
                    "url": webhook.get("url", "https://127.0.0.1/hooks/offboard"),
                    "method": webhook.get("method", "POST"),
                    "headers": headers or [],
                    "initial_headers": initial_headers,
                },
            )
        )
    ids = None
    if automation is not None:
        stored = {a.kind: a.pk for a in automation.actions.all()}
        ids = [stored.get(kind) for kind, _ in rows]
    data.update(action_rows(*rows, ids=ids))
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


def webhook_spec(url: str, method: str = "POST", headers: dict | None = None) -> ActionSpec:
    return ActionSpec("webhook", {"url": url, "method": method, "headers": dict(headers or {})})


def revoke_spec(
    user_based: bool = False, user_machine: bool = False, device_based: bool = False
) -> ActionSpec:
    return ActionSpec(
        "revoke_licenses",
        {"user_based": user_based, "user_machine": user_machine, "device_based": device_based},
    )


def mdm_spec(message: str, phone: str) -> ActionSpec:
    return ActionSpec("mdm_lock", {"message": message, "phone": phone})


def automation_spec(
    *,
    webhook: ActionSpec | None = None,
    revoke: ActionSpec | None = None,
    mdm: ActionSpec | None = None,
    **fields: Any,
) -> AutomationSpec:
    """An AutomationSpec with the seed's actions, in the seed's order (revoke, lock, webhook)."""
    actions = tuple(a for a in (revoke, mdm, webhook) if a is not None)
    return AutomationSpec(**{"actions": actions, **fields})


def card(forms: Any, kind: str, nth: int = 0) -> Any:
    """The settings form of the builder's nth action of `kind`."""
    return [row.settings for row in forms.actions.rows() if row.kind_def.key == kind][nth]
