"""The demo data commands: seed_demo builds consistent data, demo_user a working sign-in."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, F, Q
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from assets.models import Asset, CustodyRecord
from assetsonar import roles
from licenses.models import Entitlement, License
from members.models import Member

pytestmark = pytest.mark.django_db

DEPARTMENTS = {
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "People",
    "IT",
    "Support",
    "Design",
    "Legal",
    "Operations",
}
LOCATIONS = {"Berlin", "London", "New York", "San Francisco", "Singapore", "Remote"}


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def snapshot() -> list:
    return [
        list(Member.objects.order_by("employee_id").values_list("full_name", "email", "status")),
        list(Asset.objects.order_by("asset_tag").values_list("name", "custodian__email")),
        list(License.objects.order_by("name").values_list("name", "seats")),
        Entitlement.objects.count(),
    ]


def test_seed_demo_if_empty_seeds_once():
    first = seed("--if-empty")
    before = snapshot()

    second = seed("--if-empty")

    assert "Seeded 300 members" in first
    assert "nothing seeded" in second
    assert snapshot() == before


def test_seed_demo_refuses_a_database_that_has_members():
    seed("--members", "40")
    with pytest.raises(CommandError, match="already has members"):
        seed()


def test_seed_demo_builds_a_realistic_company():
    seed()

    assert Member.objects.count() == 300
    assert set(Member.objects.values_list("department", flat=True)) == DEPARTMENTS
    assert set(Member.objects.values_list("location", flat=True)) == LOCATIONS
    assert Member.objects.filter(manager__isnull=False).count() == 300 - len(DEPARTMENTS)
    assert (
        not Member.objects.exclude(manager=None)
        .exclude(manager__department=F("department"))
        .exists()
    )
    assert Member.objects.values("email").distinct().count() == 300
    assert 380 <= Asset.objects.count() <= 420
    assert Asset.objects.filter(status=Asset.Status.IN_CUSTODY).count() > 0.8 * 400
    assert {"MacBook Pro", "Dell Latitude", "ThinkPad", "iPhone 16", "iPad Air", "Pixel"} <= {
        word
        for name in Asset.objects.values_list("name", flat=True).distinct()
        for word in ["MacBook Pro", "Dell Latitude", "ThinkPad", "iPhone 16", "iPad Air", "Pixel"]
        if word in name
    }
    assert 20 <= License.objects.count() <= 30
    assert {kind for kind, _ in License.Kind.choices} == set(
        License.objects.values_list("kind", flat=True)
    )
    soon = timezone.localdate() + timedelta(days=30)
    assert License.objects.filter(expires_on__lte=soon).exists()


def test_seeded_data_keeps_every_rule_the_services_enforce():
    seed("--members", "200", "--seed", "3")

    open_records = Count("custody_records", filter=Q(custody_records__checked_in_at__isnull=True))
    in_custody = Asset.objects.filter(status=Asset.Status.IN_CUSTODY).annotate(n=open_records)
    assert in_custody.exists()
    assert not in_custody.exclude(n=1).exists()
    assert (
        not Asset.objects.exclude(status=Asset.Status.IN_CUSTODY)
        .annotate(n=open_records)
        .filter(n__gt=0)
    )
    open_custody = CustodyRecord.objects.filter(checked_in_at__isnull=True)
    assert not open_custody.exclude(member=F("asset__custodian")).exists()
    assert not CustodyRecord.objects.filter(checked_in_at__lt=F("checked_out_at")).exists()

    live = Count("entitlements", filter=Q(entitlements__revoked_at__isnull=True))
    assert not License.objects.annotate(used=live).filter(used__gt=F("seats")).exists()
    assert License.objects.annotate(used=live).filter(used=F("seats"), seats__gt=0).exists()
    device = Entitlement.objects.filter(license__kind=License.Kind.DEVICE)
    assert device.exists()
    assert not device.exclude(member=None).exists()
    assert not Entitlement.objects.exclude(license__kind=License.Kind.DEVICE).filter(member=None)
    user_machine = Entitlement.objects.filter(member__isnull=False, asset__isnull=False)
    assert user_machine.exists()
    assert not user_machine.exclude(asset__custodian=F("member")).exists()
    assert not Entitlement.objects.live().filter(
        asset__status__in=[Asset.Status.RETIRED, Asset.Status.LOST]
    )
    assert Entitlement.objects.filter(revoked_at__isnull=False).exclude(revoked_reason="").exists()

    deactivated = Member.objects.deactivated()
    assert deactivated.exists()
    assert not deactivated.filter(Q(deactivated_at=None) | Q(deactivation_reason="")).exists()
    assert deactivated.filter(assets_in_custody__isnull=False).exists()  # a few still hold devices
    assert 2.5 <= Entitlement.objects.count() / Member.objects.count() <= 4.5
    assert Asset.objects.count() == 240


def test_seed_is_deterministic_and_reset_replaces_everything():
    seed("--members", "60", "--seed", "5")
    first = snapshot()

    seed("--members", "60", "--seed", "5", "--reset")
    assert snapshot() == first
    assert Member.objects.count() == 60

    seed("--members", "60", "--seed", "6", "--reset")
    assert snapshot() != first


# --- demo_user ---------------------------------------------------------------------------------


def demo_user() -> str:
    out = StringIO()
    call_command("demo_user", stdout=out)
    match = re.fullmatch(
        r"Sign in at http://\S+/accounts/login/ as admin / (\S+)\n", out.getvalue()
    )
    assert match, out.getvalue()
    return match.group(1)


def signs_in(password: str) -> bool:
    response = Client().post(reverse("login"), {"username": "admin", "password": password})
    return response.status_code == 302


def test_demo_user_prints_a_password_that_signs_in_and_changes_every_run(django_user_model):
    first = demo_user()
    assert signs_in(first)

    second = demo_user()

    assert second != first
    assert signs_in(second)
    assert not signs_in(first)
    admin = django_user_model.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert set(admin.groups.values_list("name", flat=True)) == {
        roles.IT_MANAGER,
        roles.MDM_OPERATOR,
    }
    assert first not in admin.password and second not in admin.password
