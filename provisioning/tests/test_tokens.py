"""SCIM tokens: hashed, shown once, scoped, last use recorded, revocable; from the portal's
Provisioning page, the Django admin and manage.py create_scim_token."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.urls import reverse

from assetsonar import roles
from assetsonar.models import AuditEvent
from conftest import make_member, make_user
from provisioning.models import ScimRequest, ScimToken
from provisioning.services import scim_token_create

pytestmark = pytest.mark.django_db


def scim_get(client, secret, path="/Users", **extra):
    return client.get("/scim/v2" + path, HTTP_AUTHORIZATION=f"Bearer {secret}", **extra)


def test_a_token_is_stored_only_as_its_hash():
    token, secret = scim_token_create(name="Okta production", read_only=False, actor=None)
    token.refresh_from_db()
    assert secret.startswith("assc_") and len(secret) > 40
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    stored = json.dumps(list(ScimToken.objects.values()), default=str)
    assert secret not in stored and secret[12:] not in stored
    assert token.prefix == secret[:12]
    audit = AuditEvent.objects.get(object_type="provisioning.scimtoken")
    assert secret not in audit.message


def test_create_scim_token_command_prints_the_token_once(client):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_scim_token", "Acceptance", "--read-only", stdout=out, stderr=err)
    secret = out.getvalue().strip()
    token = ScimToken.objects.get(name="Acceptance")
    assert token.read_only and token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert "Acceptance" in err.getvalue() and secret not in err.getvalue()
    assert scim_get(client, secret).status_code == 200
    with pytest.raises(CommandError, match="Another token already has this name."):
        call_command("create_scim_token", "acceptance", stdout=io.StringIO())


def test_last_used_at_and_from_are_recorded(client):
    token, secret = scim_token_create(name="Entra", read_only=False, actor=None)
    assert token.last_used_at is None
    scim_get(client, secret, REMOTE_ADDR="10.1.2.3")
    token.refresh_from_db()
    assert token.last_used_at is not None and token.last_used_from == "10.1.2.3"


def test_it_managers_get_the_provisioning_permission_and_the_nav_entry(manager_client, viewer):
    assert (
        Group.objects.get(name=roles.IT_MANAGER)
        .permissions.filter(codename="manage_provisioning")
        .exists()
    )
    page = manager_client.get(reverse("dashboard")).content.decode()
    assert f'href="{reverse("provisioning:page")}"' in page

    manager_client.force_login(viewer)
    page = manager_client.get(reverse("dashboard")).content.decode()
    assert reverse("provisioning:page") not in page
    assert manager_client.get(reverse("provisioning:page")).status_code == 403
    response = manager_client.post(reverse("provisioning:token_create"), {"name": "Sneaky"})
    assert response.status_code == 403
    assert not ScimToken.objects.exists()


def test_provisioning_page_creates_shows_once_and_revokes(manager_client, it_manager, client):
    page = manager_client.get(reverse("provisioning:page"))
    assert page.status_code == 200
    assert "http://testserver/scim/v2" in page.content.decode()

    created = manager_client.post(
        reverse("provisioning:token_create"), {"name": "Okta production", "read_only": ""}
    )
    assert created.status_code == 201
    assert "no-store" in created["Cache-Control"]
    html = created.content.decode()
    token = ScimToken.objects.get()
    assert token.created_by == it_manager and not token.read_only
    start = html.index('data-testid="new-secret">') + len('data-testid="new-secret">')
    secret = html[start : html.index("</code>", start)]
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    # Shown once: the page never shows it again.
    assert secret not in manager_client.get(reverse("provisioning:page")).content.decode()

    duplicate = manager_client.post(
        reverse("provisioning:token_create"), {"name": "okta production"}
    )
    assert duplicate.status_code == 400
    assert "Another token already has this name." in duplicate.content.decode()
    assert ScimToken.objects.count() == 1

    assert scim_get(client, secret).status_code == 200
    revoked = manager_client.post(reverse("provisioning:token_revoke", args=[token.pk]))
    assert revoked.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None and token.revoked_by == it_manager
    assert scim_get(client, secret).status_code == 401


def test_provisioning_page_lists_recent_requests_failures_first(manager_client, client):
    member = make_member(full_name="Jordan Rivera")
    _token, secret = scim_token_create(name="Okta production", read_only=False, actor=None)
    scim_get(client, secret, f"/Users/{member.pk}")
    scim_get(client, secret, '/Users?filter=bogus eq "x"')
    scim_get(client, secret)
    assert ScimRequest.objects.count() == 3

    html = manager_client.get(reverse("provisioning:page")).content.decode()
    failure = html.index("Filtering on “bogus” is not supported")
    success = html.index(f"GET /scim/v2/Users/{member.pk}")
    assert failure < success
    assert "Jordan Rivera" in html
    assert "3 requests, 1 failed" in html

    # Polling after the failure does not push it off the page.
    for _ in range(25):
        scim_get(client, secret, f"/Users/{member.pk}")
    html = manager_client.get(reverse("provisioning:page")).content.decode()
    assert html.index("Filtering on “bogus” is not supported") < html.index("/scim/v2/Users/")


def test_provisioning_page_query_budget(manager_client, client, django_assert_max_num_queries):
    for n in (1, 6):
        for i in range(n):
            _token, secret = scim_token_create(name=f"Token {n}-{i}", read_only=False, actor=None)
            scim_get(client, secret)
        # Two per token: its recent failures and its recent other requests.
        with django_assert_max_num_queries(8 + 2 * ScimToken.objects.count()):
            assert manager_client.get(reverse("provisioning:page")).status_code == 200


def test_admin_creates_a_token_showing_it_once_and_revokes(admin_client):
    response = admin_client.post(
        reverse("admin:provisioning_scimtoken_add"), {"name": "Okta staging", "read_only": "on"}
    )
    assert response.status_code == 201 and "no-store" in response["Cache-Control"]
    token = ScimToken.objects.get()
    assert token.read_only
    html = response.content.decode()
    start = html.index('data-testid="new-secret">') + len('data-testid="new-secret">')
    secret = html[start : html.index("</code>", start)]
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert not list(response.wsgi_request._messages)  # never in a cookie or the session
    page = admin_client.get(reverse("admin:provisioning_scimtoken_change", args=[token.pk]))
    assert secret not in page.content.decode()

    admin_client.post(
        reverse("admin:provisioning_scimtoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_support_staff_without_the_permission_cannot_open_the_tokens(client):
    user = make_user("support2", roles.SUPPORT_STAFF, is_staff=True)
    client.force_login(user)
    assert client.get(reverse("admin:provisioning_scimtoken_changelist")).status_code == 403


def test_the_request_log_keeps_scim_request_log_days(client, monkeypatch, settings):
    from datetime import timedelta

    from django.utils import timezone

    from provisioning import services

    settings.SCIM_REQUEST_LOG_DAYS = 30
    _token, secret = scim_token_create(name="Okta", read_only=False, actor=None)
    scim_get(client, secret)
    scim_get(client, secret)
    old, recent = ScimRequest.objects.order_by("pk")
    ScimRequest.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=31))
    ScimRequest.objects.filter(pk=recent.pk).update(at=timezone.now() - timedelta(days=29))
    monkeypatch.setattr(services, "PRUNE_EVERY", 1)
    scim_get(client, secret)
    assert set(ScimRequest.objects.values_list("pk", flat=True)) == {
        recent.pk,
        ScimRequest.objects.latest("pk").pk,
    }


def test_member_admin_shows_the_scim_identity_read_only(admin_client):
    from members.services import member_deactivate
    from provisioning.auth import ScimActor

    token, _secret = scim_token_create(name="Okta production", read_only=False, actor=None)
    member = make_member(scim_user_name="jrivera", external_id="00u-1")
    member_deactivate(member=member, actor=ScimActor(token=token, request_id="r1"), reason="Left")
    html = admin_client.get(
        reverse("admin:members_member_change", args=[member.pk])
    ).content.decode()
    assert "jrivera" in html and "00u-1" in html and "SCIM · Okta production" in html
    assert 'name="scim_user_name"' not in html  # read-only
