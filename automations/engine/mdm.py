"""Action 3, engine side: lock every device the member held at the event through its MDM.

The vendor APIs live in `assets.mdm` (one connector per provider); this module only orchestrates.
Targets are the devices in the member's custody when the event was recorded (the event's
snapshot), so every re-run targets the same devices even if one was checked in meanwhile.

Per device: one ActionLog (the claim) and one MDMCommand. When two automations lock the same
device for one event, the second is skipped once the first got through, and shares its PIN while
the first is still being retried. The 6-digit unlock PIN is generated
with `secrets` and stored encrypted before the command is sent, and the same PIN is sent on every
retry, so the device and the record agree whichever attempt got through. A vendor that generates
its own PIN (Kandji) overrides ours; a vendor that ignores PINs (Intune) leaves none stored.
The portal switch (PortalSettings.mdm_commands_enabled) is read at every attempt.
"""

from __future__ import annotations

import logging
import secrets

from django.db import transaction
from django.utils import timezone

from assets.models import Asset
from assetsonar.models import PortalSettings
from automations.engine.common import (
    OPEN_STATUSES,
    attempts_in_round,
    human_duration,
    log_begin_attempt,
    log_claim,
    log_finish,
    log_is_due,
    log_key,
    max_attempts,
    next_retry_at,
    schedule_retry,
)
from automations.models import ActionLog, MDMCommand

logger = logging.getLogger(__name__)

NOT_ENROLLED = (
    "Device is not enrolled in an MDM: enrol it (MDM connection and device ID on the asset) "
    "or lock it by hand."
)
SWITCHED_OFF = (
    "Not locked: MDM commands are switched off in the portal settings. An administrator can "
    "switch them on; then use “Retry failed actions” or lock the device by hand."
)


def mdm_lock_run(*, execution, action, event) -> None:
    """Claim one lock per device in the member's custody at the event and attempt each."""
    custody = event.member_snapshot.get("custody_asset_ids")
    assets = Asset.objects.select_related("mdm_connection").order_by("pk")
    # An event recorded before custody was part of the snapshot: the custody now.
    assets = (
        assets.filter(pk__in=custody)
        if custody is not None
        else assets.filter(custodian_id=event.member_id)
    )
    commands_enabled = PortalSettings.load().mdm_commands_enabled
    for asset in assets:
        log = log_claim(
            key=log_key(event.pk, execution.automation_id, action.pk, f"asset:{asset.pk}"),
            execution=execution,
            action=action,
            target_type=ActionLog.TargetType.ASSET,
            target_label=str(asset),
            asset=asset,
        )
        mdm_attempt(log_id=log.pk, commands_enabled=commands_enabled)


def mdm_attempt(*, log_id: int, commands_enabled: bool | None = None) -> None:
    """One lock attempt for one device, if due: skip what cannot be locked, send, record.
    `commands_enabled` is the portal switch when the caller already read it."""
    from assets.mdm import MDMError, get_connector

    log = ActionLog.objects.select_related("asset__mdm_connection", "action", "execution").get(
        pk=log_id
    )
    if not log_is_due(log, timezone.now()):
        return
    asset, action = log.asset, log.action
    if commands_enabled is None:
        commands_enabled = PortalSettings.load().mdm_commands_enabled
    # A lock another automation sent for the same event: the device is locked already, and a
    # second command would give it a second PIN.
    earlier = (
        MDMCommand.objects.filter(
            asset_id=log.asset_id, log__execution__event_id=log.execution.event_id
        )
        .exclude(log=log)
        .select_related("log__execution")
        .order_by("pk")
        .first()
        if asset is not None
        else None
    )
    skip = None
    if action is None:
        skip = "The MDM lock was removed from the automation."
    elif asset is None or not asset.is_mdm_enrolled:
        skip = NOT_ENROLLED
    elif not commands_enabled:
        skip = SWITCHED_OFF
    elif earlier is not None and earlier.status in (
        MDMCommand.Status.SENT,
        MDMCommand.Status.ACKNOWLEDGED,
    ):
        skip = (
            "Already locked for this deactivation by automation "
            f"“{earlier.log.execution.automation_name}”."
        )
    if skip:
        ActionLog.objects.filter(pk=log.pk, status__in=OPEN_STATUSES).update(
            status=ActionLog.Status.SKIPPED,
            insight=skip,
            next_attempt_at=None,
            finished_at=timezone.now(),
        )
        return

    taken = log_begin_attempt(log.pk)
    if taken is None:
        return
    log, _ = taken
    connection = asset.mdm_connection
    with transaction.atomic():
        command = MDMCommand.objects.filter(log=log).first()
        if command is None:
            command = MDMCommand(
                asset=asset,
                connection=connection,
                log=log,
                message=action.lock_message,
                phone=action.lock_phone,
            )
            # The PIN of a lock still under way for the same event, so the device gets one PIN.
            reuse = earlier.get_pin() if earlier is not None and earlier.pin_encrypted else ""
            command.set_pin(reuse or f"{secrets.randbelow(10**6):06d}")
            command.save()
        elif command.connection_id != connection.pk:
            command.connection = connection
            command.save(update_fields=["connection"])
        Asset.objects.filter(pk=asset.pk).update(lock_state=Asset.LockState.PENDING)

    try:
        result = get_connector(connection).lock_device(
            device_id=asset.mdm_device_id,
            pin=command.get_pin(),
            message=command.message,
            phone=command.phone,
            platform=asset.platform,
        )
    except MDMError as exc:
        _record_error(log, command, asset, exc)
        return
    _record_success(log, command, asset, result)


def _record_success(log: ActionLog, command: MDMCommand, asset: Asset, result) -> None:
    now = timezone.now()
    with transaction.atomic():
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
        command.save()
        Asset.objects.filter(pk=asset.pk).update(lock_state=Asset.LockState.LOCKED, locked_at=now)
        state = "acknowledged by the device" if result.status == "acknowledged" else "sent"
        ref = f" (command {command.vendor_command_id})" if command.vendor_command_id else ""
        log_finish(
            log, ActionLog.Status.SUCCEEDED, f"Lock {state} via {command.connection.name}{ref}."
        )


def _record_error(log: ActionLog, command: MDMCommand, asset: Asset, exc) -> None:
    message = str(exc)
    with transaction.atomic():
        command.last_error = message[:500]
        if exc.kind == "retryable":
            when = next_retry_at(log, retry_after=exc.retry_after)
            if when is not None:
                command.save(update_fields=["last_error"])
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
        command.save(update_fields=["status", "last_error"])
        Asset.objects.filter(pk=asset.pk).update(lock_state=Asset.LockState.FAILED)
        log_finish(log, ActionLog.Status.FAILED, message)
