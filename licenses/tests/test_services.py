"""Entitlement rules of license_entitle / license_unentitle, and the seat rule of license_update."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from assets.models import Asset
from assetsonar.models import AuditEvent
from conftest import make_asset, make_entitlement, make_license, make_member
from licenses.models import Entitlement, License
from licenses.services import license_entitle, license_unentitle, license_update
from members.services import member_deactivate

pytestmark = pytest.mark.django_db


def test_entitle_gives_a_user_license_to_a_member(it_manager):
    lic = make_license(kind=License.Kind.USER)
    member = make_member()

    entitlement = license_entitle(license=lic, member=member, actor=it_manager)

    assert entitlement.member == member
    assert entitlement.asset is None
    assert entitlement.assigned_by == it_manager
    assert entitlement.is_live
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.ENTITLED, object_id=str(lic.pk)
    ).exists()


def test_entitle_gives_a_user_license_to_a_member_on_a_device(it_manager):
    lic = make_license(kind=License.Kind.CLOUD)

    entitlement = license_entitle(
        license=lic, member=make_member(), asset=make_asset(), actor=it_manager
    )

    assert entitlement.target == Entitlement.Target.USER_MACHINE


def test_entitle_refuses_a_user_license_without_a_member(it_manager):
    lic = make_license(kind=License.Kind.USER)

    with pytest.raises(ValidationError) as excinfo:
        license_entitle(license=lic, asset=make_asset(), actor=it_manager)

    assert "user-based" in excinfo.value.message_dict["member"][0]
    assert not Entitlement.objects.exists()


def test_entitle_refuses_a_device_license_without_a_device_or_with_a_member(it_manager):
    lic = make_license(kind=License.Kind.DEVICE)

    with pytest.raises(ValidationError) as no_device:
        license_entitle(license=lic, member=make_member(), actor=it_manager)
    with pytest.raises(ValidationError) as with_member:
        license_entitle(license=lic, member=make_member(), asset=make_asset(), actor=it_manager)

    assert "choose a device" in no_device.value.message_dict["asset"][0]
    assert "device only" in with_member.value.message_dict["member"][0]
    assert not Entitlement.objects.exists()


def test_entitle_refuses_the_seat_after_the_last_with_a_clear_message(it_manager):
    lic = make_license(name="Figma", seats=2)
    license_entitle(license=lic, member=make_member(), actor=it_manager)
    license_entitle(license=lic, member=make_member(), actor=it_manager)

    with pytest.raises(ValidationError) as excinfo:
        license_entitle(license=lic, member=make_member(), actor=it_manager)

    assert excinfo.value.messages == [
        "All 2 seats of Figma are in use. Revoke an entitlement or add seats first."
    ]
    assert Entitlement.objects.filter(license=lic).count() == 2


def test_a_revoked_entitlement_frees_its_seat(it_manager):
    lic = make_license(seats=1)
    entitlement = license_entitle(license=lic, member=make_member(), actor=it_manager)
    license_unentitle(entitlement=entitlement, actor=it_manager, reason="Left")

    license_entitle(license=lic, member=make_member(), actor=it_manager)

    assert lic.entitlements.live().count() == 1


def test_entitle_refuses_an_expired_license(it_manager):
    lic = make_license(expires_on=timezone.localdate() - timedelta(days=1))

    with pytest.raises(ValidationError, match="expired"):
        license_entitle(license=lic, member=make_member(), actor=it_manager)


def test_entitle_refuses_a_deactivated_member(it_manager):
    member, _ = member_deactivate(member=make_member(), actor=it_manager, reason="Left")

    with pytest.raises(ValidationError) as excinfo:
        license_entitle(license=make_license(), member=member, actor=it_manager)

    assert "deactivated" in excinfo.value.message_dict["member"][0]


def test_entitle_refuses_a_retired_device(it_manager):
    asset = make_asset(status=Asset.Status.RETIRED)

    with pytest.raises(ValidationError) as excinfo:
        license_entitle(
            license=make_license(kind=License.Kind.DEVICE), asset=asset, actor=it_manager
        )

    assert "retired" in excinfo.value.message_dict["asset"][0]


def test_entitle_refuses_the_same_member_twice(it_manager):
    lic = make_license()
    member = make_member()
    license_entitle(license=lic, member=member, actor=it_manager)

    with pytest.raises(ValidationError, match="already holds"):
        license_entitle(license=lic, member=member, actor=it_manager)


def test_unentitle_twice_makes_one_change_and_keeps_the_history(it_manager):
    lic = make_license()
    entitlement = license_entitle(license=lic, member=make_member(), actor=it_manager)

    first, changed_first = license_unentitle(
        entitlement=entitlement, actor=it_manager, reason="Left"
    )
    second, changed_second = license_unentitle(
        entitlement=entitlement, actor=it_manager, reason="Again"
    )

    assert (changed_first, changed_second) == (True, False)
    assert second.revoked_reason == "Left"
    assert second.revoked_at == first.revoked_at
    assert Entitlement.objects.filter(pk=entitlement.pk).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVOKED).count() == 1


def test_license_update_refuses_seats_below_those_in_use(it_manager):
    lic = make_license(seats=5)
    for _ in range(3):
        make_entitlement(license=lic, member=make_member())

    with pytest.raises(ValidationError) as excinfo:
        license_update(license=lic, actor=it_manager, seats=2)

    assert "3 seats are in use" in excinfo.value.message_dict["seats"][0]
    lic.refresh_from_db()
    assert lic.seats == 5
