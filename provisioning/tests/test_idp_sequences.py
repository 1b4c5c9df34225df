"""Okta and Entra ID as they provision (the request sequences of their published SCIM guides),
over real HTTP to a live server, each asserted end to end: the member, exactly one deactivation
event, the automation's execution and its webhook, the audit trail and the member page."""

from __future__ import annotations

import pytest
from django.apps import apps

from assetsonar import roles
from assetsonar.models import AuditEvent
from automations.models import Event, Execution
from automations.tests.engine_factories import make_engine_automation, use_sync_q
from automations.tests.servers import WebhookReceiver
from automations.triggers import MEMBER_DEACTIVATED, MEMBER_REACTIVATED
from conftest import make_asset, make_member
from members.models import Member
from provisioning.models import ScimRequest

pytestmark = pytest.mark.django_db(transaction=True)

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture(autouse=True)
def sync_q(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)


@pytest.fixture(autouse=True)
def roles_exist(transactional_db):
    # A transactional test starts from whatever the previous one flushed: the roles may be gone.
    roles.sync_roles(apps)


@pytest.fixture
def receiver():
    with WebhookReceiver() as hook:
        yield hook


@pytest.fixture
def offboarding(receiver):
    return make_engine_automation(name="Offboarding", webhook_url=receiver.url())


def events(member, kind=MEMBER_DEACTIVATED):
    return list(Event.objects.filter(member=member, kind=kind))


def test_okta_create_update_deactivate_reactivate(scim, receiver, offboarding, client, it_manager):
    # Okta looks the user up by userName before creating it.
    lookup = scim(
        "GET", '/Users?filter=userName eq "jordan.rivera@example.com"&startIndex=1&count=100'
    )
    assert lookup.status_code == 200
    assert lookup.json()["totalResults"] == 0 and lookup.json()["Resources"] == []

    created = scim(
        "POST",
        "/Users",
        {
            "schemas": [CORE],
            "userName": "jordan.rivera@example.com",
            "name": {"givenName": "Jordan", "familyName": "Rivera"},
            "emails": [{"primary": True, "value": "jordan.rivera@example.com", "type": "work"}],
            "displayName": "Jordan Rivera",
            "locale": "en-US",
            "externalId": "00u1abcd2EFGH3ijk4l5",
            "groups": [],
            "password": "okta-sends-one-1A!",
            "active": True,
        },
    )
    assert created.status_code == 201, created.text
    user = created.json()
    member = Member.objects.get(pk=user["id"])
    assert created.headers["Location"] == user["meta"]["location"]
    assert created.headers["Content-Type"] == "application/scim+json"
    assert (member.full_name, member.email, member.external_id) == (
        "Jordan Rivera",
        "jordan.rivera@example.com",
        "00u1abcd2EFGH3ijk4l5",
    )
    assert (member.given_name, member.family_name, member.is_active) == ("Jordan", "Rivera", True)
    assert "password" not in user
    created_audit = AuditEvent.objects.get(
        action=AuditEvent.Action.CREATED, object_type="members.member", object_id=user["id"]
    )
    assert created_audit.actor_name == "SCIM · Okta production"
    assert created.headers["X-Request-ID"] in created_audit.message
    make_asset(custodian=member)

    found = scim("GET", '/Users?filter=userName eq "Jordan.Rivera@example.com"').json()
    assert [r["id"] for r in found["Resources"]] == [user["id"]]

    # Okta's profile push: PUT with the whole user.
    whole = {
        **user,
        "title": "Staff Engineer",
        "schemas": [CORE, ENTERPRISE],
        ENTERPRISE: {"employeeNumber": "E-1042", "department": "Platform"},
    }
    replaced = scim("PUT", f"/Users/{user['id']}", whole)
    assert replaced.status_code == 200, replaced.text
    member.refresh_from_db()
    assert (member.title, member.employee_id, member.department) == (
        "Staff Engineer",
        "E-1042",
        "Platform",
    )
    assert not events(member)
    changed = AuditEvent.objects.get(
        action=AuditEvent.Action.CHANGED, object_type="members.member", object_id=user["id"]
    )
    assert changed.actor_name == "SCIM · Okta production"
    assert replaced.headers["X-Request-ID"] in changed.message
    assert changed.changes["title"] == ["", "Staff Engineer"]

    # Deactivation: PATCH without a path.
    deactivated = scim(
        "PATCH",
        f"/Users/{user['id']}",
        {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]},
    )
    assert deactivated.status_code == 200, deactivated.text
    assert deactivated.json()["active"] is False
    member.refresh_from_db()
    assert member.status == Member.Status.DEACTIVATED
    assert member.deactivated_by_name == "SCIM · Okta production"
    (event,) = events(member)
    execution = Execution.objects.get(event=event)
    assert (execution.automation, execution.status) == (offboarding, Execution.Status.SUCCEEDED)
    (hook,) = receiver.requests
    assert b"member.deactivated" in hook.body

    audit = AuditEvent.objects.get(
        action=AuditEvent.Action.DEACTIVATED, object_type="members.member", object_id=str(member.pk)
    )
    assert audit.actor is None and audit.actor_name == "SCIM · Okta production"
    request_id = deactivated.headers["X-Request-ID"]
    assert request_id in audit.message
    assert ScimRequest.objects.get(request_id=request_id).member == member

    # Okta's suite reads a deactivated user back: still there, active false.
    again = scim("GET", f"/Users/{user['id']}")
    assert again.status_code == 200 and again.json()["active"] is False

    client.force_login(it_manager)
    page = client.get(member.get_absolute_url()).content.decode()
    assert "Deactivated by</dt><dd>SCIM · Okta production" in page

    # The same deactivation sent again changes nothing and makes no second event.
    scim(
        "PATCH",
        f"/Users/{user['id']}",
        {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]},
    )
    assert len(events(member)) == 1

    reactivated = scim(
        "PATCH",
        f"/Users/{user['id']}",
        {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": True}}]},
    )
    assert reactivated.status_code == 200 and reactivated.json()["active"] is True
    member.refresh_from_db()
    assert member.is_active and member.deactivated_by_name == ""
    assert len(events(member, MEMBER_REACTIVATED)) == 1
    assert len(events(member)) == 1


def test_entra_create_patch_with_its_quirks_deactivate_delete(scim, receiver, offboarding):
    boss = make_member(full_name="Avery Boss", email="avery.boss@example.com")
    assert (
        scim("GET", '/Users?filter=userName eq "sam.lee@contoso.com"').json()["totalResults"] == 0
    )

    created = scim(
        "POST",
        "/Users",
        {
            "schemas": [CORE, ENTERPRISE],
            "externalId": "8f0c2b6e-5d3a-4c1e-9b7a-2e4f6a8c0d1e",
            "userName": "sam.lee@contoso.com",
            "active": True,
            "emails": [{"primary": True, "type": "work", "value": "sam.lee@contoso.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "Sam Lee", "familyName": "Lee", "givenName": "Sam"},
            "roles": [],
            ENTERPRISE: {"employeeNumber": "700123", "department": "Finance"},
        },
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    by_external = scim("GET", '/Users?filter=externalId eq "8f0c2b6e-5d3a-4c1e-9b7a-2e4f6a8c0d1e"')
    assert [r["id"] for r in by_external.json()["Resources"]] == [user_id]

    # Entra's update: capitalised ops, filtered paths, the manager as a bare id.
    updated = scim(
        "PATCH",
        f"/Users/{user_id}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "Replace", "path": "title", "value": "Controller"},
                {"op": "Add", "path": 'emails[type eq "work"].value', "value": "sam@contoso.com"},
                {"op": "Add", "path": 'addresses[type eq "work"].locality', "value": "Lisbon"},
                {"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": str(boss.pk)},
                {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Treasury"},
            ],
        },
    )
    assert updated.status_code == 200, updated.text
    member = Member.objects.get(pk=user_id)
    assert (member.title, member.email, member.location) == (
        "Controller",
        "sam@contoso.com",
        "Lisbon",
    )
    assert (member.manager, member.department) == (boss, "Treasury")
    assert updated.json()[ENTERPRISE]["manager"]["value"] == str(boss.pk)

    # "active": "False" as a string, op capitalised.
    off = scim(
        "PATCH",
        f"/Users/{user_id}",
        {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]},
    )
    assert off.status_code == 200, off.text
    member.refresh_from_db()
    assert member.status == Member.Status.DEACTIVATED
    (event,) = events(member)
    assert Execution.objects.get(event=event).status == Execution.Status.SUCCEEDED
    assert len(receiver.requests) == 1

    on = scim(
        "PATCH",
        f"/Users/{user_id}",
        {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "True"}]},
    )
    assert on.status_code == 200 and on.json()["active"] is True
    member.refresh_from_db()
    assert member.is_active

    # DELETE: deactivated (the automation runs once more), hidden from SCIM, never deleted.
    device = make_asset(custodian=member)
    deleted = scim("DELETE", f"/Users/{user_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    member.refresh_from_db()
    assert member.status == Member.Status.DEACTIVATED and member.scim_hidden_at is not None
    assert len(events(member)) == 2
    assert Execution.objects.filter(member=member).count() == 2
    device.refresh_from_db()
    assert device.custodian == member
    hidden = AuditEvent.objects.get(
        object_type="members.member", object_id=user_id, message__startswith="Hidden from SCIM"
    )
    assert hidden.actor_name == "SCIM · Okta production"
    assert deleted.headers["X-Request-ID"] in hidden.message
    gone = scim("GET", f"/Users/{user_id}")
    assert gone.status_code == 404
    assert gone.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    listed = scim("GET", '/Users?filter=userName eq "sam.lee@contoso.com"').json()
    assert listed["totalResults"] == 0
    assert scim("DELETE", f"/Users/{user_id}").status_code == 404


def test_simultaneous_deactivations_make_one_event(scim, offboarding):
    from concurrent.futures import ThreadPoolExecutor

    member = make_member()
    off = {
        "schemas": [PATCH],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(lambda _: scim("PATCH", f"/Users/{member.pk}", off), range(4)))
    assert [r.status_code for r in responses] == [200] * 4
    member.refresh_from_db()
    assert member.status == Member.Status.DEACTIVATED
    (event,) = events(member)
    assert Execution.objects.filter(event=event).count() == 1
