"""Headers on every response: nothing a signed-in user sees is cached (Cache-Control: no-store),
and a Permissions-Policy switches off the browser features the portal never uses."""

from __future__ import annotations

import pytest
from django.urls import reverse

from automations.tests.builder_factories import make_automation

pytestmark = pytest.mark.django_db

SIGNED_IN_PAGES = [
    "dashboard",
    "members:list",
    "assets:list",
    "licenses:list",
    "automations:list",
    "automations:create",
    "automations:executions",
    "admin:index",
]


@pytest.mark.parametrize("name", SIGNED_IN_PAGES)
def test_every_signed_in_page_is_no_store(client, django_user_model, name):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-X1")
    client.force_login(admin)

    response = client.get(reverse(name))

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_an_automation_page_and_a_refusal_are_no_store_too(client, viewer):
    automation = make_automation(name="Offboard")
    client.force_login(viewer)

    page = client.get(automation.get_absolute_url())
    refused = client.get(reverse("automations:create"))

    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    assert refused.status_code == 403 and "no-store" in refused["Cache-Control"]


def test_static_files_stay_cacheable_for_everyone(client, it_manager):
    client.force_login(it_manager)

    response = client.get("/static/css/app.css")

    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")


@pytest.mark.parametrize("signed_in", [False, True], ids=["sign-in page", "dashboard"])
def test_permissions_policy_switches_off_unused_browser_features(client, it_manager, signed_in):
    if signed_in:
        client.force_login(it_manager)
    response = client.get(reverse("dashboard" if signed_in else "login"))

    policy = dict(item.strip().split("=", 1) for item in response["Permissions-Policy"].split(","))
    for feature in ("camera", "microphone", "geolocation", "payment", "usb", "browsing-topics"):
        assert policy[feature] == "()"
    assert policy["clipboard-write"] == "(self)"
