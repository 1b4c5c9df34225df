"""django-q2 entry points of the automation engine. Thin: ids in, a service call, nothing else.

The record of what happened is in Event / Execution / ActionLog, never in django-q2's task table.
"""

from __future__ import annotations

from automations.engine import events, runner, scheduled


def process_event(event_id: str) -> None:
    """Run every matching automation for one member event (enqueued when the event commits)."""
    runner.event_process(event_id=event_id)


def retry_action(log_id: int) -> None:
    """One due attempt of a webhook delivery or device lock (scheduled retry or the sweeper)."""
    runner.log_resume(log_id=log_id)


def run_execution(execution_id: int) -> None:
    """Run an execution's actions again after "Retry failed actions"."""
    runner.execution_resume(execution_id=execution_id)


def run_scheduled_action(log_id: int) -> str:
    """A delayed action whose time came (its django-q2 Schedule ONCE, the sweeper, or "Run
    now"): run once, however many times the task is sent."""
    return scheduled.scheduled_run(log_id=log_id)


def last_day_fire_due() -> int:
    """Every minute: fire the "Member's last working day" automations whose time has come."""
    from automations.lastday import last_day_fire_due as fire

    return fire()


def sweep_events() -> dict[str, int]:
    """Every minute: re-dispatch events and retries that no task picked up."""
    return events.events_sweep()
