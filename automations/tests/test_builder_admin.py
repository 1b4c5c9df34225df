"""The Django admin shows automations, conditions and actions to support staff, read-only: no
MDM action (nor any other) can be created or changed there, and no secret is shown."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from automations.models import Action, Automation
from automations.tests.builder_factories import make_automation

pytestmark = pytest.mark.django_db


@pytest.fixture
def automation():
    return make_automation(
        name="Lock laptops",
        mdm={"message": "Return to IT", "phone": "+1 555 0100"},
        webhook={"headers": {"Authorization": "Bearer hidden-token"}, "secret": "whsec_hidden"},
    )


@pytest.fixture
def superuser_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-Secret1")
    client.force_login(user)
    return client


def test_support_staff_see_automations_with_conditions_and_actions(
    client, support_staff, automation
):
    client.force_login(support_staff)

    listing = client.get(reverse("admin:automations_automation_changelist"))
    page = client.get(reverse("admin:automations_automation_change", args=[automation.pk]))

    assert listing.status_code == 200 and "Lock laptops" in listing.text
    assert page.status_code == 200
    text = page.text
    assert "Return to IT" in text and "+1 555 0100" in text
    assert "department" in text and "Engineering" in text
    assert "Authorization" in text
    assert "hidden-token" not in text and "whsec_hidden" not in text
    assert "Open in the builder" in text


def test_nobody_can_add_or_change_actions_in_the_admin(superuser_client, automation):
    change_url = reverse("admin:automations_automation_change", args=[automation.pk])

    page = superuser_client.get(change_url).text

    assert 'name="actions-0-lock_message"' not in page
    assert 'name="actions-MAX_NUM_FORMS" value="0"' in page
    editable = re.findall(r'<(?:input|select|textarea)[^>]*name="actions-\d-(\w+)"', page)
    assert set(editable) <= {"id", "automation"}  # only the hidden keys Django always renders
    assert superuser_client.get(reverse("admin:automations_automation_add")).status_code == 403
    assert (
        superuser_client.get("/admin/automations/action/add/").status_code == 404
    )  # no Action admin


def test_a_crafted_admin_post_cannot_change_the_mdm_action(superuser_client, automation):
    lock = automation.actions.get(kind="mdm_lock")
    change_url = reverse("admin:automations_automation_change", args=[automation.pk])

    response = superuser_client.post(
        change_url,
        {
            "name": "Renamed",
            "actions-TOTAL_FORMS": "4",
            "actions-INITIAL_FORMS": "3",
            "actions-0-id": str(lock.pk),
            "actions-0-lock_message": "Hacked",
            "actions-3-kind": "mdm_lock",
            "actions-3-lock_message": "New lock",
        },
    )

    assert response.status_code == 403
    lock.refresh_from_db()
    assert lock.config["message"] == "Return to IT"
    assert Action.objects.filter(kind="mdm_lock").count() == 1
    assert Automation.objects.get().name == "Lock laptops"


def test_deleting_in_the_admin_is_not_possible_either(superuser_client, automation):
    url = reverse("admin:automations_automation_delete", args=[automation.pk])

    assert superuser_client.post(url, {"post": "yes"}).status_code == 403
    assert Automation.objects.exists()
