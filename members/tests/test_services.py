"""members.services: the rules every write path (portal, admin, imports) relies on."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from assets.services import asset_check_in
from assetsonar.models import AuditEvent
from conftest import make_asset, make_entitlement, make_license, make_member
from licenses.services import license_unentitle
from members import services
from members.models import Member


def _audit_actions(member: Member) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type="members.member", object_id=str(member.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )


@pytest.mark.django_db
def test_deactivating_twice_changes_the_member_once_and_audits_once(it_manager):
    member = make_member()

    _, first = services.member_deactivate(member=member, actor=it_manager, reason="Left")
    _, second = services.member_deactivate(member=member.pk, actor=it_manager, reason="Again")

    member.refresh_from_db()
    assert (first, second) == (True, False)
    assert member.status == Member.Status.DEACTIVATED
    assert member.deactivation_reason == "Left"
    assert member.deactivated_by == it_manager
    assert member.deactivated_at is not None
    assert _audit_actions(member) == [AuditEvent.Action.DEACTIVATED]


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["", "   \n"])
def test_deactivation_without_a_reason_is_refused_and_changes_nothing(it_manager, reason):
    member = make_member()

    with pytest.raises(ValidationError) as caught:
        services.member_deactivate(member=member, actor=it_manager, reason=reason)

    assert "reason" in caught.value.message_dict
    member.refresh_from_db()
    assert member.status == Member.Status.ACTIVE
    assert _audit_actions(member) == []


@pytest.mark.django_db
def test_bulk_deactivation_counts_only_the_members_it_changed(it_manager):
    first, second, already = make_member(), make_member(), make_member()
    services.member_deactivate(member=already, actor=it_manager, reason="Earlier")

    changed = services.member_bulk_deactivate(
        member_ids=[first.pk, second.pk, already.pk, first.pk], actor=it_manager, reason="Closure"
    )

    assert changed == 2
    assert set(Member.objects.deactivated().values_list("pk", flat=True)) == {
        first.pk,
        second.pk,
        already.pk,
    }
    already.refresh_from_db()
    assert already.deactivation_reason == "Earlier"


@pytest.mark.django_db
def test_bulk_deactivation_without_a_reason_deactivates_nobody(it_manager):
    members = [make_member(), make_member()]

    with pytest.raises(ValidationError):
        services.member_bulk_deactivate(
            member_ids=[m.pk for m in members], actor=it_manager, reason=" "
        )

    assert Member.objects.deactivated().count() == 0


@pytest.mark.django_db
def test_reactivation_clears_the_deactivation_and_is_a_no_op_for_active_members(it_manager):
    member = make_member()
    services.member_deactivate(member=member, actor=it_manager, reason="Left")

    _, changed = services.member_reactivate(member=member, actor=it_manager)
    _, changed_again = services.member_reactivate(member=member, actor=it_manager)

    member.refresh_from_db()
    assert (changed, changed_again) == (True, False)
    assert member.status == Member.Status.ACTIVE
    assert (member.deactivated_at, member.deactivated_by, member.deactivation_reason) == (
        None,
        None,
        "",
    )
    assert _audit_actions(member) == [
        AuditEvent.Action.DEACTIVATED,
        AuditEvent.Action.REACTIVATED,
    ]


@pytest.mark.django_db
def test_deleting_a_member_who_holds_an_asset_and_a_license_is_refused_with_both_named(
    it_manager,
):
    member = make_member(full_name="Hold Er")
    make_asset(custodian=member)
    make_entitlement(license=make_license(), member=member)

    with pytest.raises(ValidationError) as caught:
        services.member_delete(member=member, actor=it_manager)

    message = " ".join(caught.value.messages)
    assert "Hold Er cannot be deleted" in message
    assert "1 asset" in message
    assert "1 live license entitlement" in message
    assert Member.objects.filter(pk=member.pk).exists()


@pytest.mark.django_db
def test_deleting_a_member_with_only_history_is_refused_because_history_is_kept(it_manager):
    member = make_member()
    asset = make_asset(custodian=member)
    asset_check_in(asset=asset, actor=it_manager)
    entitlement = make_entitlement(license=make_license(), member=member)
    license_unentitle(entitlement=entitlement, actor=it_manager)

    with pytest.raises(ValidationError) as caught:
        services.member_delete(member=member, actor=it_manager)

    assert "history must be kept" in " ".join(caught.value.messages)
    assert Member.objects.filter(pk=member.pk).exists()


@pytest.mark.django_db
def test_deleting_a_member_without_history_removes_them_and_frees_their_reports(it_manager):
    boss = make_member()
    report = make_member(manager=boss)
    boss_pk = boss.pk

    services.member_delete(member=boss, actor=it_manager)

    assert not Member.objects.filter(pk=boss_pk).exists()
    report.refresh_from_db()
    assert report.manager is None
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.DELETED, object_id=str(boss_pk)
    ).exists()


@pytest.mark.django_db
def test_email_addresses_are_unique_whatever_their_case(it_manager):
    make_member(email="ada@example.com")

    with pytest.raises(ValidationError) as caught:
        services.member_create(actor=it_manager, full_name="Ada Two", email="ADA@Example.com")

    assert "Another member already has this email address." in caught.value.messages
    assert Member.objects.count() == 1


@pytest.mark.django_db
def test_employee_ids_are_unique_when_present_and_may_be_left_empty_by_many(it_manager):
    make_member(employee_id="E1")
    services.member_create(actor=it_manager, full_name="A", email="a@example.com", employee_id="")
    services.member_create(actor=it_manager, full_name="B", email="b@example.com", employee_id="")

    with pytest.raises(ValidationError) as caught:
        services.member_create(
            actor=it_manager, full_name="C", email="c@example.com", employee_id="E1"
        )

    assert "Another member already has this employee ID." in caught.value.messages
    assert Member.objects.filter(employee_id="").count() == 2


@pytest.mark.django_db
def test_a_manager_chain_cannot_loop_back_to_the_member(it_manager):
    top = make_member()
    middle = make_member(manager=top)
    bottom = make_member(manager=middle)

    with pytest.raises(ValidationError) as caught:
        services.member_update(member=top, actor=it_manager, manager=bottom)

    assert "manager" in caught.value.message_dict
    top.refresh_from_db()
    assert top.manager is None


@pytest.mark.django_db
def test_updating_a_member_audits_exactly_the_fields_that_changed(it_manager):
    member = make_member(department="Sales", title="Rep")

    services.member_update(member=member, actor=it_manager, department="Finance", title="Rep")

    event = AuditEvent.objects.get(action=AuditEvent.Action.CHANGED, object_id=str(member.pk))
    assert event.changes == {"department": ["Sales", "Finance"]}


def test_refresh_from_db_resets_the_loaded_status(db):
    """After a refresh the instance knows the stored status, so the automations trigger sees a
    transition made elsewhere and reverted on this instance."""
    from django.utils import timezone

    member = make_member()
    other = Member.objects.get(pk=member.pk)
    other.status, other.deactivated_at = Member.Status.DEACTIVATED, timezone.now()
    other.save()
    member.refresh_from_db()
    assert member.loaded_status == Member.Status.DEACTIVATED
