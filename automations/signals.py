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

from django.db import transaction
from django.db.models.signals import m2m_changed, post_save, pre_delete, pre_save
from django.dispatch import receiver

from automations.engine.events import event_record
from automations.models import Approval
from automations.selectors import pending_approvals_forget
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


# The navigation's cached count of approvals waiting for each approver (automations/selectors.
# pending_approvals_count) is forgotten once a change to an approval, or to who may decide it,
# is committed: a save of an existing approval (decided, expired, cancelled), a change of its
# approvers (a new approval counts for nobody until its approvers are added), a deletion. No
# code changes an approval's status or approvers with update() or bulk writes, which send no
# signal (automations/tests/test_approvals_nav.py greps for them).


def _forget_approvers_after_commit(user_ids) -> None:
    user_ids = list(user_ids)
    if user_ids:
        transaction.on_commit(lambda: pending_approvals_forget(user_ids), robust=True)


@receiver(post_save, sender=Approval, dispatch_uid="automations_approval_saved_nav")
def approval_saved(sender, instance: Approval, created: bool, raw: bool = False, **kwargs) -> None:
    if raw or created:
        return  # a new approval has no approvers yet: they are added next (m2m_changed)
    _forget_approvers_after_commit(instance.approvers.values_list("pk", flat=True))


@receiver(pre_delete, sender=Approval, dispatch_uid="automations_approval_deleted_nav")
def approval_deleted(sender, instance: Approval, **kwargs) -> None:
    _forget_approvers_after_commit(instance.approvers.values_list("pk", flat=True))


@receiver(m2m_changed, sender=Approval.approvers.through, dispatch_uid="automations_approvers_nav")
def approvers_changed(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    if reverse:  # user.approvals_to_decide.add(...): the instance is the user
        _forget_approvers_after_commit([instance.pk])
    elif action == "pre_clear":
        _forget_approvers_after_commit(instance.approvers.values_list("pk", flat=True))
    else:
        _forget_approvers_after_commit(pk_set or ())
