"""Action 3, engine side: lock every device the member held at the event through its MDM.

The vendor APIs live in `assets.mdm` (one connector per provider); this module only orchestrates.
Targets are the devices in the member's custody when the event was recorded (the event's
snapshot), so every re-run targets the same devices even if one was checked in meanwhile.

Per device: one ActionLog (the claim) and one MDMCommand. When two automations lock the same
device for one event, the first sends the lock and the second is skipped (unless the first
failed: then it tries again, with the same PIN). The 6-digit unlock PIN is generated
with `secrets` and stored encrypted before the command is sent, and the same PIN is sent on every
retry, so the device and the record agree whichever attempt got through. A vendor that generates
its own PIN (Kandji) overrides ours; a vendor that ignores PINs (Intune) leaves none stored.
The portal switch (PortalSettings.mdm_commands_enabled) is read at every attempt.
"""

from __future__ import annotations

import logging
import secrets

from django.utils import timezone

from assets.models import Asset
from assetsonar.models import PortalSettings
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


def mdm_prepare(*, execution, action, event, context: RunContext) -> list[Job]:
    """Claim one lock per device in the member's custody at the event and start each."""
    return mdm_prepare_many(items=[Prep(execution, action, event)], context=context)


def mdm_prepare_many(*, items: list[Prep], context: RunContext) -> list[Job]:
    """`mdm_prepare` for many executions at once (one query each for the devices, the claims,
    the attempts and the earlier commands), in execution order, so that a later automation of
    the same event sees the commands an earlier one stored here."""
    targets: list[tuple[Prep, list[Asset]]] = []
    custody_ids = {
        pk for item in items for pk in item.event.member_snapshot.get("custody_asset_ids") or []
    }
    by_id = Asset.objects.select_related("mdm_connection").in_bulk(custody_ids)
    for item in items:
        custody = item.event.member_snapshot.get("custody_asset_ids")
        if custody is None:
            # An event recorded before custody was part of the snapshot: the custody now.
            assets = list(
                Asset.objects.select_related("mdm_connection")
                .filter(custodian_id=item.event.member_id)
                .order_by("pk")
            )
        else:
            assets = [by_id[pk] for pk in sorted(custody) if pk in by_id]
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
    started_logs = [log for log, _ in started]
    # Every command on these devices for these events, oldest first: a started log's own
    # command (stored by an interrupted run) or an earlier automation's.
    known = list(
        MDMCommand.objects.filter(
            asset_id__in={log.asset_id for log in started_logs},
            log__execution__event_id__in={item.event.pk for item, _ in targets},
        )
        .select_related("log__execution")
        .order_by("pk")
    )
    started_ids = {log.pk for log in started_logs}
    own = {c.log_id: c for c in known if c.log_id in started_ids}
    on_target: dict[tuple, list[MDMCommand]] = {}
    for c in known:
        if c.log is not None:
            on_target.setdefault((c.log.execution.event_id, c.asset_id), []).append(c)
    jobs = []
    for log, _ in started:
        item, asset = owner[log.key]
        log.asset, log.execution = asset, item.execution
        # As when this execution runs alone: the first command on the device for the event
        # that is not one of this execution's own started logs.
        commands = on_target.setdefault((item.event.pk, asset.pk), [])
        earlier = next(
            (
                c
                for c in commands
                if c.log_id not in started_ids or c.log.execution_id != log.execution_id
            ),
            None,
        )
        job = mdm_job(
            log,
            action=item.action,
            enabled=context.mdm_commands_enabled,
            earlier=earlier,
            command=own.get(log.pk),
        )
        if job is not None:
            jobs.append(job)
            if log.pk not in own:  # stored just now: later automations see it as earlier
                job.command.log = log
                commands.append(job.command)
    return jobs


def mdm_retry_job(log: ActionLog, interrupted: bool) -> Job | None:
    """The lock attempt of a started log on its own (a scheduled retry)."""
    log = ActionLog.objects.select_related("asset__mdm_connection", "action", "execution").get(
        pk=log.pk
    )
    return mdm_job(
        log,
        action=log.action,
        enabled=PortalSettings.load().mdm_commands_enabled,
        earlier=_earlier_commands(log.execution.event_id, [log]).get(log.asset_id),
        command=MDMCommand.objects.filter(log=log).first(),
    )


def _earlier_commands(event_id, logs: list[ActionLog]) -> dict[int, MDMCommand]:
    """Lock commands of other automations for the same event, by device (the first one)."""
    found: dict[int, MDMCommand] = {}
    for command in (
        MDMCommand.objects.filter(
            asset_id__in=[log.asset_id for log in logs], log__execution__event_id=event_id
        )
        .exclude(log__in=logs)
        .select_related("log__execution")
        .order_by("pk")
    ):
        found.setdefault(command.asset_id, command)
    return found


def mdm_job(log: ActionLog, *, action, enabled: bool, earlier, command) -> Job | None:
    """The lock of one started log, or None when the device is not to be locked now (the log
    is then closed with the reason). The command and its PIN are stored here, in the run's
    first transaction, before anything is sent."""
    asset = log.asset
    skip = None
    if action is None:
        skip = "The MDM lock was removed from the automation."
    elif asset is None or not asset.is_mdm_enrolled:
        skip = NOT_ENROLLED
    elif not enabled:
        skip = SWITCHED_OFF
    elif earlier is not None and earlier.status != MDMCommand.Status.FAILED:
        # The device is locked (or being locked) for this deactivation already; a second
        # command would only give it a second PIN.
        skip = (
            f"Left to automation “{earlier.log.execution.automation_name}”, which locks this "
            "device for the same deactivation."
        )
    if skip:
        log_finish(log, ActionLog.Status.SKIPPED, skip)
        return None

    connection = asset.mdm_connection
    if command is None:
        command = MDMCommand(
            asset=asset,
            connection=connection,
            log=log,
            message=action.lock_message,
            phone=action.lock_phone,
        )
        # A failed lock of another automation for the same event may have reached the device.
        reuse = earlier.get_pin() if earlier is not None and earlier.pin_encrypted else ""
        pin = reuse or f"{secrets.randbelow(10**6):06d}"
        command.set_pin(pin)  # stored (encrypted) before anything is sent
        write_create(command)
    else:
        pin = command.get_pin()
        if command.connection_id != connection.pk:
            command.connection = connection
            write_save(command, ["connection"])
    asset.lock_state = Asset.LockState.PENDING
    write_save(asset, ["lock_state"])

    def perform():
        from assets.mdm import MDMError, get_connector

        try:
            return get_connector(connection).lock_device(
                device_id=asset.mdm_device_id,
                pin=pin,
                message=command.message,
                phone=command.phone,
                platform=asset.platform,
            )
        except MDMError as exc:
            return exc

    def record(outcome) -> None:
        from assets.mdm import MDMError

        if isinstance(outcome, MDMError):
            _record_error(log, command, asset, outcome)
        else:
            _record_success(log, command, asset, outcome)

    return Job(log=log, perform=perform, record=record, command=command)


def _record_success(log: ActionLog, command: MDMCommand, asset: Asset, result) -> None:
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
    log_finish(log, ActionLog.Status.SUCCEEDED, f"Lock {state} via {command.connection.name}{ref}.")


def _record_error(log: ActionLog, command: MDMCommand, asset: Asset, exc) -> None:
    message = str(exc)
    command.last_error = message[:500]
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
