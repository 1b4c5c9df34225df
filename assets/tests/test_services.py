"""Custody rules of asset_check_out / asset_check_in, and the asset edit rules around custody."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from assets.models import Asset, CustodyRecord
from assets.services import asset_check_in, asset_check_out, asset_create, asset_update
from assetsonar.models import AuditEvent
from conftest import make_asset, make_member
from members.services import member_deactivate

pytestmark = pytest.mark.django_db


def test_check_out_puts_available_asset_in_custody_and_opens_a_record(it_manager):
    asset = make_asset()
    member = make_member()

    record = asset_check_out(asset=asset, member=member, actor=it_manager, note="New starter")

    asset.refresh_from_db()
    assert asset.status == Asset.Status.IN_CUSTODY
    assert asset.custodian == member
    assert record.checked_in_at is None
    assert record.checked_out_by == it_manager
    assert record.note == "New starter"
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.CHECKED_OUT, object_id=str(asset.pk)
    ).exists()


@pytest.mark.parametrize(
    "status", [Asset.Status.IN_REPAIR, Asset.Status.LOST, Asset.Status.RETIRED]
)
def test_check_out_refuses_an_asset_that_is_not_available(it_manager, status):
    asset = make_asset(status=status)

    with pytest.raises(ValidationError, match="only available assets can be checked out"):
        asset_check_out(asset=asset, member=make_member(), actor=it_manager)

    asset.refresh_from_db()
    assert asset.status == status
    assert asset.custodian is None
    assert not CustodyRecord.objects.filter(asset=asset).exists()


def test_check_out_refuses_an_asset_already_in_someone_elses_custody(it_manager):
    holder = make_member(full_name="Holder")
    asset = make_asset(custodian=holder)

    with pytest.raises(ValidationError, match="Holder"):
        asset_check_out(asset=asset, member=make_member(), actor=it_manager)

    assert CustodyRecord.objects.filter(asset=asset).count() == 1
    asset.refresh_from_db()
    assert asset.custodian == holder


def test_check_out_refuses_a_deactivated_member(it_manager):
    member = make_member()
    member, _ = member_deactivate(member=member, actor=it_manager, reason="Left the company")
    asset = make_asset()

    with pytest.raises(ValidationError) as excinfo:
        asset_check_out(asset=asset, member=member, actor=it_manager)

    assert "deactivated" in excinfo.value.message_dict["member"][0]
    asset.refresh_from_db()
    assert asset.status == Asset.Status.AVAILABLE
    assert not CustodyRecord.objects.filter(asset=asset).exists()


def test_check_in_closes_the_open_record_and_sets_the_chosen_status(it_manager):
    member = make_member()
    asset = make_asset(custodian=member)

    record = asset_check_in(
        asset=asset, actor=it_manager, status=Asset.Status.IN_REPAIR, note="Cracked screen"
    )

    asset.refresh_from_db()
    assert asset.status == Asset.Status.IN_REPAIR
    assert asset.custodian is None
    record.refresh_from_db()
    assert record.checked_in_at is not None
    assert record.checked_in_by == it_manager
    assert "Cracked screen" in record.note
    assert not CustodyRecord.objects.filter(asset=asset, checked_in_at__isnull=True).exists()


def test_check_in_refuses_an_asset_that_is_not_checked_out(it_manager):
    asset = make_asset()

    with pytest.raises(ValidationError, match="not checked out"):
        asset_check_in(asset=asset, actor=it_manager)


def test_check_in_refuses_in_custody_as_the_status_to_return_to(it_manager):
    asset = make_asset(custodian=make_member())

    with pytest.raises(ValidationError):
        asset_check_in(asset=asset, actor=it_manager, status=Asset.Status.IN_CUSTODY)

    asset.refresh_from_db()
    assert asset.status == Asset.Status.IN_CUSTODY


def test_history_keeps_every_custody_record_after_repeated_check_outs(it_manager):
    asset = make_asset()
    first, second = make_member(), make_member()
    asset_check_out(asset=asset, member=first, actor=it_manager)
    asset_check_in(asset=asset, actor=it_manager)
    asset_check_out(asset=asset, member=second, actor=it_manager)

    records = list(CustodyRecord.objects.filter(asset=asset).order_by("checked_out_at", "id"))
    assert [r.member for r in records] == [first, second]
    assert records[0].checked_in_at is not None
    assert records[1].checked_in_at is None


def test_asset_create_refuses_in_custody_status(it_manager):
    with pytest.raises(ValidationError) as excinfo:
        asset_create(actor=it_manager, asset_tag="AT-NEW", name="Laptop", status="in_custody")

    assert "status" in excinfo.value.message_dict
    assert not Asset.objects.filter(asset_tag="AT-NEW").exists()


def test_asset_update_refuses_a_status_change_while_in_custody(it_manager):
    asset = make_asset(custodian=make_member())

    with pytest.raises(ValidationError) as excinfo:
        asset_update(asset=asset, actor=it_manager, status=Asset.Status.RETIRED)

    assert "Check the asset in" in excinfo.value.message_dict["status"][0]
    asset.refresh_from_db()
    assert asset.status == Asset.Status.IN_CUSTODY
