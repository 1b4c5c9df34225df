"""django-q2 entry points of the members app. Thin: a service call, nothing else."""

from __future__ import annotations

from django.utils import timezone

DEACTIVATE_DUE_SCHEDULE_NAME = "members.deactivate_due"
DEACTIVATE_DUE_FUNC = "members.tasks.deactivate_due"
DEACTIVATE_DUE_MINUTES = 5


def deactivate_due() -> int:
    """Every 5 minutes: deactivate the members whose last working day has ended."""
    from members.services import members_deactivate_due

    return members_deactivate_due(now=timezone.now())


def ensure_deactivate_due_schedule(schedule_model=None) -> None:
    """Create the every-5-minutes schedule unless it exists (migration members 0006 calls this
    with the historical model). Catch-up is off for the cluster, so a stopped cluster runs it
    once when it returns, and that run deactivates everyone who became due meanwhile."""
    if schedule_model is None:
        from django_q.models import Schedule as schedule_model
    schedule_model.objects.get_or_create(
        name=DEACTIVATE_DUE_SCHEDULE_NAME,
        defaults={
            "func": DEACTIVATE_DUE_FUNC,
            "schedule_type": "I",  # Schedule.MINUTES
            "minutes": DEACTIVATE_DUE_MINUTES,
            "repeats": -1,
            "next_run": timezone.now(),
        },
    )
