"""Every receiver of the automations app. Wired in `AutomationsConfig.ready`.

The member trigger: a status transition active → deactivated (or back) becomes an Event row in
the same transaction as the save, and its processing is enqueued when that transaction commits.
It is a post_save receiver so that every path that saves a member is seen: the portal, bulk
actions, the Django admin, management commands, imports, a shell. No code changes a member's
status with update()/bulk_update() (they send no signal; a test greps for it).

The status before the save is the stored one: pre_save reads it when the instance was not loaded
from the database (built by hand with a pk) or when its status differs from `loaded_status` (set
by Member.from_db), so a plain save costs no query and a transition one. After each save the
instance's loaded_status becomes its status, so saving the same instance again makes no second
event; Member.refresh_from_db also resets loaded_status to the stored value.
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
    if raw or instance.pk is None or not _saves_status(kwargs.get("update_fields")):
        return
    if instance.loaded_status is not None and instance.status == instance.loaded_status:
        return  # no transition in sight: no query
    # Not loaded from the database, or what looks like a transition: read the stored status, so
    # an instance whose loaded_status went stale (refresh_from_db does not go through from_db)
    # cannot make a transition that did not happen.
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
    if kind == MEMBER_REACTIVATED:
        # Reactivated before a decision: the member's pending approvals are cancelled and the
        # actions they hold are not run (automations/actions/approval.py).
        from automations.actions.approval import approvals_cancel_for_member
        from automations.engine.scheduled import scheduled_cancel_for_member

        approvals_cancel_for_member(member_id=instance.pk)
        # Reactivated before a delayed action's time: it is cancelled, saying so.
        scheduled_cancel_for_member(member_id=instance.pk)
