""" "Retry failed actions" on a failed or partially failed execution (the Executions page).

Permission and one-time-password checks are the view's; this service resets the failed logs
(each gets a fresh attempt budget; webhook deliveries keep their webhook-id) and queues the
execution to run again. Targets that succeeded or were skipped are not touched, and targets that
were never claimed (an event dead-lettered halfway) are claimed by the new run.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from assetsonar.audit import audit_record
from assetsonar.models import AuditEvent
from automations.models import ActionLog, Execution

RETRYABLE = (Execution.Status.FAILED, Execution.Status.PARTIALLY_FAILED)


@transaction.atomic
def execution_retry_failed(*, execution: Execution, actor: Any) -> int:
    """Queue the failed actions of `execution` to run again; returns how many were reset.

    Raises ValidationError if the execution is not failed or partially failed.
    """
    locked = Execution.objects.select_for_update().get(pk=execution.pk)
    if locked.status not in RETRYABLE:
        raise ValidationError(
            f"This execution is {locked.get_status_display().lower()}: only failed or partially "
            "failed executions can be retried."
        )
    now = timezone.now()
    failed = list(locked.logs.filter(status=ActionLog.Status.FAILED))
    for log in failed:
        # The new budget counts from here; the attempts made so far stay in the history.
        log.detail = {**log.detail, "retry_base": log.attempts}
        # Waiting to retry, due now: the run below picks it up, and so does the sweeper should
        # the task be lost.
        log.status = ActionLog.Status.RETRYING
        log.next_attempt_at = now
        if log.target_type == ActionLog.TargetType.SCHEDULE:
            # A delayed action failed before its time (a dead-lettered event): scheduled again,
            # for its own time (the sweeper runs it if that passed).
            log.status, log.next_attempt_at = ActionLog.Status.SCHEDULED, None
        log.finished_at = None
        log.insight = "Retry requested" + (f" by {actor.get_username()}." if actor else ".")
    ActionLog.objects.bulk_update(
        failed, ["detail", "status", "next_attempt_at", "finished_at", "insight"]
    )
    # Actions skipped because a "stop on error" action before them failed are run again too:
    # their held logs go, and the run holds them again until that action settles.
    locked.logs.filter(status=ActionLog.Status.SKIPPED, detail__held_by__isnull=False).delete()
    locked.status = Execution.Status.RUNNING
    locked.insight = ""
    locked.finished_at = None
    locked.save(update_fields=["status", "insight", "finished_at"])
    audit_record(
        action=AuditEvent.Action.CHANGED,
        actor=actor,
        obj=locked,
        message=f"Retry of {len(failed)} failed action{'s' if len(failed) != 1 else ''} "
        f"requested for execution {locked.pk}.",
    )
    execution_id = locked.pk
    transaction.on_commit(lambda: _dispatch(execution_id), robust=True)
    return len(failed)


def _dispatch(execution_id: int) -> None:
    from django_q.tasks import async_task

    async_task("automations.tasks.run_execution", execution_id, group="automations.retries")
