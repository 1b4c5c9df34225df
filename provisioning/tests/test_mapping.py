"""How a SCIM User maps onto a member, and what the endpoint says about itself."""

from __future__ import annotations

import json

import pytest

from conftest import make_member
from members.models import Member

pytestmark = pytest.mark.django_db

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture
def api(client, scim_secret):
    def call(method, path, body=None):
        return client.generic(
            method,
            "/scim/v2" + path,
            json.dumps(body) if body is not None else "",
            content_type="application/scim+json",
            HTTP_AUTHORIZATION=f"Bearer {scim_secret}",
        )

    return call


def test_discovery_says_what_is_and_is_not_supported(api):
    config = api("GET", "/ServiceProviderConfig").json()
    assert config["patch"] == {"supported": True}
    assert config["filter"] == {"supported": True, "maxResults": 200}
    assert config["bulk"]["supported"] is False
    assert config["sort"] == {"supported": False}
    assert config["etag"] == {"supported": True}
    assert config["changePassword"] == {"supported": False}
    assert [s["type"] for s in config["authenticationSchemes"]] == ["oauthbearertoken"]
    types = api("GET", "/ResourceTypes").json()["Resources"]
    assert [t["id"] for t in types] == ["User"]  # no Groups
    user_schema = api("GET", f"/Schemas/{CORE}").json()
    assert [a["name"] for a in user_schema["attributes"]] == [
        "userName",
        "name",
        "title",
        "active",
        "emails",
        "addresses",
    ]
    enterprise = api("GET", f"/Schemas/{ENTERPRISE}").json()
    assert [a["name"] for a in enterprise["attributes"]] == [
        "employeeNumber",
        "department",
        "manager",
    ]


def test_user_name_is_the_email_when_no_email_is_sent_and_display_name_the_name(api):
    created = api(
        "POST",
        "/Users",
        {"schemas": [CORE], "userName": "kim@example.com", "displayName": "Kim Park"},
    )
    assert created.status_code == 201, created.content
    member = Member.objects.get()
    assert (member.email, member.full_name, member.scim_user_name) == (
        "kim@example.com",
        "Kim Park",
        "kim@example.com",
    )
    assert member.is_active


def test_given_and_family_name_make_the_full_name(api):
    api(
        "POST",
        "/Users",
        {
            "schemas": [CORE],
            "userName": "ana",
            "name": {"givenName": "Ana", "familyName": "Silva"},
            "emails": [{"value": "ana@example.com"}],
        },
    )
    member = Member.objects.get()
    assert (member.full_name, member.email, member.scim_user_name) == (
        "Ana Silva",
        "ana@example.com",
        "ana",
    )


def test_the_primary_email_wins_over_the_others(api):
    api(
        "POST",
        "/Users",
        {
            "schemas": [CORE],
            "userName": "lee",
            "emails": [
                {"value": "lee@home.example", "type": "home"},
                {"value": "lee@example.com", "type": "work", "primary": True},
            ],
        },
    )
    assert Member.objects.get().email == "lee@example.com"


def test_manager_by_external_id_or_email(api):
    boss = make_member(email="boss@example.com", external_id="00u-boss")
    for ref in ("00u-boss", "boss@example.com", str(boss.pk)):
        member = make_member()
        response = api(
            "PATCH",
            f"/Users/{member.pk}",
            {
                "schemas": [PATCH],
                "Operations": [
                    {"op": "add", "path": f"{ENTERPRISE}:manager", "value": {"value": ref}}
                ],
            },
        )
        assert response.status_code == 200, response.content
        member.refresh_from_db()
        assert member.manager == boss


def test_a_manager_loop_is_refused_like_the_member_form(api):
    boss = make_member()
    report = make_member(manager=boss)
    response = api(
        "PATCH",
        f"/Users/{boss.pk}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": str(report.pk)}
            ],
        },
    )
    assert response.status_code == 400
    assert "reports to this member" in response.json()["detail"]
    boss.refresh_from_db()
    assert boss.manager is None


def test_attributes_and_excluded_attributes(api):
    member = make_member(title="Engineer")
    only = api("GET", f"/Users/{member.pk}?attributes=userName,title").json()
    assert set(only) == {"schemas", "id", "userName", "title"}
    without = api("GET", f"/Users/{member.pk}?excludedAttributes=emails,title").json()
    assert "emails" not in without and "title" not in without and without["userName"]
    listed = api("GET", "/Users?attributes=userName").json()["Resources"]
    assert set(listed[0]) == {"schemas", "id", "userName"}


def test_count_is_capped_at_the_maximum(api, settings):
    settings.SCIM_MAX_RESULTS = 3
    for _ in range(5):
        make_member()
    body = api("GET", "/Users?count=500").json()
    assert (body["totalResults"], body["itemsPerPage"]) == (5, 3)


def test_meta_on_every_resource(api):
    member = make_member()
    meta = api("GET", f"/Users/{member.pk}").json()["meta"]
    assert meta["resourceType"] == "User"
    assert meta["location"] == f"http://testserver/scim/v2/Users/{member.pk}"
    assert meta["version"].startswith('W/"')
    assert meta["created"] and meta["lastModified"]


def test_a_deleted_user_created_again_is_the_same_member_back(api):
    from automations.models import Event
    from automations.triggers import MEMBER_REACTIVATED

    body = {
        "schemas": [CORE],
        "userName": "pat@example.com",
        "name": {"formatted": "Pat Doe"},
        "active": True,
    }
    first = api("POST", "/Users", body).json()
    assert api("DELETE", f"/Users/{first['id']}").status_code == 204
    again = api("POST", "/Users", body | {"title": "Analyst"})
    assert again.status_code == 201, again.content
    assert again.json()["id"] == first["id"] and again.json()["active"] is True
    member = Member.objects.get()
    assert member.scim_hidden_at is None and member.is_active and member.title == "Analyst"
    assert Event.objects.filter(member=member, kind=MEMBER_REACTIVATED).count() == 1
    assert api("GET", f"/Users/{first['id']}").status_code == 200


@pytest.mark.parametrize("email", ["jo@corp.local", "jo@localhost", "jo@example.test"])
def test_addresses_the_member_form_accepts_work_everywhere(api, email):
    member = make_member(email=email)
    assert api("GET", f"/Users/{member.pk}?attributes=emails").json()["emails"][0]["value"] == email
    patched = api(
        "PATCH",
        f"/Users/{member.pk}",
        {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "CTO"}]},
    )
    assert patched.status_code == 200, patched.content
    created = api("POST", "/Users", {"schemas": [CORE], "userName": f"new.{email}"})
    assert created.status_code == 201, created.content


def test_entra_removes_the_manager_with_a_capitalised_op(api):
    boss = make_member()
    member = make_member(manager=boss)
    response = api(
        "PATCH",
        f"/Users/{member.pk}",
        {"schemas": [PATCH], "Operations": [{"op": "Remove", "path": f"{ENTERPRISE}:manager"}]},
    )
    assert response.status_code == 200, response.content
    member.refresh_from_db()
    assert member.manager is None
    assert "manager" not in response.json().get(ENTERPRISE, {})


def test_put_with_active_false_deactivates_once_through_the_member_service(api):
    from assetsonar.models import AuditEvent
    from automations.models import Event
    from automations.triggers import MEMBER_DEACTIVATED

    member = make_member()
    body = api("GET", f"/Users/{member.pk}").json()
    for _ in range(2):
        response = api("PUT", f"/Users/{member.pk}", body | {"active": False})
        assert response.status_code == 200 and response.json()["active"] is False
    member.refresh_from_db()
    assert member.status == Member.Status.DEACTIVATED
    assert member.deactivation_reason.startswith(
        "Deactivated in the identity provider (SCIM · Okta production, request "
    )
    assert Event.objects.filter(member=member, kind=MEMBER_DEACTIVATED).count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DEACTIVATED).count() == 1


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("PATCH", {"Operations": [{"op": "Replace", "path": "active", "value": "False"}]}),
        ("PATCH", {"Operations": [{"op": "Replace", "value": {"active": "False"}}]}),
        ("PUT", None),
    ],
    ids=["patch-path", "patch-no-path", "put"],
)
def test_entra_string_booleans_everywhere(api, method, body):
    member = make_member()
    if body is None:
        body = api("GET", f"/Users/{member.pk}").json() | {"active": "False"}
    else:
        body = {"schemas": [PATCH], **body}
    response = api(method, f"/Users/{member.pk}", body)
    assert response.status_code == 200, response.content
    assert response.json()["active"] is False
    member.refresh_from_db()
    assert member.status == Member.Status.DEACTIVATED


@pytest.mark.parametrize("op", ["replace", "Replace", "REPLACE", "Add", "ADD"])
def test_patch_ops_in_any_case(api, op):
    member = make_member(title="Engineer")
    body = {"schemas": [PATCH], "Operations": [{"op": op, "path": "title", "value": "CTO"}]}
    response = api("PATCH", f"/Users/{member.pk}", body)
    assert response.status_code == 200, response.content
    member.refresh_from_db()
    assert member.title == "CTO"
