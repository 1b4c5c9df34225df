"""The "Lock devices in custody via MDM" action kind: lock every device the member held at the
event through its MDM. Settings (`config`): message, phone (shown on the locked screen).

The vendor APIs live in `assets.mdm` (one connector per provider); this module only orchestrates.
Targets are the devices in the member's custody when the event was recorded (the event's
snapshot), so every re-run targets the same devices even if one was checked in meanwhile.

Targets are lockable devices only (`Asset.is_lockable`: a monitor, an accessory or a device
with no operating system is not one). Per device: one ActionLog (the claim) and, while the device
has no lock, one MDMCommand.

One lock per device until it is unlocked. A device whose last lock command is pending, sent or
acknowledged (and whose lock state says locked or pending) keeps that lock and its PIN: a second
automation, a second deactivation or a retry is logged "Already locked by execution N, PIN kept"
and sends nothing. The device rows are locked (SELECT ... FOR UPDATE) while this is decided, so
two workers preparing two deactivations of the same member at once make one lock, not two.

The 6-digit unlock PIN is generated with `secrets` only where the lock carries it (macOS through
Jamf or the simulator), stored encrypted before the command is sent, and the same PIN is sent on
every retry. A vendor that generates its own PIN (Kandji on macOS) returns it; none is kept for
a device that locks with its own passcode (Intune, iPhone, iPad).

Reconcile before re-sending. When the previous attempt's outcome is unknown (its worker died
between sending and recording, or the request timed out or dropped, or the vendor answered 5xx
after perhaps acting), the vendor's own record is read first (`Connector.find_lock`: Jamf's MDM
command list, Graph's deviceActionResults, Kandji's device commands and unlock PIN). A lock found
there is recorded with the vendor's id, time and PIN, and not sent again; only a lock provably
absent is sent. The portal switch (PortalSettings.mdm_commands_enabled) is read at every attempt.
"""

from __future__ import annotations

import logging
import re
import secrets
from datetime import timedelta
from typing import Any

from django import forms
from django.utils import timezone

from assets.models import Asset, MDMCommand
from assetsonar.models import PortalSettings
from automations.actions.base import ActionKind, Target, register
from automations.engine.common import (
    Job,
    Prep,
    RunContext,
    attempts_in_round,
    human_duration,
    log_begin,
    log_claim_many,
    log_finish,
    log_key,
    max_attempts,
    next_retry_at,
    schedule_retry,
    write_create,
    write_save,
)
from automations.models import ActionLog

logger = logging.getLogger(__name__)

NOT_ENROLLED = (
    "Device is not enrolled in an MDM: enrol it (MDM connection and device ID on the asset) "
    "or lock it by hand."
)
NOT_LOCKABLE = "Not a lockable device."
REMOVED = "The MDM lock was removed from the automation."
SWITCHED_OFF = (
    "Not locked: MDM commands are switched off in the portal settings. An administrator can "
    "switch them on; then use “Retry failed actions” or lock the device by hand."
)


# Vendor and portal clocks differ: a lock the vendor lists up to this long before our command was
# stored still counts as the one an earlier attempt sent.
CLOCK_SKEW = timedelta(minutes=2)


def mdm_prepare(*, execution, action, event, context: RunContext) -> list[Job]:
    """Claim one lock per device in the member's custody at the event and start each."""
    return mdm_prepare_many(items=[Prep(execution, action, event)], context=context)


def mdm_prepare_many(*, items: list[Prep], context: RunContext) -> list[Job]:
    """`mdm_prepare` for many executions at once (one query each for the devices, the claims,
    the attempts and the devices' lock commands), in execution order, so that a later
    automation or event of the batch sees the lock an earlier one stored here."""
    targets: list[tuple[Prep, list[Asset]]] = []
    for item, devices in zip(items, _devices(items, lock=True), strict=True):
        assets = [a for a in devices if a.is_lockable]
        if assets:
            targets.append((item, assets))
    if not targets:
        return []
    specs, owner = [], {}
    for item, assets in targets:
        for a in assets:
            key = log_key(
                item.event.pk, item.execution.automation_id, item.action.pk, f"asset:{a.pk}"
            )
            owner[key] = (item, a)
            specs.append(
                {
                    "key": key,
                    "execution": item.execution,
                    "action": item.action,
                    "action_kind": item.action.kind,
                    "target_type": ActionLog.TargetType.ASSET,
                    "target_label": str(a)[:300],
                    "asset": a,
                }
            )
    started = log_begin(log_claim_many(specs), context.now)
    if not started:
        return []
    device_ids = {log.asset_id for log, _ in started}
    started_ids = {log.pk for log, _ in started}
    # Every lock command on these devices, oldest first: a started log's own (stored by an
    # interrupted run, or waiting to retry), or another log's: the device's current lock.
    commands = list(
        MDMCommand.objects.filter(asset_id__in=device_ids, kind=MDMCommand.Kind.LOCK)
        .select_related("log__execution")
        .order_by("pk")
    )
    own = {c.log_id: c for c in commands if c.log_id in started_ids}
    latest: dict[int, MDMCommand] = {}
    for c in commands:
        latest[c.asset_id] = c
    jobs = []
    for log, interrupted in started:
        item, asset = owner[log.key]
        log.asset, log.execution = asset, item.execution
        job = mdm_job(
            log,
            action=item.action,
            enabled=context.mdm_commands_enabled,
            latest=latest.get(asset.pk),
            command=own.get(log.pk),
            interrupted=interrupted,
        )
        if job is not None:
            jobs.append(job)
            if log.pk not in own:  # stored just now: the device's lock for the rest of the batch
                job.command.log = log
                latest[asset.pk] = job.command
    return jobs


def _devices(items: list[Prep], *, lock: bool) -> list[list[Asset]]:
    """The target selection, shared by the engine (`mdm_prepare_many`) and the preview
    (`lock_plan`): for each item, the devices in the member's custody at the event (the event's
    snapshot), by id, lockable or not. `lock`: their rows locked for the caller's transaction
    (the engine), one query for the whole batch."""
    fetch = _devices_locked if lock else _devices_read
    custody_ids = {
        pk for item in items for pk in item.event.member_snapshot.get("custody_asset_ids") or []
    }
    by_id = fetch(custody_ids)
    out = []
    for item in items:
        custody = item.event.member_snapshot.get("custody_asset_ids")
        if custody is None:
            # An event recorded before custody was part of the snapshot: the custody now.
            legacy = Asset.objects.filter(custodian_id=item.event.member_id).values_list(
                "pk", flat=True
            )
            by_id.update(fetch(set(legacy)))
            custody = legacy
        out.append([by_id[pk] for pk in sorted(custody) if pk in by_id])
    return out


def _devices_read(ids: set[int]) -> dict[int, Asset]:
    if not ids:
        return {}
    return {a.pk: a for a in Asset.objects.select_related("mdm_connection").filter(pk__in=ids)}


def lock_skip(
    asset: Asset | None, *, action, enabled: bool, latest, command
) -> tuple[str, bool] | None:
    """Why a device is not to be locked now, and whether that leaves the target unmet; None
    when the lock is to be sent. Decided at every attempt (`mdm_job`) and by the preview
    (`lock_plan`). `latest`: the device's last lock command (any log); `command`: this log's
    own, if an earlier run stored it."""
    if action is None:
        return REMOVED, True
    if asset is None or not asset.is_lockable:
        return NOT_LOCKABLE, True
    if not asset.is_mdm_enrolled:
        return NOT_ENROLLED, True
    if not enabled:
        return SWITCHED_OFF, True
    if command is None and _live(latest, asset):
        # The device is locked (or being locked): a second command would only give it a second
        # PIN, and the PIN the device shows would no longer be the one stored.
        return _already_locked(latest), False
    return None


def via(asset: Asset) -> str:
    """How a device is reached: "via Jamf Pro “prod”" ("" when it is not enrolled)."""
    connection = asset.mdm_connection if asset.mdm_connection_id else None
    if connection is None:
        return ""
    return f"via {connection.get_provider_display()} “{connection.name}”"


def lock_plan(items: list[Prep], context: RunContext) -> list[list[Target]]:
    """The preview of `mdm_prepare_many`: per item, every device in custody at the event, each
    with the reason it would not be locked (`lock_skip`); a device an earlier item locks counts
    as locked for the later ones, as in the engine. Three queries for all the items (devices,
    their lock commands, the portal switch)."""
    per_item = _devices(items, lock=False)
    ids = {a.pk for devices in per_item for a in devices}
    latest: dict[int, MDMCommand] = {}
    if ids:
        for c in (
            MDMCommand.objects.filter(asset_id__in=ids, kind=MDMCommand.Kind.LOCK)
            .select_related("log__execution")
            .order_by("pk")
        ):
            latest[c.asset_id] = c
    enabled = context.mdm_commands_enabled
    plans = []
    for item, devices in zip(items, per_item, strict=True):
        targets = []
        for asset in devices:
            key, label = f"asset:{asset.pk}", str(asset)[:300]
            if not asset.is_lockable:
                # Passed over without a log by the engine (`mdm_prepare_many`).
                targets.append(Target(key, label, NOT_LOCKABLE, logged=False, obj=asset))
                continue
            skip = lock_skip(
                asset,
                action=item.action,
                enabled=enabled,
                latest=latest.get(asset.pk),
                command=None,
            )
            if skip is None:
                # Locked by this item: a later automation finds the lock in force.
                latest[asset.pk] = MDMCommand(
                    asset=asset,
                    status=MDMCommand.Status.PENDING,
                    log=ActionLog(execution=item.execution),
                )
                asset.lock_state = Asset.LockState.PENDING
            reason, unmet = skip or ("", False)
            targets.append(Target(key, label, reason, unmet=unmet, via=via(asset), obj=asset))
        plans.append(targets)
    return plans


def _devices_locked(ids: set[int]) -> dict[int, Asset]:
    """The devices by id, their rows locked for the caller's transaction (in id order, so two
    batches never deadlock): whether a device has a lock is decided by one run at a time."""
    if not ids:
        return {}
    return {
        a.pk: a
        for a in Asset.objects.select_related("mdm_connection")
        .select_for_update(of=("self",))
        .filter(pk__in=ids)
        .order_by("pk")
    }


def mdm_retry_job(log: ActionLog, interrupted: bool) -> Job | None:
    """The lock attempt of a started log on its own (a scheduled retry)."""
    log = ActionLog.objects.select_related("action", "execution").get(pk=log.pk)
    log.asset = _devices_locked({log.asset_id}).get(log.asset_id)
    commands = list(
        MDMCommand.objects.filter(asset_id=log.asset_id, kind=MDMCommand.Kind.LOCK)
        .select_related("log__execution")
        .order_by("pk")
    )
    return mdm_job(
        log,
        action=log.action,
        enabled=PortalSettings.load().mdm_commands_enabled,
        latest=commands[-1] if commands else None,
        command=next((c for c in commands if c.log_id == log.pk), None),
        interrupted=interrupted,
    )


def _live(command: MDMCommand | None, asset: Asset) -> bool:
    """Whether `command` is the device's lock still in force."""
    return (
        command is not None
        and command.status in MDMCommand.LIVE_STATUSES
        and asset.lock_state in (Asset.LockState.PENDING, Asset.LockState.LOCKED)
    )


def mdm_job(
    log: ActionLog, *, action, enabled: bool, latest, command, interrupted: bool = False
) -> Job | None:
    """The lock of one started log, or None when the device is not to be locked now (the log
    is then closed with the reason). `latest` is the device's last lock command (any log),
    `command` this log's own, if an earlier run stored it. The command and its PIN are stored
    here, in the run's first transaction, before anything is sent."""
    asset = log.asset
    skip = lock_skip(asset, action=action, enabled=enabled, latest=latest, command=command)
    if skip:
        log_finish(log, ActionLog.Status.SKIPPED, skip[0], unmet=skip[1])
        return None

    connection = asset.mdm_connection
    from assets.mdm import MDMError, get_connector

    try:
        connector = get_connector(connection)
    except MDMError as exc:  # an unknown provider: the attempt fails with the reason
        connector, unusable = None, exc
    # An earlier attempt of this very command whose outcome nobody recorded: ask the vendor
    # before sending it again.
    reconcile = command is not None and (interrupted or log.detail.get("outcome_unknown"))
    if command is None:
        command = MDMCommand(
            asset=asset,
            connection=connection,
            log=log,
            message=action.config.get("message", ""),
            phone=action.config.get("phone", ""),
        )
        pin = ""
        if connector is not None and connector.takes_pin(asset.platform):
            # The last lock of the device failed: it may have reached the device all the same,
            # so its PIN is sent again rather than a new one.
            failed = latest is not None and latest.status == MDMCommand.Status.FAILED
            reuse = latest.get_pin() if failed and latest.pin_encrypted else ""
            pin = reuse or f"{secrets.randbelow(10**6):06d}"
            command.set_pin(pin)  # stored (encrypted) before anything is sent
        write_create(command)
    else:
        pin = command.get_pin() if command.pin_encrypted else ""
        if command.connection_id != connection.pk:
            command.connection = connection
            write_save(command, ["connection"])
    asset.lock_state = Asset.LockState.PENDING
    write_save(asset, ["lock_state"])
    since = command.created_at - CLOCK_SKEW if command.created_at else None

    def perform():
        if connector is None:
            return unusable
        note = ""
        try:
            if reconcile:
                try:
                    found = connector.find_lock(
                        device_id=asset.mdm_device_id, platform=asset.platform, since=since
                    )
                except MDMError as exc:
                    # The vendor cannot tell whether the earlier attempt arrived. The safe
                    # side is to send: a leaver's unlocked device is the risk this action
                    # exists to remove, while a second lock is harmless where the PIN is
                    # ours (Jamf, the same PIN again) or there is none (Intune), and Kandji
                    # refuses a second lock while one is pending and gives its PIN back.
                    note = (
                        f" {connector.vendor} could not say whether an earlier attempt's "
                        f"lock arrived ({exc.message.rstrip('.')}), so it was sent again."
                    )
                else:
                    if found is not None:
                        return found
            result = connector.lock_device(
                device_id=asset.mdm_device_id,
                pin=pin,
                message=command.message,
                phone=command.phone,
                platform=asset.platform,
            )
            return (result, note) if note else result
        except MDMError as exc:
            return exc

    def record(outcome) -> None:
        from assets.mdm.base import FoundLock

        if isinstance(outcome, MDMError):
            _record_error(log, command, asset, outcome)
        elif isinstance(outcome, FoundLock):
            _record_found(log, command, asset, outcome)
        elif isinstance(outcome, tuple):
            _record_success(log, command, asset, outcome[0], note=outcome[1])
        else:
            _record_success(log, command, asset, outcome)

    return Job(log=log, perform=perform, record=record, command=command, urgent=True)


def _already_locked(command: MDMCommand) -> str:
    execution = command.log.execution if command.log is not None else None
    if execution is None:
        return f"Already locked (MDM command #{command.pk}), PIN kept."
    if execution.pk is None:  # the preview: an earlier automation of the same deactivation
        return f"Already locked by automation “{execution.automation_name}” before it, PIN kept."
    return (
        f"Already locked by execution {execution.pk} (automation “{execution.automation_name}”), "
        "PIN kept."
    )


def _record_found(log: ActionLog, command: MDMCommand, asset: Asset, found) -> None:
    """The vendor already had the lock an earlier attempt sent: recorded, not sent again."""
    now = timezone.now()
    command.status = (
        MDMCommand.Status.ACKNOWLEDGED if found.status == "acknowledged" else MDMCommand.Status.SENT
    )
    command.vendor_command_id = (found.command_id or "")[:200]
    command.sent_at = found.sent_at or now
    command.last_error = ""
    command.response_excerpt = (found.raw or "")[:1024]
    if found.pin:
        command.set_pin(found.pin)
    write_save(
        command,
        [
            "status",
            "vendor_command_id",
            "sent_at",
            "last_error",
            "response_excerpt",
            "pin_encrypted",
        ],
    )
    asset.lock_state, asset.locked_at = Asset.LockState.LOCKED, command.sent_at
    write_save(asset, ["lock_state", "locked_at"])
    ref = f" (command {command.vendor_command_id})" if command.vendor_command_id else ""
    when = timezone.localtime(command.sent_at)
    log_finish(
        log,
        ActionLog.Status.SUCCEEDED,
        f"Lock found at {command.connection.name}{ref}, sent {when:%d %b %H:%M:%S} by an earlier "
        "attempt whose answer was lost; recorded without sending it again.",
    )


def _record_success(
    log: ActionLog, command: MDMCommand, asset: Asset, result, *, note: str = ""
) -> None:
    now = timezone.now()
    command.status = (
        MDMCommand.Status.ACKNOWLEDGED
        if result.status == "acknowledged"
        else MDMCommand.Status.SENT
    )
    command.vendor_command_id = (result.command_id or "")[:200]
    command.sent_at = now
    command.last_error = ""
    command.response_excerpt = (result.raw or "")[:1024]
    if result.pin:
        command.set_pin(result.pin)
    elif not getattr(result, "pin_sent", True):
        # The vendor ignored our PIN: keeping it would show a PIN that unlocks nothing.
        command.pin_encrypted = ""
    write_save(
        command,
        [
            "status",
            "vendor_command_id",
            "sent_at",
            "last_error",
            "response_excerpt",
            "pin_encrypted",
        ],
    )
    asset.lock_state, asset.locked_at = Asset.LockState.LOCKED, now
    write_save(asset, ["lock_state", "locked_at"])
    state = "acknowledged by the device" if result.status == "acknowledged" else "sent"
    ref = f" (command {command.vendor_command_id})" if command.vendor_command_id else ""
    log_finish(
        log, ActionLog.Status.SUCCEEDED, f"Lock {state} via {command.connection.name}{ref}.{note}"
    )


def _record_error(log: ActionLog, command: MDMCommand, asset: Asset, exc) -> None:
    message = str(exc)
    command.last_error = message[:500]
    # A timeout, a dropped connection or a 5xx may come after the vendor acted: the next attempt
    # asks the vendor first. 408 and 429 say the request was not taken.
    unknown = exc.kind == "retryable" and exc.status_code not in (408, 429)
    if unknown != bool(log.detail.get("outcome_unknown")):
        log.detail = {**log.detail, "outcome_unknown": unknown}
        write_save(log, ["detail"])
    if exc.kind == "retryable":
        when = next_retry_at(log, retry_after=exc.retry_after)
        if when is not None:
            write_save(command, ["last_error"])
            log.status = ActionLog.Status.RETRYING
            log.next_attempt_at = when
            log.insight = (
                f"{message} Attempt {attempts_in_round(log)} of "
                f"{max_attempts(log.action_kind)}; next try at "
                f"{timezone.localtime(when):%H:%M:%S}."
            )[:500]
            log.save(update_fields=["status", "next_attempt_at", "insight"])
            schedule_retry(log, when)
            return
        span = human_duration((timezone.now() - command.created_at).total_seconds())
        count = attempts_in_round(log)
        message = (
            f"{message} The lock was tried {count} time{'s' if count != 1 else ''} over "
            f"{span}: use “Retry failed actions” once the MDM answers again."
        )
    command.status = MDMCommand.Status.FAILED
    write_save(command, ["status", "last_error"])
    asset.lock_state = Asset.LockState.FAILED
    write_save(asset, ["lock_state"])
    log_finish(log, ActionLog.Status.FAILED, message)


# --- Settings: the builder card -----------------------------------------------------------------

PHONE_RE = re.compile(r"^\+?[0-9][0-9 ()./-]*$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class MDMLockForm(forms.Form):
    message = forms.CharField(
        label="Lock-screen message",
        required=False,
        max_length=200,
        widget=forms.Textarea(
            attrs={
                "rows": 2,
                "placeholder": "This device belongs to Example Ltd. Please return it.",
            }
        ),
        help_text="Shown on the locked screen. Up to 200 characters, one line.",
    )
    phone = forms.CharField(
        label="Phone number",
        required=False,
        max_length=40,
        widget=forms.TextInput(attrs={"placeholder": "+1 555 0100", "inputmode": "tel"}),
        help_text="Shown on the locked screen so the finder can call IT.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        message = (cleaned.get("message") or "").strip()
        phone = (cleaned.get("phone") or "").strip()
        if "message" in self.errors:
            pass
        elif not message:
            self.add_error("message", "Enter the message shown on the locked screen.")
        elif CONTROL_RE.search(message):
            self.add_error("message", "Keep the message on one line, without control characters.")
        if "phone" in self.errors:
            pass
        elif not phone:
            self.add_error("phone", "Enter the phone number shown on the locked screen.")
        elif not PHONE_RE.match(phone) or not 5 <= sum(ch.isdigit() for ch in phone) <= 20:
            self.add_error(
                "phone",
                "Enter a phone number of 5 to 20 digits; spaces, + ( ) . - / are allowed.",
            )
        cleaned["message"], cleaned["phone"] = message, phone
        return cleaned


@register
class MDMLockKind(ActionKind):
    key = "mdm_lock"
    label = "Lock devices in custody via MDM"
    description = "Applies to the member's devices in custody that are enrolled in an MDM."
    log_label = "Lock devices via MDM"
    chip = "MDM lock"
    icon = "icon-lock"
    target_noun = ("device lock", "device locks")
    form_class = MDMLockForm
    builder_template = "automations/actions/mdm_lock/builder.html"
    detail_template = "automations/actions/mdm_lock/detail.html"
    log_template = "automations/actions/mdm_lock/log.html"
    insights = {
        "not_enrolled": NOT_ENROLLED,
        "not_lockable": NOT_LOCKABLE,
        "switched_off": SWITCHED_OFF,
        "removed": REMOVED,
    }
    urgent = True
    locks_devices = True
    retry_setting = "MDM_RETRY_DELAYS"

    def default_config(self) -> dict[str, Any]:
        return {"message": "", "phone": ""}

    def clean_config(self, config, *, previous):
        if not (config.get("message") or "").strip():
            return {"message": ["Enter the message shown on the locked screen."]}
        return {}

    def form_initial(self, config):
        return {"message": config.get("message", ""), "phone": config.get("phone", "")}

    def config_from_form(self, form):
        return {"message": form.cleaned_data["message"], "phone": form.cleaned_data["phone"]}

    def submitted_config(self, form):
        return {
            "message": (form.data.get(form.add_prefix("message")) or "").strip(),
            "phone": (form.data.get(form.add_prefix("phone")) or "").strip(),
        }

    def read(self, action):
        return {
            "message": action.config.get("message", ""),
            "phone": action.config.get("phone", ""),
        }

    def write(self, action, config):
        action.config = {
            "message": (config.get("message") or "").strip(),
            "phone": (config.get("phone") or "").strip(),
        }
        return None

    def available(self, user):
        from automations.selectors import mdm_availability

        availability = mdm_availability(user)
        return availability.available, list(availability.problems)

    def summary(self, config):
        return "lock their devices through MDM"

    def snapshot(self, config):
        return {
            "MDM lock": "on",
            "Lock-screen message": config.get("message", ""),
            "Lock-screen phone": config.get("phone", ""),
        }

    def admin_text(self, action):
        return (
            f"Lock message: “{action.config.get('message', '')}” · phone: "
            f"{action.config.get('phone', '')}"
        )

    def plan(self, *, items, context):
        return lock_plan(items, context)

    def prepare(self, *, items, context):
        return mdm_prepare_many(items=items, context=context)

    def resume(self, log, interrupted):
        return mdm_retry_job(log, interrupted)
