"""The asset MDM card (lock notice, command history) and viewing an unlock PIN."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from assets.models import Asset, MDMCommand, MDMConnection
from assetsonar.models import AuditEvent
from automations.models import ActionLog, Automation, Event, Execution
from conftest import make_asset, make_member

pytestmark = pytest.mark.django_db


def make_connection(**fields) -> MDMConnection:
    defaults = {"name": "Jamf HQ", "provider": MDMConnection.Provider.SIMULATOR}
    defaults.update(fields)
    return MDMConnection.objects.create(**defaults)


def make_lock(asset: Asset, *, automation_name="Offboard leavers", pin="482913", **fields):
    """A lock command written as the engine writes it: execution → action log → command."""
    member = asset.custodian or make_member()
    automation = Automation.objects.get_or_create(name=automation_name)[0]
    event = Event.objects.create(
        kind="member.deactivated", member=member, occurred_at=timezone.now()
    )
    execution = Execution.objects.create(
        automation=automation, automation_name=automation_name, event=event, member=member
    )
    log = ActionLog.objects.create(
        key=f"{event.pk}:{automation.pk}:mdm:{asset.pk}",
        execution=execution,
        action_kind="mdm_lock",
        target_type=ActionLog.TargetType.ASSET,
        target_label=str(asset),
        asset=asset,
    )
    defaults = {
        "status": MDMCommand.Status.ACKNOWLEDGED,
        "vendor_command_id": "cmd-0001",
        "sent_at": timezone.now(),
    }
    defaults.update(fields)
    command = MDMCommand(asset=asset, connection=asset.mdm_connection, log=log, **defaults)
    if pin:
        command.set_pin(pin)
    command.save()
    return command


@pytest.fixture
def locked_asset():
    asset = make_asset(
        asset_tag="AT-MDM-1", mdm_connection=make_connection(), mdm_device_id="dev-1"
    )
    Asset.objects.filter(pk=asset.pk).update(lock_state=Asset.LockState.LOCKED)
    return Asset.objects.select_related("mdm_connection").get(pk=asset.pk)


def render_panel(asset: Asset, user) -> str:
    request = RequestFactory().get("/")
    request.user = user
    return render_to_string("assets/_mdm_panel.html", {"asset": asset}, request=request)


# --- The MDM card ---------------------------------------------------------------------------------


def test_panel_shows_lock_notice_with_time_automation_and_status(locked_asset, it_manager):
    command = make_lock(locked_asset)

    page = render_panel(locked_asset, it_manager)

    assert "This device was locked via MDM" in page
    assert "“Offboard leavers”" in page
    assert command.log.execution.get_absolute_url() in page
    # The badge ends the sentence with no space before its full stop ("Acknowledged .").
    assert "Acknowledged</span>." in page
    # The portal's own locale (en-us) without an Accept-Language: the US date-input format.
    assert timezone.localtime(command.sent_at).strftime("%m/%d/%Y %H:%M") in page
    assert "cmd-0001" in page


def test_panel_shows_the_failure_of_the_last_command(locked_asset, it_manager):
    Asset.objects.filter(pk=locked_asset.pk).update(lock_state=Asset.LockState.FAILED)
    locked_asset.refresh_from_db()
    make_lock(
        locked_asset,
        status=MDMCommand.Status.FAILED,
        vendor_command_id="",
        last_error="Kandji rejected the API token (HTTP 401): update the API token.",
    )

    page = render_panel(locked_asset, it_manager)

    assert "The last MDM command failed" in page
    assert "Kandji rejected the API token" in page
    assert "This device was locked via MDM" not in page


def test_panel_without_commands_says_so(it_manager):
    asset = make_asset()

    page = render_panel(asset, it_manager)

    assert "No MDM commands have been sent to this device." in page
    assert "locked via MDM" not in page


def test_pin_button_only_for_users_who_may_see_pins(locked_asset, it_manager, mdm_operator):
    command = make_lock(locked_asset)
    pin_url = reverse("automations:mdm_command_pin", args=[command.pk])

    assert pin_url not in render_panel(locked_asset, it_manager)
    operator_page = render_panel(locked_asset, mdm_operator)
    assert f'action="{pin_url}"' in operator_page
    assert f'hx-post="{pin_url}"' in operator_page
    assert "482913" not in operator_page  # the PIN itself is never in the page


@pytest.mark.parametrize("size", [1, 15])
def test_panel_costs_one_query_whatever_the_history(
    locked_asset, mdm_operator, django_assert_num_queries, size
):
    for _ in range(size):
        make_lock(locked_asset)
    mdm_operator = type(mdm_operator).objects.get(pk=mdm_operator.pk)
    mdm_operator.has_perm("assets.view_unlock_pin")  # permissions are cached per request

    with django_assert_num_queries(1):
        page = render_panel(locked_asset, mdm_operator)

    assert page.count("<tr>") == size + 1


def test_asset_page_includes_the_card(manager_client, locked_asset):
    make_lock(locked_asset)

    response = manager_client.get(reverse("assets:detail", args=[locked_asset.pk]))

    assert response.status_code == 200
    assert "This device was locked via MDM" in response.content.decode()


def test_asset_page_has_no_inline_script_or_style(manager_client, locked_asset):
    make_lock(locked_asset)

    page = manager_client.get(reverse("assets:detail", args=[locked_asset.pk])).content.decode()

    panel = page[page.index('id="mdm-panel"') :]
    assert "<script" not in panel
    assert "style=" not in panel


# --- Viewing an unlock PIN ------------------------------------------------------------------------


def test_pin_view_is_refused_without_the_permission(client, it_manager, locked_asset):
    command = make_lock(locked_asset)
    client.force_login(it_manager)

    response = client.post(reverse("automations:mdm_command_pin", args=[command.pk]))

    assert response.status_code == 403
    assert b"482913" not in response.content
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PIN_VIEWED).exists()


def test_pin_view_requires_sign_in_and_post(client, mdm_operator, locked_asset):
    url = reverse("automations:mdm_command_pin", args=[make_lock(locked_asset).pk])

    assert client.post(url).status_code == 302  # to the sign-in page
    client.force_login(mdm_operator)
    assert client.get(url).status_code == 405


def test_pin_view_shows_the_pin_once_and_records_who_saw_it(client, mdm_operator, locked_asset):
    command = make_lock(locked_asset)
    client.force_login(mdm_operator)

    response = client.post(
        reverse("automations:mdm_command_pin", args=[command.pk]),
        HTTP_HX_REQUEST="true",
        REMOTE_ADDR="10.1.2.3",
    )

    assert response.status_code == 200
    body = response.content.decode()
    assert "482913" in body
    assert "<dialog data-open-on-load" in body
    assert "<html" not in body  # a fragment for htmx
    assert "no-store" in response["Cache-Control"]
    event = AuditEvent.objects.get(action=AuditEvent.Action.PIN_VIEWED)
    assert event.actor == mdm_operator
    assert (event.object_type, event.object_id) == ("assets.asset", str(locked_asset.pk))
    # Nothing changed: the command and connection are named in the message, not as a "change".
    assert event.changes == {}
    assert "AT-MDM-1" in event.message and f"#{command.pk}" in event.message
    assert "Jamf HQ" in event.message
    assert event.ip_address == "10.1.2.3"
    assert "482913" not in str(event.changes) + event.message


def test_pin_view_without_htmx_is_a_page(client, mdm_operator, locked_asset):
    command = make_lock(locked_asset)
    client.force_login(mdm_operator)

    response = client.post(reverse("automations:mdm_command_pin", args=[command.pk]))

    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" in body and "482913" in body
    assert locked_asset.get_absolute_url() in body


def test_each_viewing_is_recorded(client, mdm_operator, locked_asset):
    url = reverse("automations:mdm_command_pin", args=[make_lock(locked_asset).pk])
    client.force_login(mdm_operator)

    client.post(url, HTTP_HX_REQUEST="true")
    client.post(url, HTTP_HX_REQUEST="true")

    assert AuditEvent.objects.filter(action=AuditEvent.Action.PIN_VIEWED).count() == 2


def test_command_without_pin_shows_why_and_records_nothing(client, mdm_operator, locked_asset):
    command = make_lock(locked_asset, pin="")
    client.force_login(mdm_operator)

    response = client.post(
        reverse("automations:mdm_command_pin", args=[command.pk]), HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    assert "has no unlock PIN" in response.content.decode()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PIN_VIEWED).exists()


def test_unknown_command_is_404(client, mdm_operator):
    client.force_login(mdm_operator)
    response = client.post(reverse("automations:mdm_command_pin", args=[999999]))
    assert response.status_code == 404


@pytest.mark.parametrize("status", [MDMCommand.Status.FAILED, MDMCommand.Status.PENDING])
def test_pin_of_a_lock_that_never_reached_the_device_is_not_offered(
    client, mdm_operator, locked_asset, status
):
    """The PIN is kept (a retry sends the same one), but the device does not have it."""
    command = make_lock(locked_asset, status=status, sent_at=None)
    client.force_login(mdm_operator)

    assert "Show unlock PIN" not in render_panel(locked_asset, mdm_operator)
    response = client.post(
        reverse("automations:mdm_command_pin", args=[command.pk]), HTTP_HX_REQUEST="true"
    )

    assert "482913" not in response.content.decode()
    assert "the lock has not reached the MDM" in response.content.decode()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PIN_VIEWED).exists()
    execution_page = client.get(command.log.execution.get_absolute_url()).content.decode()
    assert reverse("automations:mdm_command_pin", args=[command.pk]) not in execution_page
