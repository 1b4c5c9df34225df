"""What a user's role lets them see: a signed-in user with no role gets one "no access yet" page
(saying whom to ask) wherever they go; the navigation lists only what the role may open; each
dashboard figure needs the view permission of what it counts."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from assetsonar.models import AuditEvent
from conftest import make_asset, make_license, make_member, make_user

pytestmark = pytest.mark.django_db

PORTAL_URLS = ["dashboard", "members:list", "assets:list", "licenses:list", "automations:list"]


def nav_labels(html: str) -> list[str]:
    sidebar = re.search(r'<nav class="sidebar".*?</nav>', html, re.S).group(0)
    items = re.search(r"<ul>(.*?)</ul>", sidebar, re.S).group(1)
    return [re.sub(r"<[^>]+>", "", link).strip() for link in re.findall(r"<a .*?</a>", items)]


def user_with(username: str, *perms: str):
    user = make_user(username)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


@pytest.fixture
def no_role(db):
    return make_user("newcomer", first_name="Nia", last_name="Newcomer")


@pytest.mark.parametrize("name", PORTAL_URLS)
def test_a_user_without_a_role_gets_the_no_access_page_everywhere(client, no_role, name):
    make_user("root", is_superuser=True, is_staff=True, first_name="Ada", email="ada@example.com")
    make_member(full_name="Secret Person")
    client.force_login(no_role)

    response = client.get(reverse(name))

    assert response.status_code == 403
    text = " ".join(response.content.decode().split())
    assert "You have no access yet" in text
    assert "has no role in AssetSonar" in text
    assert 'href="mailto:ada@example.com"' in text
    assert "Secret Person" not in text
    assert nav_labels(response.content.decode()) == []
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.PERMISSION_DENIED, actor=no_role
    ).exists()


def test_without_any_administrator_the_page_still_says_whom_to_ask(client, no_role):
    client.force_login(no_role)
    text = " ".join(client.get(reverse("dashboard")).content.decode().split())
    assert "Ask your IT team's administrator to give you a role" in text


def test_the_dashboard_shows_nothing_to_a_user_without_a_role(client, no_role):
    make_member(full_name="Active Person")
    client.force_login(no_role)

    response = client.get(reverse("dashboard"))

    assert "Active members" not in response.content.decode()
    assert "members" not in (response.context or {})


@pytest.mark.parametrize(
    "fixture",
    ["it_manager", "viewer", "support_staff"],
)
def test_every_role_sees_the_whole_navigation(client, request, fixture):
    client.force_login(request.getfixturevalue(fixture))
    html = client.get(reverse("dashboard")).content.decode()
    # IT managers also manage SCIM provisioning (provisioning.manage_provisioning).
    provisioning = ["Provisioning"] if fixture == "it_manager" else []
    # IT managers see every approval request (automations.decide_approval).
    approvals = ["Approvals"] if fixture == "it_manager" else []
    assert nav_labels(html) == [
        "Dashboard",
        "Members",
        "Upcoming offboardings",
        "Assets",
        "Returns",
        "Licenses",
        "Workflows &amp; Automations",
        *provisioning,
        *approvals,
    ]


def test_the_navigation_and_dashboard_follow_single_permissions(client):
    make_member(full_name="Hidden Member")
    make_asset(name="Hidden Laptop")
    make_license(name="Figma")
    client.force_login(user_with("licensing", "licenses.view_license"))

    response = client.get(reverse("dashboard"))

    assert response.status_code == 200
    html = response.content.decode()
    assert nav_labels(html) == ["Dashboard", "Licenses"]
    assert "Seat use" in html and "Figma" in html
    assert "Active members" not in html and "Assets in custody" not in html
    assert "Deactivated members still holding" not in html
    assert "members" not in response.context and "assets" not in response.context
    # And the sections it does not list stay refused.
    assert client.get(reverse("members:list")).status_code == 403


def test_member_counts_alone_do_not_show_who_still_holds_assets(client):
    client.force_login(user_with("hr", "members.view_member"))

    html = client.get(reverse("dashboard")).content.decode()

    assert nav_labels(html) == ["Dashboard", "Members", "Upcoming offboardings"]
    assert "Active members" in html
    assert "Deactivated but still holding" not in html
    assert "Seat use" not in html


def test_a_dashboard_of_fewer_sections_makes_fewer_queries(
    client, manager_client, django_assert_max_num_queries
):
    # 12: the upcoming offboardings card reads the company time zone and counts (issue 10);
    # +1: the navigation's count of approvals waiting for the user (issue 9).
    with django_assert_max_num_queries(13) as full:
        manager_client.get(reverse("dashboard"))
    client.force_login(user_with("licensing", "licenses.view_license"))
    with django_assert_max_num_queries(7) as licenses_only:
        client.get(reverse("dashboard"))
    assert len(licenses_only.captured_queries) < len(full.captured_queries)
