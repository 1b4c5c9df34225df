"""Delays of actions (issue 10): "immediately", or a number of minutes, hours or days after the
trigger. Stored as `Action.delay` (a duration); the builder edits it as an amount and a unit.
Pure functions, no database: the builder, the services, the summaries and the previews share
them."""

from __future__ import annotations

from datetime import timedelta

IMMEDIATELY = "immediately"
UNITS: dict[str, tuple[int, str]] = {
    # unit → (seconds, singular)
    "minutes": (60, "minute"),
    "hours": (3600, "hour"),
    "days": (86400, "day"),
}
MAX_DAYS = 365
MAX_DELAY = timedelta(days=MAX_DAYS)
UNIT_CHOICES = [
    (IMMEDIATELY, "Immediately"),
    ("minutes", "Minutes after the trigger"),
    ("hours", "Hours after the trigger"),
    ("days", "Days after the trigger"),
]


def split(delay: timedelta | None) -> tuple[int | None, str]:
    """(amount, unit) for the builder: the largest unit that divides the delay evenly."""
    seconds = int(delay.total_seconds()) if delay else 0
    if seconds <= 0:
        return None, IMMEDIATELY
    for unit in ("days", "hours", "minutes"):
        size = UNITS[unit][0]
        if seconds % size == 0:
            return seconds // size, unit
    return max(1, round(seconds / 60)), "minutes"


def join(amount: int | None, unit: str) -> timedelta:
    if unit not in UNITS or not amount:
        return timedelta(0)
    return timedelta(seconds=amount * UNITS[unit][0])


def problem(amount: int | None, unit: str) -> str:
    """Why (amount, unit) is not a valid delay, or ""."""
    if unit == IMMEDIATELY or not unit:
        return ""
    if unit not in UNITS:
        return "Choose when the action runs: immediately, or minutes, hours or days after."
    limit = MAX_DAYS * 86400 // UNITS[unit][0]
    if amount is None:
        return f"Enter how many {unit} after the trigger this action runs (1 to {limit:,})."
    if amount < 1:
        return f"A delay is at least 1 {UNITS[unit][1]}; choose “Immediately” for none."
    if amount > limit:
        if unit == "days":
            return f"A delay is at most {MAX_DAYS} days."
        return f"A delay is at most {MAX_DAYS} days ({limit:,} {unit})."
    return ""


def check(delay: timedelta | None) -> str:
    """Why a stored delay is not valid, or "" (the services' check, after the form's)."""
    if delay is None:
        return ""
    if delay < timedelta(0):
        return "A delay cannot be negative."
    if delay > MAX_DELAY:
        return f"A delay is at most {MAX_DAYS} days."
    return ""


def label(delay: timedelta | None) -> str:
    """ "immediately", "after 2 hours", "after 7 days", "after 90 minutes"."""
    amount, unit = split(delay)
    if amount is None:
        return IMMEDIATELY
    word = UNITS[unit][1]
    return f"after {amount} {word}{'s' if amount != 1 else ''}"
