"""Roles follow the permissions: every migrate re-syncs them (a post_migrate step), so a model a
later migration adds (the authenticator) reaches the roles, and Support Staff can use the
authenticator admin that automations/admin_otp.py describes."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.urls import reverse

from assetsonar import roles
from automations.models import AuthenticatorDevice
from automations.otp import pending_device
from conftest import make_user

pytestmark = pytest.mark.django_db


def codenames(group_name: str) -> set[str]:
    return set(Group.objects.get(name=group_name).permissions.values_list("codename", flat=True))


def test_support_staff_has_the_authenticator_admin_permissions_after_migrating():
    support = codenames(roles.SUPPORT_STAFF)
    assert {"view_authenticatordevice", "delete_authenticatordevice"} <= support
    assert "add_authenticatordevice" not in support
    assert "change_authenticatordevice" not in support
    # Still no other write and no unlock PIN.
    assert not {c for c in support if c.split("_")[0] in {"add", "change", "delete"}} - {
        "delete_authenticatordevice"
    }
    assert "view_unlock_pin" not in support


def test_a_migrate_gives_the_roles_permissions_they_lack():
    """As after a migration that added a model: the group is missing its permissions."""
    group = Group.objects.get(name=roles.SUPPORT_STAFF)
    group.permissions.remove(*Permission.objects.filter(codename__endswith="authenticatordevice"))
    assert "view_authenticatordevice" not in codenames(roles.SUPPORT_STAFF)

    call_command("migrate", verbosity=0)

    assert {"view_authenticatordevice", "delete_authenticatordevice"} <= codenames(
        roles.SUPPORT_STAFF
    )


def test_support_staff_can_list_and_delete_a_lost_authenticator(client, support_staff):
    owner = make_user("lost-phone", roles.IT_MANAGER)
    pending_device(owner)
    device = AuthenticatorDevice.objects.get(user=owner)
    client.force_login(support_staff)

    listing = client.get(reverse("admin:automations_authenticatordevice_changelist"))
    assert listing.status_code == 200
    assert "lost-phone" in listing.content.decode()

    delete_url = reverse("admin:automations_authenticatordevice_delete", args=[device.pk])
    response = client.post(delete_url, {"post": "yes"})
    assert response.status_code == 302
    assert not AuthenticatorDevice.objects.filter(pk=device.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_the_roles_come_back_after_a_flush_and_the_app_registry_is_left_intact():
    from django.apps import apps

    call_command("flush", verbosity=0, interactive=False)

    assert {"view_authenticatordevice", "delete_authenticatordevice"} <= codenames(
        roles.SUPPORT_STAFF
    )
    assert all(
        config.models_module is not None
        for config in apps.get_app_configs()
        if config.label in ("assetsonar", "members", "automations", "auth")
    )
