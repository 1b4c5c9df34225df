"""Factories of the delay tests: automations whose actions wait after the trigger, a webhook
receiver, and running what the engine scheduled."""

from __future__ import annotations

from datetime import timedelta

from automations.models import Action, ActionLog, Automation
from automations.tests.engine_factories import SECRET, make_engine_automation


def delayed(automation: Automation, kind: str, delay: timedelta, **fields) -> Action:
    """Give the automation's action of `kind` a delay (and other fields)."""
    action = automation.actions.get(kind=kind)
    action.delay = delay
    for name, value in fields.items():
        setattr(action, name, value)
    action.save()
    return action


def delayed_webhook_automation(url: str, delay: timedelta, **fields) -> Automation:
    """Revoke user-based licenses at once, then a webhook `delay` after the trigger."""
    automation = make_engine_automation(webhook_url=url, user_based=True, **fields)
    delayed(automation, "webhook", delay)
    return automation


def add_webhook(automation: Automation, url: str, *, position: int, **fields) -> Action:
    action = Action(
        automation=automation, kind="webhook", position=position, config={"url": url}, **fields
    )
    action.set_secret(SECRET)
    action.save()
    return action


def scheduled_log(execution, kind: str = "webhook") -> ActionLog:
    return execution.logs.get(action_kind=kind, target_type=ActionLog.TargetType.SCHEDULE)
