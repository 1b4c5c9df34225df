"""Shared fixtures and factories for the whole suite (real database, no mocks)."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from assetsonar import roles

_seq = itertools.count(1)


def make_member(**fields):
    from members.models import Member

    n = next(_seq)
    defaults = {
        "full_name": f"Member {n}",
        "email": f"member{n}@example.com",
        "employee_id": f"E{n:05d}",
        "department": "Engineering",
        "location": "Berlin",
        "title": "Engineer",
    }
    defaults.update(fields)
    member = Member.objects.create(**defaults)
    _tally("members", member.status)
    return member


def _tally(kind: str, status: str) -> None:
    """Rows made straight in the table count in the dashboard's tallies as the services' do."""
    from assetsonar.tallies import tally_status_change

    tally_status_change(kind, None, status)


def make_asset(**fields):
    from assets.models import Asset

    n = next(_seq)
    defaults = {
        "asset_tag": f"AT-{n:05d}",
        "name": f"MacBook Pro {n}",
        "category": Asset.Category.LAPTOP,
        "platform": Asset.Platform.MACOS,
        "manufacturer": "Apple",
        "serial_number": f"SN{n:08d}",
    }
    custodian = fields.pop("custodian", None)
    defaults.update(fields)
    asset = Asset.objects.create(**defaults)
    _tally("assets", asset.status)
    if custodian is not None:
        from assets.services import asset_check_out

        asset_check_out(asset=asset, member=custodian, actor=None)
        asset.refresh_from_db()
    return asset


def make_license(**fields):
    from licenses.models import License

    n = next(_seq)
    defaults = {"name": f"Software {n}", "vendor": "Vendor", "kind": License.Kind.USER, "seats": 10}
    defaults.update(fields)
    return License.objects.create(**defaults)


def make_entitlement(*, license, member=None, asset=None):
    from assetsonar.tallies import tally_add
    from licenses.models import Entitlement, License
    from members.models import Member

    # Straight to the table (tests give seats the services would refuse), so the counts the
    # services keep are kept here too.
    entitlement = Entitlement.objects.create(
        license=license, member=member, asset=asset, assigned_at=timezone.now()
    )
    tally_add(License, "seats_used", {license.pk: 1})
    if member is not None:
        tally_add(Member, "live_entitlements_count", {member.pk: 1})
    return entitlement


def make_user(username: str, *groups: str, **fields):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(
        username=username, password="pw-" + username + "-Secret1", **fields
    )
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


@pytest.fixture(scope="session", autouse=True)
def _close_mdm_slot_connections(django_db_setup, django_db_blocker):
    """The MDM throttle keeps a database connection of its own (assets/mdm/throttle.py): close
    it before the test database is dropped."""
    yield
    from assets.mdm import throttle

    throttle.close()


@pytest.fixture
def it_manager(db):
    return make_user("manager", roles.IT_MANAGER, first_name="Ida", last_name="Manager")


@pytest.fixture
def mdm_operator(db):
    return make_user("operator", roles.IT_MANAGER, roles.MDM_OPERATOR)


@pytest.fixture
def support_staff(db):
    return make_user("support", roles.SUPPORT_STAFF, is_staff=True)


@pytest.fixture
def viewer(db):
    return make_user("viewer", roles.VIEWER)


@pytest.fixture
def manager_client(client, it_manager):
    client.force_login(it_manager)
    return client


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture(autouse=True)
def _close_kept_connections():
    """Outbound sessions kept for reuse (assetsonar/net.py) do not outlive the test that opened
    them: the next test's receiver is another server."""
    yield
    from assetsonar import net

    net.close_idle()


@pytest.fixture(autouse=True)
def _clear_cache():
    """Nothing cached by one test (the navigation's approval counts, keyed by user id, which the
    next test's users reuse) is read by the next."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def application_sources():
    """The project's own Python files, without tests, migrations and installed packages: what
    the tests that grep the code for a forbidden call read."""
    from pathlib import Path

    from django.conf import settings

    root = Path(settings.BASE_DIR)
    skipped = {".venv", "node_modules", "migrations", "tests"}
    return [
        path
        for path in sorted(root.rglob("*.py"))
        if not set(path.relative_to(root).parts) & skipped
    ]
