"""The denormalised counts (Member.assets_count and live_entitlements_count, License.seats_used,
the dashboard's Tally rows) equal the truth after every service that changes them, a stale
instance cannot overwrite them, and `manage.py recount` finds and fixes drift."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from assets.models import Asset
from assets.services import asset_check_in, asset_check_out, asset_create, asset_update
from assetsonar.models import Tally
from assetsonar.tallies import tallies_recount
from automations.tests.engine_factories import make_engine_automation, use_sync_q
from licenses.models import License
from licenses.services import license_entitle, license_unentitle
from members.models import Member
from members.services import (
    member_create,
    member_deactivate,
    member_delete,
    member_reactivate,
)

pytestmark = pytest.mark.django_db


def assert_true_counts() -> None:
    """Every count equals a fresh count of the rows (recount in check mode writes nothing)."""
    assert tallies_recount(fix=False) == {
        "members.Member.assets_count": 0,
        "members.Member.live_entitlements_count": 0,
        "licenses.License.seats_used": 0,
        "assetsonar.Tally": 0,
    }


def counts(member: Member) -> tuple[int, int]:
    member.refresh_from_db()
    return member.assets_count, member.live_entitlements_count


def tally(key: str) -> int:
    row = Tally.objects.filter(key=key).first()
    return row.value if row else 0


def new_member(name: str) -> Member:
    return member_create(
        actor=None, full_name=name, email=f"{name.lower()}@example.com", department="IT"
    )


def new_asset(tag: str, **fields) -> Asset:
    return asset_create(actor=None, asset_tag=tag, name="MacBook", **fields)


def test_member_and_asset_services_keep_the_counts(it_manager):
    ada = new_member("Ada")
    assert (tally("members.active"), tally("members.deactivated")) == (1, 0)
    laptop, phone = new_asset("A-1"), new_asset("A-2")
    broken = new_asset("A-3", status=Asset.Status.IN_REPAIR)
    assert tally("assets.available") == 2 and tally("assets.in_repair") == 1
    assert_true_counts()

    asset_check_out(asset=laptop, member=ada, actor=it_manager)
    asset_check_out(asset=phone, member=ada, actor=it_manager)
    assert counts(ada) == (2, 0)
    assert (tally("assets.in_custody"), tally("assets.available")) == (2, 0)
    assert_true_counts()

    asset_check_in(asset=phone, actor=it_manager, status=Asset.Status.LOST)
    assert counts(ada) == (1, 0)
    assert tally("assets.lost") == 1
    assert_true_counts()

    asset_update(asset=broken, actor=it_manager, status=Asset.Status.AVAILABLE)
    assert (tally("assets.in_repair"), tally("assets.available")) == (0, 1)
    assert_true_counts()

    member_deactivate(member=ada, actor=it_manager, reason="Left")
    assert (tally("members.active"), tally("members.deactivated")) == (0, 1)
    assert_true_counts()
    member_reactivate(member=ada, actor=it_manager)
    assert_true_counts()

    spare = new_member("Spare")
    member_delete(member=spare, actor=it_manager)
    assert tally("members.active") == 1
    assert_true_counts()


def test_license_services_keep_the_counts(it_manager):
    ada = new_member("Ada")
    laptop = new_asset("A-1")
    asset_check_out(asset=laptop, member=ada, actor=it_manager)
    user = License.objects.create(name="Figma", kind=License.Kind.USER, seats=3)
    device = License.objects.create(name="Agent", kind=License.Kind.DEVICE, seats=3)

    seat = license_entitle(license=user, member=ada, actor=it_manager)
    on_device = license_entitle(license=user, member=ada, asset=laptop, actor=it_manager)
    license_entitle(license=device, asset=laptop, actor=it_manager)
    assert counts(ada) == (1, 2)
    assert License.objects.get(pk=user.pk).seats_used == 2
    assert License.objects.get(pk=device.pk).seats_used == 1
    assert_true_counts()

    license_unentitle(entitlement=seat, actor=it_manager)
    license_unentitle(entitlement=seat, actor=it_manager)  # twice: counted once
    assert counts(ada) == (1, 1)
    assert License.objects.get(pk=user.pk).seats_used == 1
    assert_true_counts()
    license_unentitle(entitlement=on_device, actor=it_manager)
    assert_true_counts()


def test_the_seat_limit_reads_the_kept_count(it_manager):
    user = License.objects.create(name="Figma", kind=License.Kind.USER, seats=1)
    license_entitle(license=user, member=new_member("Ada"), actor=it_manager)
    with pytest.raises(Exception, match="All 1 seats of Figma are in use"):
        license_entitle(license=user, member=new_member("Bob"), actor=it_manager)
    assert_true_counts()


def test_the_engine_revocation_keeps_the_counts(
    it_manager, monkeypatch, settings, django_capture_on_commit_callbacks
):
    use_sync_q(monkeypatch, settings)
    make_engine_automation(user_based=True, user_machine=True, device_based=True)
    ada, bob = new_member("Ada"), new_member("Bob")
    laptop = new_asset("A-1")
    asset_check_out(asset=laptop, member=ada, actor=it_manager)
    user = License.objects.create(name="Figma", kind=License.Kind.USER, seats=5)
    cloud = License.objects.create(name="Slack", kind=License.Kind.CLOUD, seats=5)
    device = License.objects.create(name="Agent", kind=License.Kind.DEVICE, seats=5)
    for lic in (user, cloud):
        license_entitle(license=lic, member=ada, actor=it_manager)
        license_entitle(license=lic, member=bob, actor=it_manager)
    license_entitle(license=user, member=ada, asset=laptop, actor=it_manager)
    license_entitle(license=device, asset=laptop, actor=it_manager)
    assert counts(ada) == (1, 3)

    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=ada, actor=it_manager, reason="Left")

    assert counts(ada) == (1, 0)  # licenses revoked; the laptop is still to be returned
    assert counts(bob) == (0, 2)
    assert [License.objects.get(pk=lic.pk).seats_used for lic in (user, cloud, device)] == [
        1,
        1,
        0,
    ]
    assert_true_counts()


def test_a_stale_instance_does_not_overwrite_the_counts(it_manager):
    ada = new_member("Ada")
    stale = Member.objects.get(pk=ada.pk)
    stale_license = License.objects.create(name="Figma", kind=License.Kind.USER, seats=3)
    asset_check_out(asset=new_asset("A-1"), member=ada, actor=it_manager)
    license_entitle(license=stale_license, member=ada, actor=it_manager)

    stale.title = "Engineer"
    stale.save()
    stale_license.notes = "Renewed"
    stale_license.save()

    assert counts(ada) == (1, 1)
    assert License.objects.get(pk=stale_license.pk).seats_used == 1
    assert_true_counts()


def test_recount_reports_and_fixes_drift(it_manager, capsys):
    ada = new_member("Ada")
    asset_check_out(asset=new_asset("A-1"), member=ada, actor=it_manager)
    lic = License.objects.create(name="Figma", kind=License.Kind.USER, seats=3)
    license_entitle(license=lic, member=ada, actor=it_manager)
    # Drift as a bulk write outside the services would leave it.
    Member.objects.update(assets_count=7, live_entitlements_count=0)
    License.objects.update(seats_used=0)
    Tally.objects.filter(key="members.active").update(value=99)

    with pytest.raises(CommandError, match="Some counts are wrong"):
        call_command("recount", "--check")
    out = capsys.readouterr().out
    assert "members.Member.assets_count: 1 row wrong" in out
    assert "licenses.License.seats_used: 1 row wrong" in out

    call_command("recount")
    assert counts(ada) == (1, 1)
    assert License.objects.get(pk=lic.pk).seats_used == 1
    assert tally("members.active") == 1
    assert_true_counts()
    call_command("recount", "--check")  # nothing wrong any more: no error
