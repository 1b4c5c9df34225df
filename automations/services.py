"""Writes of the automation builder. Every write is atomic and leaves, in the same transaction,
an AutomationChange (the history shown on the automation, with a diff) and an AuditEvent.

The MDM rule is enforced here as well as in the views (defence in depth): whatever changes
whom or when an automation locks devices (see `lock_change`: adding or changing the lock, its
trigger, match or conditions, switching it on, duplicating it with the lock) needs the portal's
"MDM management commands" feature, the "execute MDM commands" permission and a one-time
password that the caller verified in the same request (`otp_verified=True`); removing the lock
needs the feature and permission only.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from assetsonar.audit import audit_record
from assetsonar.models import AuditEvent
from automations import conditions as cond
from automations import net, triggers
from automations.models import ACTION_ORDER, Action, Automation, AutomationChange, Condition
from automations.selectors import mdm_availability

ACTION_POSITIONS = {kind: position for position, kind in enumerate(ACTION_ORDER)}
MAX_CONDITIONS = 20


class MDMNotAllowed(PermissionDenied):
    """The actor may not add, change or remove an MDM action (feature off or no permission)."""


class OTPRequired(PermissionDenied):
    """Adding or changing an MDM action without a one-time password verified in this request."""


@dataclass(frozen=True)
class ConditionSpec:
    field: str
    operator: str
    value: Any = None


@dataclass(frozen=True)
class WebhookSpec:
    url: str
    method: str = Action.Method.POST
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RevokeSpec:
    user_based: bool = False
    user_machine: bool = False
    device_based: bool = False

    def as_dict(self) -> dict[str, bool]:
        return {
            "user_based": self.user_based,
            "user_machine": self.user_machine,
            "device_based": self.device_based,
        }


@dataclass(frozen=True)
class MDMLockSpec:
    message: str
    phone: str


@dataclass(frozen=True)
class AutomationSpec:
    """Everything the builder form says about an automation, validated by the form and checked
    again here."""

    name: str
    trigger_module: str
    trigger_event: str
    description: str = ""
    enabled: bool = True
    match: str = Automation.Match.ALL
    conditions: tuple[ConditionSpec, ...] = ()
    webhook: WebhookSpec | None = None
    revoke: RevokeSpec | None = None
    mdm: MDMLockSpec | None = None


@dataclass(frozen=True)
class SaveResult:
    automation: Automation
    change: AutomationChange | None
    # A newly generated webhook signing secret, to be shown to the user once.
    new_secret: str | None = None


def generate_signing_secret() -> str:
    """A Standard Webhooks secret: "whsec_" + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def spec_from_automation(automation: Automation) -> AutomationSpec:
    """The stored automation as a spec (uses prefetched conditions and actions if loaded)."""
    actions = {a.kind: a for a in automation.actions.all()}
    webhook = actions.get(Action.Kind.WEBHOOK)
    revoke = actions.get(Action.Kind.REVOKE_LICENSES)
    mdm = actions.get(Action.Kind.MDM_LOCK)
    return AutomationSpec(
        name=automation.name,
        description=automation.description,
        enabled=automation.enabled,
        trigger_module=automation.trigger_module,
        trigger_event=automation.trigger_event,
        match=automation.match,
        conditions=tuple(
            ConditionSpec(c.field, c.operator, c.value)
            for c in sorted(automation.conditions.all(), key=lambda c: (c.position, c.pk))
        ),
        webhook=WebhookSpec(url=webhook.url, method=webhook.method, headers=webhook.get_headers())
        if webhook
        else None,
        revoke=RevokeSpec(
            user_based=revoke.revoke_user_based,
            user_machine=revoke.revoke_user_machine,
            device_based=revoke.revoke_device_based,
        )
        if revoke
        else None,
        mdm=MDMLockSpec(message=mdm.lock_message, phone=mdm.lock_phone) if mdm else None,
    )


def mdm_change(before: MDMLockSpec | None, after: MDMLockSpec | None) -> str:
    """ "added", "changed", "removed", or "" when the MDM action stays as it is."""
    if before == after:
        return ""
    if before is None:
        return "added"
    if after is None:
        return "removed"
    return "changed"


# What each kind of lock change does, for the OTP and refusal dialogs.
LOCK_CHANGE_PHRASES = {
    "added": "adds a device lock through MDM",
    "changed": "changes the MDM lock-screen message or phone number",
    "removed": "removes the MDM device lock",
    "retargeted": "changes whom or when this automation locks devices (its trigger, match or "
    "conditions)",
    "switched on": "switches on an automation that locks devices",
}


def _lock_scope(spec: AutomationSpec) -> tuple:
    """Whom and when an automation acts on: its trigger, match and (cleaned) conditions."""

    def value(c: ConditionSpec) -> Any:
        try:
            return cond.clean_value(c.field, c.operator, c.value)
        except ValidationError:
            return c.value

    return (
        spec.trigger_module,
        spec.trigger_event,
        spec.match,
        tuple((c.field, c.operator, value(c)) for c in spec.conditions),
    )


def lock_change(before: AutomationSpec | None, after: AutomationSpec | None) -> str:
    """What a save does to the devices an automation locks: "added", "changed" (message or
    phone), "removed", "retargeted" (trigger, match or conditions of an automation that keeps
    its lock), "switched on" (an automation with a lock), or "" when whom and when it locks stay
    as they are."""
    change = mdm_change(before.mdm if before else None, after.mdm if after else None)
    if change or after is None or after.mdm is None or before is None:
        return change
    if _lock_scope(before) != _lock_scope(after):
        return "retargeted"
    if after.enabled and not before.enabled:
        return "switched on"
    return ""


def check_lock_change(*, actor: Any, change: str, otp_verified: bool) -> str:
    """Refuse a lock change (see `lock_change`) the actor may not make: every one needs the MDM
    feature and permission, every one but a removal a one-time password."""
    if not change:
        return change
    availability = mdm_availability(actor)
    if not availability.available:
        raise MDMNotAllowed(
            f"This change {LOCK_CHANGE_PHRASES[change]}, which needs the MDM feature and "
            "permission. " + " ".join(availability.problems)
        )
    if change != "removed" and not otp_verified:
        raise OTPRequired(
            f"This change {LOCK_CHANGE_PHRASES[change]}: confirm it with a one-time password."
        )
    return change


# --- Validation shared by every write ------------------------------------------------------------


def _validate(spec: AutomationSpec, *, instance: Automation | None, old_url: str = "") -> None:
    errors: dict[str, list[str]] = {}

    def err(key: str, message: str) -> None:
        errors.setdefault(key, []).append(message)

    name = spec.name.strip()
    if not name:
        err("name", "Give the automation a name.")
    elif (
        Automation.objects.filter(name__iexact=name)
        .exclude(pk=instance.pk if instance else None)
        .exists()
    ):
        err("name", "An automation with this name already exists.")
    event = triggers.get_event(spec.trigger_module, spec.trigger_event)
    if event is None or not event.available:
        err("trigger_event", "Choose a trigger action from the list.")
    if spec.match not in Automation.Match.values:
        err("match", "Choose whether all or any of the conditions must match.")
    if len(spec.conditions) > MAX_CONDITIONS:
        err("conditions", f"An automation can have at most {MAX_CONDITIONS} conditions.")
    for number, c in enumerate(spec.conditions, start=1):
        try:
            cond.clean_value(c.field, c.operator, c.value)
        except ValidationError as exc:
            err("conditions", f"Condition {number}: {' '.join(exc.messages)}")
    if not (spec.webhook or spec.revoke or spec.mdm):
        err("actions", "Choose at least one action.")
    if spec.webhook:
        if spec.webhook.method not in Action.Method.values:
            err("webhook_method", "Choose POST or PUT.")
        # The destination is checked whenever it is saved (the sender checks it again).
        if spec.webhook.url != old_url:
            try:
                net.check_destination(spec.webhook.url)
            except ValidationError as exc:
                err("webhook_url", " ".join(exc.messages))
    if spec.revoke and not any(spec.revoke.as_dict().values()):
        err("revoke", "Choose at least one kind of license to revoke.")
    if spec.mdm and not spec.mdm.message.strip():
        err("mdm", "Enter the message shown on the locked screen.")
    if errors:
        raise ValidationError(errors)


# --- History -----------------------------------------------------------------------------------


def _revoke_text(revoke: RevokeSpec | None) -> str:
    if revoke is None:
        return "off"
    labels = {
        "user_based": "user-based (also cloud user-based)",
        "user_machine": "user-machine",
        "device_based": "device-based on devices in custody",
    }
    return ", ".join(label for key, label in labels.items() if revoke.as_dict()[key])


def snapshot(spec: AutomationSpec) -> dict[str, str]:
    """What the history shows of an automation: readable, and never a header value or secret."""
    event = triggers.get_event(spec.trigger_module, spec.trigger_event)
    module = triggers.REGISTRY.get(spec.trigger_module)
    return {
        "Name": spec.name,
        "Description": spec.description,
        "Enabled": "yes" if spec.enabled else "no",
        "Trigger": f"{module.label if module else spec.trigger_module} › "
        f"{event.label if event else spec.trigger_event}",
        "Match": "all conditions" if spec.match == Automation.Match.ALL else "any condition",
        "Conditions": "; ".join(
            cond.describe(c.field, c.operator, c.value) for c in spec.conditions
        )
        or "none (every member)",
        "Webhook": f"{spec.webhook.method} {spec.webhook.url}" if spec.webhook else "off",
        "Webhook headers": ", ".join(spec.webhook.headers) if spec.webhook else "",
        "Revoke licenses": _revoke_text(spec.revoke),
        "MDM lock": "on" if spec.mdm else "off",
        "Lock-screen message": spec.mdm.message if spec.mdm else "",
        "Lock-screen phone": spec.mdm.phone if spec.mdm else "",
    }


def diff(before: AutomationSpec | None, after: AutomationSpec | None) -> dict[str, list[str]]:
    """{label: [before, after]} for what differs. Header values are compared but only the names
    of changed headers are written."""
    old = snapshot(before) if before else {}
    new = snapshot(after) if after else {}
    out = {
        key: [old.get(key, ""), new.get(key, "")]
        for key in dict.fromkeys([*old, *new])
        if old.get(key, "") != new.get(key, "")
    }
    if before and after and before.webhook and after.webhook:
        old_h = {k.lower(): v for k, v in before.webhook.headers.items()}
        changed = [
            name
            for name, value in after.webhook.headers.items()
            if name.lower() in old_h and old_h[name.lower()] != value
        ]
        if changed:
            out["Webhook header values"] = ["", "changed: " + ", ".join(changed)]
    return out


def _record(
    *,
    automation: Automation | None,
    name: str,
    kind: str,
    actor: Any,
    changes: dict,
    audit_action: str,
    request: Any = None,
    otp_verified: bool = False,
    message: str = "",
    audit_obj: Automation | None = None,
) -> AutomationChange:
    change = AutomationChange.objects.create(
        automation=automation,
        automation_name=name,
        kind=kind,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        diff=changes,
        otp_verified=otp_verified,
    )
    audit_record(
        action=audit_action,
        actor=actor,
        obj=audit_obj or automation,
        changes=changes,
        message=message or f"Automation “{name}”: {change.get_kind_display().lower()}.",
        request=request,
    )
    return change


# --- Writing conditions and actions ------------------------------------------------------------


def _write_conditions(automation: Automation, specs: tuple[ConditionSpec, ...]) -> None:
    automation.conditions.all().delete()
    Condition.objects.bulk_create(
        Condition(
            automation=automation,
            position=position,
            field=c.field,
            operator=c.operator,
            value=cond.clean_value(c.field, c.operator, c.value),
        )
        for position, c in enumerate(specs)
    )


def _write_actions(automation: Automation, spec: AutomationSpec) -> str | None:
    """Create, update or delete one action per kind; return a new signing secret if one was
    generated (a webhook that did not exist before)."""
    existing = {a.kind: a for a in Action.objects.filter(automation=automation)}
    new_secret = None
    wanted: dict[str, dict[str, Any]] = {}
    if spec.revoke:
        wanted[Action.Kind.REVOKE_LICENSES] = {
            "revoke_user_based": spec.revoke.user_based,
            "revoke_user_machine": spec.revoke.user_machine,
            "revoke_device_based": spec.revoke.device_based,
        }
    if spec.mdm:
        wanted[Action.Kind.MDM_LOCK] = {
            "lock_message": spec.mdm.message.strip(),
            "lock_phone": spec.mdm.phone.strip(),
        }
    if spec.webhook:
        wanted[Action.Kind.WEBHOOK] = {"url": spec.webhook.url, "method": spec.webhook.method}
    for kind, action in existing.items():
        if kind not in wanted:
            action.delete()
    for kind, values in wanted.items():
        action = existing.get(kind) or Action(automation=automation, kind=kind)
        if kind == Action.Kind.WEBHOOK:
            if action.pk and action.url != values["url"]:
                # A new address gets a new chance after a 410 Gone from the old one.
                action.disabled_at = None
            action.set_headers(dict(spec.webhook.headers))
            if not action.secret_encrypted:
                new_secret = generate_signing_secret()
                action.set_secret(new_secret)
        for name, value in values.items():
            setattr(action, name, value)
        action.position = ACTION_POSITIONS[kind]
        action.full_clean(exclude=["automation"])
        action.save()
    return new_secret


def _save_automation(automation: Automation) -> None:
    try:
        with transaction.atomic():
            automation.save()
    except IntegrityError as exc:
        # Two people saved the same name at the same moment.
        raise ValidationError({"name": "An automation with this name already exists."}) from exc


def _create_from_spec(spec: AutomationSpec, *, actor: Any) -> tuple[Automation, str | None]:
    """Save a new automation with its conditions and actions; returns it and the new webhook
    signing secret (if it has a webhook), which the caller shows once."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    automation = Automation(
        name=spec.name.strip(),
        description=spec.description.strip(),
        enabled=spec.enabled,
        trigger_module=spec.trigger_module,
        trigger_event=spec.trigger_event,
        match=spec.match,
        created_by=user,
        updated_by=user,
    )
    _save_automation(automation)
    _write_conditions(automation, spec.conditions)
    return automation, _write_actions(automation, spec)


# --- Services ----------------------------------------------------------------------------------


@transaction.atomic
def automation_create(
    *, actor: Any, spec: AutomationSpec, otp_verified: bool = False, request: Any = None
) -> SaveResult:
    """Create an automation with its conditions and actions. A webhook gets a new signing
    secret, returned once in the result."""
    _validate(spec, instance=None)
    check_lock_change(actor=actor, change=lock_change(None, spec), otp_verified=otp_verified)
    automation, new_secret = _create_from_spec(spec, actor=actor)
    change = _record(
        automation=automation,
        name=automation.name,
        kind=AutomationChange.Kind.CREATED,
        actor=actor,
        changes=diff(None, spec),
        audit_action=AuditEvent.Action.CREATED,
        request=request,
        otp_verified=otp_verified,
    )
    return SaveResult(automation=automation, change=change, new_secret=new_secret)


@transaction.atomic
def automation_update(
    *,
    automation: Automation,
    actor: Any,
    spec: AutomationSpec,
    otp_verified: bool = False,
    request: Any = None,
) -> SaveResult:
    """Replace an automation's details, conditions and actions with `spec`. Writes history only
    if something changed. Adding a webhook generates its signing secret."""
    automation = Automation.objects.select_for_update().get(pk=automation.pk)
    before = spec_from_automation(automation)
    _validate(spec, instance=automation, old_url=before.webhook.url if before.webhook else "")
    check_lock_change(actor=actor, change=lock_change(before, spec), otp_verified=otp_verified)
    changes = diff(before, spec)
    if not changes:
        return SaveResult(automation=automation, change=None)
    automation.name = spec.name.strip()
    automation.description = spec.description.strip()
    automation.enabled = spec.enabled
    automation.trigger_module = spec.trigger_module
    automation.trigger_event = spec.trigger_event
    automation.match = spec.match
    automation.updated_by = actor if getattr(actor, "is_authenticated", False) else None
    _save_automation(automation)
    _write_conditions(automation, spec.conditions)
    new_secret = _write_actions(automation, spec)
    change = _record(
        automation=automation,
        name=automation.name,
        kind=AutomationChange.Kind.CHANGED,
        actor=actor,
        changes=changes,
        audit_action=AuditEvent.Action.CHANGED,
        request=request,
        otp_verified=otp_verified,
    )
    return SaveResult(automation=automation, change=change, new_secret=new_secret)


@transaction.atomic
def automation_set_enabled(
    *,
    automation: Automation,
    enabled: bool,
    actor: Any,
    otp_verified: bool = False,
    request: Any = None,
) -> AutomationChange | None:
    """Switch an automation on or off (idempotent: the wanted state, not a flip). Switching on an
    automation that locks devices needs the MDM feature and permission and a one-time password;
    switching off never does, so anyone who may edit can stop an automation."""
    automation = Automation.objects.select_for_update().get(pk=automation.pk)
    if automation.enabled == enabled:
        return None
    if enabled and automation.actions.filter(kind=Action.Kind.MDM_LOCK).exists():
        check_lock_change(actor=actor, change="switched on", otp_verified=otp_verified)
    automation.enabled = enabled
    automation.updated_by = actor if getattr(actor, "is_authenticated", False) else None
    automation.save(update_fields=["enabled", "updated_by", "updated_at"])
    return _record(
        automation=automation,
        name=automation.name,
        kind=AutomationChange.Kind.ENABLED if enabled else AutomationChange.Kind.DISABLED,
        actor=actor,
        changes={"Enabled": ["no", "yes"] if enabled else ["yes", "no"]},
        audit_action=AuditEvent.Action.ENABLED if enabled else AuditEvent.Action.DISABLED,
        request=request,
        otp_verified=otp_verified and enabled,
    )


def _copy_name(name: str) -> str:
    base = f"Copy of {name}"[:140]
    candidate, n = base, 2
    while Automation.objects.filter(name__iexact=candidate).exists():
        candidate, n = f"{base} ({n})", n + 1
    return candidate


@dataclass(frozen=True)
class DuplicateResult:
    automation: Automation
    new_secret: str | None
    dropped_mdm: bool


@transaction.atomic
def automation_duplicate(
    *,
    automation: Automation,
    actor: Any,
    with_mdm: bool = True,
    otp_verified: bool = False,
    request: Any = None,
) -> DuplicateResult:
    """Copy an automation (switched off, so two copies never both fire by surprise). A webhook
    copy gets its own signing secret. The MDM lock action is copied only for an actor who may
    use MDM, who asked for it (`with_mdm`) and confirmed it with a one-time password: a copy
    with the lock is a new lock automation. Otherwise the copy goes without it (and the result
    says so)."""
    source = spec_from_automation(automation)
    keep_mdm = source.mdm is not None and with_mdm and mdm_availability(actor).available
    if keep_mdm:
        check_lock_change(actor=actor, change="added", otp_verified=otp_verified)
    spec = AutomationSpec(
        name=_copy_name(source.name),
        description=source.description,
        enabled=False,
        trigger_module=source.trigger_module,
        trigger_event=source.trigger_event,
        match=source.match,
        conditions=source.conditions,
        webhook=source.webhook,
        revoke=source.revoke,
        mdm=source.mdm if keep_mdm else None,
    )
    if not (spec.webhook or spec.revoke or spec.mdm):
        raise ValidationError(
            "This automation's only action is the MDM lock, which you may not copy. "
            + " ".join(mdm_availability(actor).problems)
        )
    copy, new_secret = _create_from_spec(spec, actor=actor)
    changes = {"Duplicated from": ["", automation.name], **diff(None, spec)}
    if source.mdm and not keep_mdm:
        changes["MDM lock"] = [
            "",
            "not copied (left out)"
            if with_mdm is False
            else "not copied (no MDM permission or feature off)",
        ]
    _record(
        automation=copy,
        name=copy.name,
        kind=AutomationChange.Kind.DUPLICATED,
        actor=actor,
        changes=changes,
        audit_action=AuditEvent.Action.CREATED,
        request=request,
        message=f"Automation “{copy.name}” duplicated from “{automation.name}”.",
        otp_verified=otp_verified and keep_mdm,
    )
    return DuplicateResult(
        automation=copy, new_secret=new_secret, dropped_mdm=bool(source.mdm and not keep_mdm)
    )


@transaction.atomic
def automation_delete(*, automation: Automation, actor: Any, request: Any = None) -> None:
    """Delete an automation. Its history and executions stay (they keep its name)."""
    automation = Automation.objects.select_for_update().get(pk=automation.pk)
    before = spec_from_automation(automation)
    name = automation.name
    _record(
        automation=automation,
        name=name,
        kind=AutomationChange.Kind.DELETED,
        actor=actor,
        changes=diff(before, None),
        audit_action=AuditEvent.Action.DELETED,
        request=request,
    )
    automation.delete()


@transaction.atomic
def automation_rotate_secret(*, automation: Automation, actor: Any, request: Any = None) -> str:
    """Give the automation's webhook a new signing secret and return it (shown once). The old
    secret keeps signing beside the new one for WEBHOOK_SECRET_GRACE_HOURS (Standard Webhooks
    allows several signatures in one header), then only the new one signs. The old secret stays
    encrypted and is never shown."""
    action = (
        Action.objects.select_for_update()
        .filter(automation=automation, kind=Action.Kind.WEBHOOK)
        .first()
    )
    if action is None:
        raise ValidationError("This automation has no webhook, so it has no signing secret.")
    now = timezone.now()
    grace = timedelta(hours=settings.WEBHOOK_SECRET_GRACE_HOURS)
    secret = generate_signing_secret()
    if action.secret_encrypted and grace:
        action.previous_secret_encrypted = action.secret_encrypted
        action.previous_secret_until = now + grace
    else:
        action.previous_secret_encrypted, action.previous_secret_until = "", None
    action.set_secret(secret)
    action.secret_rotated_at = now
    action.save(
        update_fields=[
            "secret_encrypted",
            "secret_rotated_at",
            "previous_secret_encrypted",
            "previous_secret_until",
        ]
    )
    old = (
        f"previous secret (signs too until {action.previous_secret_until:%Y-%m-%d %H:%M} UTC)"
        if action.previous_secret_until
        else "previous secret (no longer signs)"
    )
    _record(
        automation=automation,
        name=automation.name,
        kind=AutomationChange.Kind.SECRET_ROTATED,
        actor=actor,
        changes={"Webhook signing secret": [old, "new secret (shown once)"]},
        audit_action=AuditEvent.Action.CHANGED,
        request=request,
        message=f"Automation “{automation.name}”: webhook signing secret rotated.",
    )
    return secret
