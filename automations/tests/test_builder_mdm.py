"""The MDM lock action: available only with the portal's MDM feature switched on and the
"execute MDM commands" permission; refused through the page, through hand-crafted POSTs and in
the services."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from assetsonar.models import AuditEvent
from automations import services
from automations.models import Action, Automation
from automations.services import AutomationSpec
from automations.tests.builder_factories import (
    automation_spec,
    builder_data,
    make_automation,
    mdm_feature,
    mdm_spec,
    revoke_spec,
    totp_code,
    totp_device,
)

pytestmark = pytest.mark.django_db

FEATURE_OFF = (
    "The “MDM management commands” feature is switched off for this portal. "
    "An administrator can switch it on in Django admin › Portal settings."
)
NO_PERMISSION = (
    "It comes with the “MDM Operator” role, which an administrator grants in Django admin › Users."
)


@pytest.fixture
def operator_client(client, mdm_operator):
    client.force_login(mdm_operator)
    return client


def spec(**kwargs) -> AutomationSpec:  # the seed's revoke and lock by default
    fields = {
        "name": "Lock laptops",
        "trigger_module": "members",
        "trigger_event": "member.deactivated",
        "revoke": revoke_spec(user_based=True),
        "mdm": mdm_spec(message="Return to IT", phone="+1 555 0100"),
    }
    fields.update(kwargs)
    return automation_spec(**fields)


# --- The page says what is missing ---------------------------------------------------------------


def test_without_feature_and_permission_the_page_names_both_and_who_grants_them(manager_client):
    text = manager_client.get(reverse("automations:create")).text

    assert "This action is not available to you." in text
    assert FEATURE_OFF in text
    assert NO_PERMISSION in text
    assert 'name="mdm-message"' not in text


def test_with_the_feature_on_but_no_permission_only_the_permission_is_named(manager_client):
    mdm_feature()

    text = manager_client.get(reverse("automations:create")).text

    assert NO_PERMISSION in text and FEATURE_OFF not in text


def test_an_mdm_operator_is_told_when_the_feature_is_off(operator_client):
    text = operator_client.get(reverse("automations:create")).text

    assert FEATURE_OFF in text and NO_PERMISSION not in text
    assert 'name="mdm-message"' not in text


def test_with_feature_and_permission_the_mdm_action_can_be_filled_in(operator_client):
    mdm_feature()

    text = operator_client.get(reverse("automations:create")).text

    assert "This action is not available to you." not in text
    assert "devices in custody that are enrolled in an MDM" in text
    # Added without JavaScript (the menu's button posts the form): its card can be filled in.
    data = builder_data(revoke=None, action_op="add:mdm_lock")
    text = operator_client.post(reverse("automations:create"), data).text
    assert 'name="actions-0-message"' in text and 'name="actions-0-phone"' in text
    assert not Automation.objects.exists()


# --- Crafted POSTs -------------------------------------------------------------------------------


def test_crafted_post_adding_mdm_without_permission_is_refused_with_a_dialog(manager_client):
    mdm_feature()

    response = manager_client.post(
        reverse("automations:create"), builder_data(mdm={"message": "Locked"})
    )

    assert response.status_code == 403
    assert 'id="mdm-refused-dialog"' in response.text and "data-open-on-load" in response.text
    assert "was <strong>not saved</strong>" in response.text
    assert NO_PERMISSION in response.text
    assert not Automation.objects.exists()
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.PERMISSION_DENIED, message__contains="MDM lock action refused"
    ).exists()


def test_crafted_post_adding_mdm_while_the_feature_is_off_is_refused(operator_client, mdm_operator):
    totp_device(mdm_operator)

    response = operator_client.post(
        reverse("automations:create"), builder_data(mdm={"message": "Locked"})
    )

    assert response.status_code == 403
    assert FEATURE_OFF in response.text
    assert not Automation.objects.exists()


def test_refusal_comes_before_field_validation(manager_client):
    response = manager_client.post(
        reverse("automations:create"), builder_data(name="", mdm={"message": "", "phone": "x"})
    )

    assert response.status_code == 403
    assert not Automation.objects.exists()


def test_without_permission_an_existing_mdm_action_is_kept_as_it_is(manager_client):
    mdm_feature()
    automation = make_automation(
        name="Lock", mdm={"message": "Return to IT", "phone": "+1 555 0100"}
    )
    edit = reverse("automations:edit", args=[automation.pk])

    page = manager_client.get(edit).text
    assert "only a user who may use it can change or remove it" in page
    assert 'type="hidden" name="actions-1-message" value="Return to IT"' in page

    response = manager_client.post(
        edit,
        builder_data(
            automation=automation,
            name="Lock (renamed)",
            initial_conditions=1,
            mdm={"message": "Return to IT", "phone": "+1 555 0100"},
        ),
    )

    assert response.status_code == 302
    automation.refresh_from_db()
    assert automation.name == "Lock (renamed)"
    assert automation.actions.get(kind="mdm_lock").config["message"] == "Return to IT"


@pytest.mark.parametrize(
    "mdm", [{"message": "Changed", "phone": "+1 555 0100"}, None], ids=["changed", "removed"]
)
def test_without_permission_changing_or_removing_the_mdm_action_is_refused(manager_client, mdm):
    mdm_feature()
    automation = make_automation(
        name="Lock", mdm={"message": "Return to IT", "phone": "+1 555 0100"}
    )

    response = manager_client.post(
        reverse("automations:edit", args=[automation.pk]),
        builder_data(automation=automation, name="Lock", initial_conditions=1, mdm=mdm),
    )

    assert response.status_code == 403
    assert automation.actions.get(kind="mdm_lock").config["message"] == "Return to IT"
    assert not automation.changes.exists()


def test_switching_on_an_automation_that_locks_devices_needs_mdm_access(manager_client):
    automation = make_automation(name="Lock", enabled=False, mdm={})
    url = reverse("automations:toggle", args=[automation.pk])

    plain = manager_client.post(url, {"enabled": "1"})
    htmx = manager_client.post(url, {"enabled": "1"}, headers={"HX-Request": "true"})

    automation.refresh_from_db()
    assert not automation.enabled
    assert plain.status_code == 403
    assert "switching it on needs the MDM feature and permission" in plain.text
    # htmx does not show a 403: it is sent to the page that says why.
    assert htmx.status_code == 403
    assert htmx["HX-Redirect"].startswith(reverse("automations:switch_on", args=[automation.pk]))
    assert manager_client.get(htmx["HX-Redirect"]).status_code == 403
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PERMISSION_DENIED).count() == 3


def test_switching_off_is_always_allowed(manager_client):
    automation = make_automation(name="Lock", mdm={})

    manager_client.post(reverse("automations:toggle", args=[automation.pk]), {"enabled": "0"})

    automation.refresh_from_db()
    assert not automation.enabled


def test_duplicating_without_mdm_access_leaves_the_lock_out_and_says_so(manager_client):
    source = make_automation(name="Lock", mdm={})

    response = manager_client.post(reverse("automations:duplicate", args=[source.pk]), follow=True)

    copy = Automation.objects.get(name="Copy of Lock")
    assert not copy.actions.filter(kind="mdm_lock").exists()
    assert "The MDM lock action was not copied" in response.text


def test_duplicating_with_mdm_access_keeps_the_lock_after_a_one_time_password(
    operator_client, mdm_operator
):
    mdm_feature()
    device = totp_device(mdm_operator)
    source = make_automation(name="Lock", mdm={"message": "Return"})
    url = reverse("automations:duplicate", args=[source.pk])

    asked = operator_client.post(url)
    assert asked.status_code == 403
    assert 'name="otp_token"' in asked.text
    assert not Automation.objects.filter(name="Copy of Lock").exists()

    operator_client.post(url, {"otp_token": totp_code(device)})

    copy = Automation.objects.get(name="Copy of Lock")
    assert copy.actions.get(kind="mdm_lock").config["message"] == "Return"
    assert not copy.enabled
    assert copy.changes.get().otp_verified


# --- Services (defence in depth) -----------------------------------------------------------------


def test_service_refuses_mdm_without_permission_even_with_otp(it_manager):
    mdm_feature()

    with pytest.raises(services.MDMNotAllowed):
        services.automation_create(actor=it_manager, spec=spec(), otp_verified=True)

    assert not Automation.objects.exists()


def test_service_refuses_mdm_when_the_feature_is_off(mdm_operator):
    with pytest.raises(services.MDMNotAllowed):
        services.automation_create(actor=mdm_operator, spec=spec(), otp_verified=True)


def test_service_refuses_a_new_or_changed_mdm_action_without_otp(mdm_operator):
    mdm_feature()
    with pytest.raises(services.OTPRequired):
        services.automation_create(actor=mdm_operator, spec=spec())

    automation = services.automation_create(
        actor=mdm_operator, spec=spec(), otp_verified=True
    ).automation
    changed = spec(mdm=mdm_spec(message="Changed", phone="+1 555 0100"))
    with pytest.raises(services.OTPRequired):
        services.automation_update(automation=automation, actor=mdm_operator, spec=changed)
    assert isinstance(services.OTPRequired(), PermissionDenied)

    # Other changes, and removing the lock, need no one-time password.
    services.automation_update(automation=automation, actor=mdm_operator, spec=spec(name="New"))
    services.automation_update(automation=automation, actor=mdm_operator, spec=spec(mdm=None))
    assert not Action.objects.filter(kind="mdm_lock").exists()


def test_service_saves_an_mdm_action_confirmed_by_otp(mdm_operator):
    mdm_feature()

    result = services.automation_create(actor=mdm_operator, spec=spec(), otp_verified=True)

    assert result.change.otp_verified
    lock = result.automation.actions.get(kind="mdm_lock")
    assert (lock.config["message"], lock.config["phone"], lock.position) == (
        "Return to IT",
        "+1 555 0100",
        1,
    )


def test_operator_page_flow_needs_the_otp_code(operator_client, mdm_operator):
    mdm_feature()
    device = totp_device(mdm_operator)

    response = operator_client.post(
        reverse("automations:create"),
        builder_data(mdm={"message": "Return"}, otp_token=totp_code(device)),
    )

    assert response.status_code == 302
    assert Automation.objects.get().changes.get().otp_verified


def test_switching_on_through_the_edit_form_needs_mdm_access_too(manager_client):
    mdm_feature()
    lock = {"message": "Return to IT", "phone": "+1 555 0100"}
    automation = make_automation(name="Lock", enabled=False, mdm=lock)

    response = manager_client.post(
        reverse("automations:edit", args=[automation.pk]),
        builder_data(
            automation=automation, name="Lock", enabled=True, initial_conditions=1, mdm=lock
        ),
    )

    assert response.status_code == 403
    assert 'id="mdm-refused-dialog"' in response.text
    automation.refresh_from_db()
    assert not automation.enabled
