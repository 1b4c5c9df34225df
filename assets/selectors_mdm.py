"""Reads for the asset's MDM card: its command history, with what the card shows joined."""

from __future__ import annotations

from dataclasses import dataclass

from assets.models import Asset, MDMCommand

HISTORY_LIMIT = 20


@dataclass(frozen=True)
class MDMHistory:
    """The asset's recent MDM commands (newest first) and the ones the notices are about."""

    commands: list[MDMCommand]
    lock: MDMCommand | None  # the latest lock that reached the MDM (sent or acknowledged)
    failed: MDMCommand | None  # the latest command, when it failed


def mdm_commands_for(asset: Asset, *, limit: int = HISTORY_LIMIT) -> MDMHistory:
    """One query whatever the number of commands: connection and execution are joined."""
    commands = list(
        MDMCommand.objects.filter(asset=asset)
        .select_related("connection", "log__execution")
        .order_by("-created_at", "-id")[:limit]
    )
    delivered = (MDMCommand.Status.SENT, MDMCommand.Status.ACKNOWLEDGED)
    lock = next(
        (c for c in commands if c.kind == MDMCommand.Kind.LOCK and c.status in delivered), None
    )
    latest = commands[0] if commands else None
    failed = latest if latest and latest.status == MDMCommand.Status.FAILED else None
    return MDMHistory(commands=commands, lock=lock, failed=failed)
