"""django-q2 entry points of the assets app: thin, they call a service and return its counts."""

from __future__ import annotations

from assets.returns import returns_remind_due


def returns_remind_due_task() -> dict:
    """The every-15-minutes schedule (migration 0005): reminders, escalations and unsent emails
    of device returns."""
    return returns_remind_due()
