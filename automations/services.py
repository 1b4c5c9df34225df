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

import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from assetsonar.audit import audit_record
from assetsonar.models import AuditEvent
from automations import conditions as cond
from automations import delays, triggers
from automations.actions import REGISTRY, ActionSpec, get_kind
from automations.actions.webhook import generate_signing_secret
from automations.models import Action, Automation, AutomationChange, Condition
from automations.selectors import mdm_availability

MAX_CONDITIONS = 20
MAX_ACTIONS = 20


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
    # The trigger's own settings (`TriggerEvent.options`), {} for a trigger without any.
    trigger_options: dict = dataclasses.field(default_factory=dict)
    # In the IT manager's order.
    actions: tuple[ActionSpec, ...] = ()

    @property
    def locks(self) -> tuple[tuple[str, dict], ...]:
        """The settings of its actions that lock devices (the MDM gate compares these)."""
        return tuple(
            (a.kind, a.config)
            for a in self.actions
            if (kind := get_kind(a.kind)) is not None and kind.locks_devices
        )

    @property
    def lock_delays(self) -> tuple[timedelta, ...]:
        """When its device locks run after the trigger: a change is a change of when it locks."""
        return tuple(
            a.delay
            for a in self.actions
            if (kind := get_kind(a.kind)) is not None and kind.locks_devices
        )


@dataclass(frozen=True)
class SaveResult:
    automation: Automation
    change: AutomationChange | None
    # A newly generated webhook signing secret, to be shown to the user once.
    new_secret: str | None = None


def action_specs(automation: Automation) -> tuple[ActionSpec, ...]:
    """The stored actions as specs, in order (uses prefetched actions if loaded)."""
    out = []
    for action in sorted(automation.actions.all(), key=lambda a: (a.position, a.pk)):
        kind = get_kind(action.kind)
        out.append(
            ActionSpec(
                kind=action.kind,
                config=kind.read(action) if kind else dict(action.config),
                continue_on_error=action.continue_on_error,
                action_id=action.pk,
                delay=action.delay or timedelta(0),
            )
        )
    return tuple(out)


def spec_from_automation(automation: Automation) -> AutomationSpec:
    """The stored automation as a spec (uses prefetched conditions and actions if loaded)."""
    return AutomationSpec(
        name=automation.name,
        description=automation.description,
        enabled=automation.enabled,
        trigger_module=automation.trigger_module,
        trigger_event=automation.trigger_event,
        trigger_options=dict(automation.trigger_options or {}),
        match=automation.match,
        conditions=tuple(
            ConditionSpec(c.field, c.operator, c.value)
            for c in sorted(automation.conditions.all(), key=lambda c: (c.position, c.pk))
        ),
        actions=action_specs(automation),
    )


def mdm_change(before: tuple, after: tuple) -> str:
    """ "added", "changed", "removed", or "" when the device locks stay as they are
    (`AutomationSpec.locks` before and after)."""
    if before == after:
        return ""
    if not before:
        return "added"
    if not after:
        return "removed"
    return "changed"


# What each kind of lock change does, for the OTP and refusal dialogs.
LOCK_CHANGE_PHRASES = {
    "added": "adds a device lock through MDM",
    "changed": "changes the MDM lock-screen message or phone number",
    "removed": "removes the MDM device lock",
    "retargeted": "changes whom or when this automation locks devices (its trigger, when it "
    "fires, match or conditions)",
    "rescheduled": "changes how long after the trigger this automation locks devices (the "
    "lock's delay)",
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
        tuple(sorted(spec.trigger_options.items())),
        spec.match,
        tuple((c.field, c.operator, value(c)) for c in spec.conditions),
    )


def lock_change(before: AutomationSpec | None, after: AutomationSpec | None) -> str:
    """What a save does to the devices an automation locks: "added", "changed" (message or
    phone), "removed", "retargeted" (trigger, match or conditions of an automation that keeps
    its lock), "rescheduled" (the lock's delay), "switched on" (an automation with a lock), or
    "" when whom and when it locks stay as they are."""
    change = mdm_change(before.locks if before else (), after.locks if after else ())
    if change or after is None or not after.locks or before is None:
        return change
    if _lock_scope(before) != _lock_scope(after):
        return "retargeted"
    if before.lock_delays != after.lock_delays:
        return "rescheduled"
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


def _validate(
    spec: AutomationSpec,
    *,
    instance: Automation | None,
    previous: dict[int | None, dict] | None = None,
) -> None:
    """Raise a ValidationError keyed by field ("name", …; an action's field as
    "action-<index>:<field>") unless the spec can be saved. `previous`: the stored settings by
    action id (an unchanged webhook URL is not checked again)."""
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
    elif event.options is not None:
        for problem in event.options.errors(spec.trigger_options):
            err("trigger_options", problem)
    elif spec.trigger_options:
        err("trigger_options", "This trigger has no settings of its own.")
    if spec.match not in Automation.Match.values:
        err("match", "Choose whether all or any of the conditions must match.")
    if len(spec.conditions) > MAX_CONDITIONS:
        err("conditions", f"An automation can have at most {MAX_CONDITIONS} conditions.")
    for number, c in enumerate(spec.conditions, start=1):
        try:
            cond.clean_value(c.field, c.operator, c.value)
        except ValidationError as exc:
            err("conditions", f"Condition {number}: {' '.join(exc.messages)}")
    if not spec.actions:
        err("actions", "Choose at least one action.")
    if len(spec.actions) > MAX_ACTIONS:
        err("actions", f"An automation can have at most {MAX_ACTIONS} actions.")
    previous = previous or {}
    for number, action in enumerate(spec.actions, start=1):
        kind = get_kind(action.kind)
        if kind is None:
            err("actions", f"Action {number}: unknown kind “{action.kind}”.")
            continue
        if problem := delays.check(action.delay):
            err(f"action-{number - 1}:delay", problem)
        for field, messages in kind.clean_config(
            action.config, previous=previous.get(action.action_id)
        ).items():
            for message in messages:
                err(f"action-{number - 1}:{field}", message)
    if errors:
        raise ValidationError(errors)


# --- History -----------------------------------------------------------------------------------


def snapshot(spec: AutomationSpec) -> dict[str, str]:
    """What the history shows of an automation: readable, and never a header value or secret.
    Each action's lines are its kind's (`ActionKind.snapshot`), numbered from the second action
    of a kind on ("Webhook 2")."""
    event = triggers.get_event(spec.trigger_module, spec.trigger_event)
    module = triggers.REGISTRY.get(spec.trigger_module)
    out = {
        "Name": spec.name,
        "Description": spec.description,
        "Enabled": "yes" if spec.enabled else "no",
        "Trigger": f"{module.label if module else spec.trigger_module} › "
        f"{event.label if event else spec.trigger_event}"
        + (f" ({event.options.text(spec.trigger_options)})" if event and event.options else ""),
        "Match": "all conditions" if spec.match == Automation.Match.ALL else "any condition",
        "Conditions": "; ".join(
            cond.describe(c.field, c.operator, c.value) for c in spec.conditions
        )
        or "none (every member)",
    }
    seen: dict[str, int] = {}
    for action in spec.actions:
        kind = get_kind(action.kind)
        if kind is None:
            continue
        seen[action.kind] = seen.get(action.kind, 0) + 1
        suffix = f" {seen[action.kind]}" if seen[action.kind] > 1 else ""
        for label, value in kind.snapshot(action.config).items():
            out[f"{label}{suffix}"] = value
        if not action.continue_on_error:
            out[f"{kind.log_label}{suffix}: if it fails"] = "stop the remaining actions"
        if action.delay:
            out[f"{kind.log_label}{suffix}: runs"] = delays.label(action.delay)
    out["Actions in order"] = ", ".join(
        get_kind(a.kind).log_label if get_kind(a.kind) else a.kind for a in spec.actions
    )
    return out


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
    if before and after:
        # Secret header values are compared but only the names of changed ones are written.
        by_id = {a.action_id: a for a in before.actions if a.action_id}
        changed = []
        for a in after.actions:
            old_a = by_id.get(a.action_id)
            if old_a is None or "headers" not in a.config:
                continue
            old_h = {k.lower(): v for k, v in (old_a.config.get("headers") or {}).items()}
            changed += [
                name
                for name, value in (a.config.get("headers") or {}).items()
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
    """Make the automation's actions those of `spec`, in its order: an action of the spec with
    the id of a stored one updates it (a webhook keeps its signing secret), the others are
    created, stored ones left out are deleted. Returns a new signing secret if one was
    generated (shown once; with two new webhooks, the first one's, and the others are
    rotated from the automation page)."""
    existing = {a.pk: a for a in Action.objects.filter(automation=automation)}
    kept = {a.action_id for a in spec.actions if a.action_id in existing}
    for pk, action in existing.items():
        if pk not in kept:
            action.delete()
    new_secret = None
    for position, item in enumerate(spec.actions):
        action = existing.get(item.action_id)
        if action is None or action.kind != item.kind:
            action = Action(automation=automation, kind=item.kind)
        secret = REGISTRY[item.kind].write(action, dict(item.config))
        new_secret = new_secret or secret
        action.position = position
        action.continue_on_error = item.continue_on_error
        action.delay = item.delay or timedelta(0)
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
        trigger_options=spec.trigger_options,
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
    _validate(spec, instance=automation, previous={a.action_id: a.config for a in before.actions})
    check_lock_change(actor=actor, change=lock_change(before, spec), otp_verified=otp_verified)
    changes = diff(before, spec)
    if not changes:
        return SaveResult(automation=automation, change=None)
    automation.name = spec.name.strip()
    automation.description = spec.description.strip()
    automation.enabled = spec.enabled
    automation.trigger_module = spec.trigger_module
    automation.trigger_event = spec.trigger_event
    automation.trigger_options = spec.trigger_options
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
    if enabled and spec_from_automation(automation).locks:
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
    keep_mdm = bool(source.locks) and with_mdm and mdm_availability(actor).available
    if keep_mdm:
        check_lock_change(actor=actor, change="added", otp_verified=otp_verified)
    spec = AutomationSpec(
        name=_copy_name(source.name),
        description=source.description,
        enabled=False,
        trigger_module=source.trigger_module,
        trigger_event=source.trigger_event,
        trigger_options=source.trigger_options,
        match=source.match,
        conditions=source.conditions,
        # A copy: new actions (own webhook secrets), the locks only when kept.
        actions=tuple(
            ActionSpec(
                kind=a.kind,
                config=a.config,
                continue_on_error=a.continue_on_error,
                delay=a.delay,
            )
            for a in source.actions
            if keep_mdm or not REGISTRY[a.kind].locks_devices
        ),
    )
    if not spec.actions:
        raise ValidationError(
            "This automation's only action is the MDM lock, which you may not copy. "
            + " ".join(mdm_availability(actor).problems)
        )
    copy, new_secret = _create_from_spec(spec, actor=actor)
    changes = {"Duplicated from": ["", automation.name], **diff(None, spec)}
    if source.locks and not keep_mdm:
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
        automation=copy, new_secret=new_secret, dropped_mdm=bool(source.locks and not keep_mdm)
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
def automation_rotate_secret(
    *, automation: Automation, actor: Any, action_id: int | None = None, request: Any = None
) -> str:
    """Give the automation's webhook a new signing secret and return it (shown once). The old
    secret keeps signing beside the new one for WEBHOOK_SECRET_GRACE_HOURS (Standard Webhooks
    allows several signatures in one header), then only the new one signs. The old secret stays
    encrypted and is never shown."""
    signing = Action.objects.select_for_update().filter(
        automation=automation, kind__in=[k.key for k in REGISTRY.values() if k.signs_requests]
    )
    if action_id is not None:
        signing = signing.filter(pk=action_id)
    action = signing.order_by("position", "pk").first()
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
        changes={
            f"Webhook signing secret ({action.config.get('url', '')})": [
                old,
                "new secret (shown once)",
            ]
        },
        audit_action=AuditEvent.Action.CHANGED,
        request=request,
        message=f"Automation “{automation.name}”: webhook signing secret rotated.",
    )
    return secret
