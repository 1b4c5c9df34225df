"""Marking a locked device as unlocked: the one way a device's lock stops being in force, so
that its next offboarding sends a new lock (issue 8: one lock per device until it is unlocked)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse

from assets.models import Asset, MDMConnection
from assets.services import asset_mark_unlocked
from assetsonar.models import AuditEvent
from conftest import make_asset

pytestmark = pytest.mark.django_db


@pytest.fixture
def locked_asset():
    connection = MDMConnection.objects.create(
        name="Jamf HQ", provider=MDMConnection.Provider.SIMULATOR
    )
    asset = make_asset(asset_tag="AT-UNL-1", mdm_connection=connection, mdm_device_id="dev-1")
    Asset.objects.filter(pk=asset.pk).update(lock_state=Asset.LockState.LOCKED)
    return Asset.objects.select_related("mdm_connection").get(pk=asset.pk)


def test_marking_unlocked_clears_the_lock_and_audits_how(locked_asset, mdm_operator):
    asset_mark_unlocked(
        asset=locked_asset, note="Returned; unlocked at the desk", actor=mdm_operator
    )

    locked_asset.refresh_from_db()
    assert (locked_asset.lock_state, locked_asset.locked_at) == (Asset.LockState.UNLOCKED, None)
    event = AuditEvent.objects.get(action=AuditEvent.Action.MARKED_UNLOCKED)
    assert event.actor == mdm_operator
    assert event.message == "Returned; unlocked at the desk"
    assert event.changes == {"lock_state": ["Locked", "Not locked"]}


@pytest.mark.parametrize(
    ("lock_state", "note", "message"),
    [
        (Asset.LockState.LOCKED, "  ", "Say how the device was unlocked"),
        (Asset.LockState.UNLOCKED, "Unlocked", "AT-UNL-1 is not locked."),
    ],
)
def test_marking_unlocked_refuses_with_the_reason_and_changes_nothing(
    locked_asset, mdm_operator, lock_state, note, message
):
    Asset.objects.filter(pk=locked_asset.pk).update(lock_state=lock_state)

    with pytest.raises(ValidationError, match=message):
        asset_mark_unlocked(asset=locked_asset, note=note, actor=mdm_operator)

    assert Asset.objects.get(pk=locked_asset.pk).lock_state == lock_state
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.MARKED_UNLOCKED).exists()


def test_the_page_marks_it_and_goes_back_to_the_asset(client, locked_asset, mdm_operator):
    client.force_login(mdm_operator)
    url = reverse("assets:mark_unlocked", args=[locked_asset.pk])
    assert "How was it unlocked?" in client.get(url).content.decode()

    blank = client.post(url, {"unlocked-note": ""})
    assert "Say how the device was unlocked" in blank.content.decode()
    assert Asset.objects.get(pk=locked_asset.pk).lock_state == Asset.LockState.LOCKED

    response = client.post(url, {"unlocked-note": "Unlocked with the PIN"})
    assert response.status_code == 302 and response.url == locked_asset.get_absolute_url()
    assert Asset.objects.get(pk=locked_asset.pk).lock_state == Asset.LockState.UNLOCKED


def test_without_the_mdm_permission_it_is_refused(client, locked_asset, it_manager):
    client.force_login(it_manager)
    url = reverse("assets:mark_unlocked", args=[locked_asset.pk])

    assert client.post(url, {"unlocked-note": "Unlocked"}).status_code == 403
    assert Asset.objects.get(pk=locked_asset.pk).lock_state == Asset.LockState.LOCKED


def test_the_mdm_card_offers_it_only_for_a_locked_device_to_mdm_operators(
    locked_asset, it_manager, mdm_operator
):
    def panel(asset, user):
        request = RequestFactory().get("/")
        request.user = user
        return render_to_string("assets/_mdm_panel.html", {"asset": asset}, request=request)

    assert "Mark as unlocked" in panel(locked_asset, mdm_operator)
    assert "Mark as unlocked" not in panel(locked_asset, it_manager)
    locked_asset.lock_state = Asset.LockState.UNLOCKED
    assert "Mark as unlocked" not in panel(locked_asset, mdm_operator)
