"""Whatever changes whom or when an automation locks devices needs the MDM permission and a
one-time password, as adding the lock does: its conditions, its match, its trigger, switching it
on and duplicating it with the lock. Refusals are 403, and nothing is saved."""

from __future__ import annotations

import pytest
from django.urls import reverse

from assetsonar.models import AuditEvent
from automations import services
from automations.models import Automation
from automations.tests.builder_factories import (
    builder_data,
    make_automation,
    mdm_feature,
    totp_code,
    totp_device,
)

pytestmark = pytest.mark.django_db

LOCK = {"message": "Return to IT", "phone": "+1 555 0100"}
STORED_CONDITION = [("department", "is", "Engineering")]

# Each is a builder POST that keeps the lock as it is and changes whom or when it locks.
RETARGETS = {
    "conditions": {"conditions": [("department", "is", "Sales")]},
    "added condition": {"conditions": [*STORED_CONDITION, ("location", "is", "Berlin")]},
    "no conditions": {"conditions": []},
    "match": {"match": "any"},
    "trigger": {"trigger_event": "member.reactivated"},
}


@pytest.fixture
def operator_client(client, mdm_operator):
    client.force_login(mdm_operator)
    return client


def lock_automation(**fields) -> Automation:
    mdm_feature()
    return make_automation(name="Lock laptops", mdm=LOCK, **fields)


def edit(client, automation: Automation, **changes):
    fields = {"name": automation.name, "initial_conditions": 1, "mdm": LOCK, **changes}
    return client.post(
        reverse("automations:edit", args=[automation.pk]),
        builder_data(automation=automation, **fields),
    )


def scope(automation: Automation) -> tuple:
    automation.refresh_from_db()
    return (
        automation.trigger_event,
        automation.match,
        [(c.field, c.operator, c.value) for c in automation.conditions.order_by("position")],
        automation.enabled,
    )


# --- Without the MDM permission: refused with 403 --------------------------------------------


@pytest.mark.parametrize("changes", RETARGETS.values(), ids=RETARGETS.keys())
def test_an_it_manager_without_mdm_cannot_retarget_a_lock_automation(manager_client, changes):
    automation = lock_automation()
    before = scope(automation)

    response = edit(manager_client, automation, **changes)

    assert response.status_code == 403
    assert 'id="mdm-refused-dialog"' in response.text
    assert "changes whom or when this automation locks devices" in response.text
    assert scope(automation) == before
    assert not automation.changes.exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PERMISSION_DENIED).exists()


def test_an_it_manager_may_still_rename_a_lock_automation(manager_client):
    automation = lock_automation()

    response = edit(manager_client, automation, name="Lock laptops (EMEA)")

    assert response.status_code == 302
    automation.refresh_from_db()
    assert automation.name == "Lock laptops (EMEA)"


def test_retargeting_an_automation_without_a_lock_needs_nothing(manager_client):
    automation = make_automation(name="Revoke only")
    response = manager_client.post(
        reverse("automations:edit", args=[automation.pk]),
        builder_data(automation=automation, name="Revoke only", initial_conditions=1, match="any"),
    )
    assert response.status_code == 302


# --- With the MDM permission: a one-time password --------------------------------------------


@pytest.mark.parametrize("changes", RETARGETS.values(), ids=RETARGETS.keys())
def test_an_mdm_operator_retargets_only_with_a_one_time_password(
    operator_client, mdm_operator, changes
):
    automation = lock_automation()
    device = totp_device(mdm_operator)
    before = scope(automation)

    asked = edit(operator_client, automation, **changes)
    assert asked.status_code == 200
    assert '<dialog id="otp-dialog"' in asked.text
    assert "changes whom or when this automation locks devices" in asked.text
    assert scope(automation) == before

    saved = edit(operator_client, automation, otp_token=totp_code(device), **changes)
    assert saved.status_code == 302
    assert scope(automation) != before
    assert automation.changes.get().otp_verified


def test_switching_on_through_the_builder_needs_a_one_time_password(operator_client, mdm_operator):
    automation = lock_automation(enabled=False)
    device = totp_device(mdm_operator)

    asked = edit(operator_client, automation, enabled=True)
    assert '<dialog id="otp-dialog"' in asked.text
    assert "switches on an automation that locks devices" in asked.text
    automation.refresh_from_db()
    assert not automation.enabled

    edit(operator_client, automation, enabled=True, otp_token=totp_code(device))
    automation.refresh_from_db()
    assert automation.enabled


def test_the_services_refuse_a_retarget_without_permission_or_code(it_manager, mdm_operator):
    automation = lock_automation()
    spec = services.spec_from_automation(automation)
    retargeted = services.AutomationSpec(**{**spec.__dict__, "match": "any"})

    with pytest.raises(services.MDMNotAllowed):
        services.automation_update(
            automation=automation, actor=it_manager, spec=retargeted, otp_verified=True
        )
    with pytest.raises(services.OTPRequired):
        services.automation_update(automation=automation, actor=mdm_operator, spec=retargeted)
    with pytest.raises(services.OTPRequired):
        services.automation_set_enabled(
            automation=make_automation(name="Off", enabled=False, mdm=LOCK),
            enabled=True,
            actor=mdm_operator,
        )
    automation.refresh_from_db()
    assert automation.match == "all"


# --- The toggle --------------------------------------------------------------------------------


def test_the_toggle_asks_an_mdm_operator_for_a_code_and_refuses_with_403_until_then(
    operator_client, mdm_operator
):
    automation = lock_automation(enabled=False)
    device = totp_device(mdm_operator)
    url = reverse("automations:toggle", args=[automation.pk])

    asked = operator_client.post(url, {"enabled": "1"})
    assert asked.status_code == 403
    assert 'name="otp_token"' in asked.text and "no-store" in asked["Cache-Control"]

    wrong = operator_client.post(url, {"enabled": "1", "otp_token": "000000"})
    assert wrong.status_code == 403
    assert 'id="otp-error"' in wrong.text

    htmx = operator_client.post(url, {"enabled": "1"}, headers={"HX-Request": "true"})
    assert htmx.status_code == 403
    page = operator_client.get(htmx["HX-Redirect"])
    assert page.status_code == 200 and 'name="otp_token"' in page.text

    automation.refresh_from_db()
    assert not automation.enabled

    device.refresh_from_db()
    device.throttling_failure_count = 0  # the wrong code above throttles the next try
    device.save()
    done = operator_client.post(url, {"enabled": "1", "otp_token": totp_code(device)})
    assert done.status_code == 302
    automation.refresh_from_db()
    assert automation.enabled
    assert automation.changes.get(kind="enabled").otp_verified


def test_an_automation_without_a_lock_switches_on_without_a_code(manager_client):
    automation = make_automation(name="Revoke only", enabled=False)

    response = manager_client.post(
        reverse("automations:toggle", args=[automation.pk]), {"enabled": "1"}
    )

    assert response.status_code == 302
    automation.refresh_from_db()
    assert automation.enabled


# --- Duplicate, edit, enable (issue 7, item 13) ------------------------------------------------


def test_duplicate_edit_enable_never_makes_a_live_lock_without_a_code(
    operator_client, mdm_operator
):
    source = lock_automation()
    totp_device(mdm_operator)

    refused = operator_client.post(reverse("automations:duplicate", args=[source.pk]))
    assert refused.status_code == 403
    assert Automation.objects.count() == 1

    operator_client.post(reverse("automations:duplicate", args=[source.pk]), {"without_mdm": "1"})
    copy = Automation.objects.get(name="Copy of Lock laptops")
    assert not copy.actions.filter(kind="mdm_lock").exists()

    # Adding the lock back and switching the copy on both ask for a code.
    asked = operator_client.post(
        reverse("automations:edit", args=[copy.pk]),
        builder_data(name=copy.name, initial_conditions=1, enabled=True, mdm=LOCK),
    )
    assert '<dialog id="otp-dialog"' in asked.text
    copy.refresh_from_db()
    assert not copy.enabled
    assert not copy.actions.filter(kind="mdm_lock").exists()


def test_an_it_manager_duplicates_a_lock_automation_without_the_lock(manager_client):
    source = lock_automation()

    response = manager_client.post(reverse("automations:duplicate", args=[source.pk]))

    assert response.status_code == 302
    copy = Automation.objects.get(name="Copy of Lock laptops")
    assert not copy.actions.filter(kind="mdm_lock").exists()
    toggle = manager_client.post(reverse("automations:toggle", args=[copy.pk]), {"enabled": "1"})
    assert toggle.status_code == 302
