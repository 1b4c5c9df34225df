"""Every receiver of the automations app. Wired in `AutomationsConfig.ready`.

The member trigger: a status transition active → deactivated (or back) becomes an Event row in
the same transaction as the save, and its processing is enqueued when that transaction commits.
It is a post_save receiver so that every path that saves a member is seen: the portal, bulk
actions, the Django admin, management commands, imports, a shell. No code changes a member's
status with update()/bulk_update() (they send no signal; a test greps for it).

The status before the save is `Member.loaded_status` (set by Member.from_db). For an instance
that was not loaded from the database (built by hand with a pk), pre_save reads the stored
status. After each save the instance's loaded_status becomes its status, so saving the same
instance again makes no second event.
"""

from __future__ import annotations

from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from automations.engine.events import event_record
from automations.triggers import MEMBER_DEACTIVATED, MEMBER_REACTIVATED
from members.models import Member

TRANSITIONS = {
    (Member.Status.ACTIVE, Member.Status.DEACTIVATED): MEMBER_DEACTIVATED,
    (Member.Status.DEACTIVATED, Member.Status.ACTIVE): MEMBER_REACTIVATED,
}


def _saves_status(update_fields) -> bool:
    return update_fields is None or "status" in update_fields


@receiver(pre_save, sender=Member, dispatch_uid="automations_member_status_before")
def member_status_before(sender, instance: Member, raw: bool = False, **kwargs) -> None:
    if raw or instance.pk is None or instance.loaded_status is not None:
        return
    if not _saves_status(kwargs.get("update_fields")):
        return
    instance.loaded_status = (
        Member.objects.filter(pk=instance.pk).values_list("status", flat=True).first()
    )


@receiver(post_save, sender=Member, dispatch_uid="automations_member_status_event")
def member_status_event(
    sender, instance: Member, created: bool, raw: bool = False, update_fields=None, **kwargs
) -> None:
    if raw or not _saves_status(update_fields):
        return
    before, instance.loaded_status = instance.loaded_status, instance.status
    if created:
        return
    kind = TRANSITIONS.get((before, instance.status))
    if kind is not None:
        event_record(member=instance, kind=kind)
