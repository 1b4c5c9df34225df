"""Bad input gets the exact SCIM error, and a request that fails changes nothing."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache

from assetsonar.models import AuditEvent
from automations.models import Event
from conftest import make_member
from members.models import Member
from provisioning.models import ScimRequest
from provisioning.services import scim_token_create, scim_token_revoke

pytestmark = pytest.mark.django_db

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@pytest.fixture(autouse=True)
def fresh_rate_counters():
    cache.clear()


@pytest.fixture
def clock(monkeypatch):
    """The rate limiter's clock, 30 s into a 60-second window: a test's requests never straddle
    a window's end (the real clock would reset the counts at the minute now and then)."""
    from types import SimpleNamespace

    from provisioning import auth

    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: 60 * 30_000_000 + 30.0))


@pytest.fixture
def api(client, scim_secret):
    def call(method, path, body=None, *, raw=None, secret=scim_secret, address=None, **headers):
        extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
        if address:
            extra["REMOTE_ADDR"] = address
        if secret:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        return client.generic(
            method, "/scim/v2" + path, data, content_type="application/scim+json", **extra
        )

    return call


def user(**extra):
    return {
        "schemas": [CORE],
        "userName": "new.person@example.com",
        "name": {"givenName": "New", "familyName": "Person"},
        "emails": [{"value": "new.person@example.com", "type": "work", "primary": True}],
        "active": True,
        **extra,
    }


def error(response, status, scim_type=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/scim+json"
    body = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    assert body.get("scimType") == scim_type
    return body["detail"]


def nothing_written(count_before=0):
    assert Member.objects.count() == count_before
    assert not Event.objects.exists()
    assert (
        not AuditEvent.objects.filter(action__in=["created", "changed"])
        .exclude(object_type="provisioning.scimtoken")
        .exists()
    )


def test_malformed_json(api):
    detail = error(api("POST", "/Users", raw='{"schemas": ['), 400, "invalidSyntax")
    assert detail.startswith("The request body is not valid JSON")
    nothing_written()


def test_unknown_and_missing_schema(api):
    detail = error(
        api("POST", "/Users", user(schemas=[CORE, "urn:example:custom"])), 400, "invalidSyntax"
    )
    assert "“urn:example:custom” is not served here" in detail
    detail = error(
        api("POST", "/Users", user(schemas=["urn:example:custom"])), 400, "invalidSyntax"
    )
    assert detail == f"schemas: a User must list “{CORE}”."
    nothing_written()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (user(userName=5), "userName: Input should be a valid string"),
        (user(emails="x@example.com"), "emails: Input should be a valid list"),
        (user(active="maybe"), "active: Input should be a valid boolean"),
        (
            user(emails=[{"value": "not-an-email", "type": "work"}]),
            "emails.value: Enter a valid email address.",
        ),
        (
            user(name={"formatted": "x" * 151}),
            "name.formatted: Ensure this value has at most 150 characters (it has 151).",
        ),
        (
            user(**{"schemas": [CORE, ENTERPRISE], ENTERPRISE: {"manager": {"value": "999"}}}),
            f"{ENTERPRISE}:manager.value: no user has the id “999”.",
        ),
        (user(userName="  "), "userName is required."),
    ],
)
def test_wrong_types_and_values(api, body, expected):
    detail = error(api("POST", "/Users", body), 400, "invalidValue")
    assert detail.startswith(expected)
    nothing_written()


@pytest.mark.parametrize(
    ("existing", "body", "expected"),
    [
        (
            {"email": "New.Person@example.com"},
            user(),
            "emails.value: Another member already has this email address.",
        ),
        (
            {"employee_id": "E-7"},
            user(**{"schemas": [CORE, ENTERPRISE], ENTERPRISE: {"employeeNumber": "E-7"}}),
            f"{ENTERPRISE}:employeeNumber: Another member already has this employee ID.",
        ),
        (
            {"email": "someone@example.com", "scim_user_name": "NEW.PERSON@example.com"},
            user(),
            "userName: another member already has this user name.",
        ),
        # A member made in the portal is userName = email for SCIM.
        (
            {"email": "jdoe@example.com"},
            user(userName="jdoe@example.com"),
            "userName: another member already has this user name.",
        ),
    ],
)
def test_duplicates_are_409_uniqueness(api, existing, body, expected):
    make_member(**existing)
    detail = error(api("POST", "/Users", body), 409, "uniqueness")
    assert detail == expected
    nothing_written(count_before=1)


def test_bad_filters_name_the_problem(api):
    detail = error(api("GET", "/Users?filter=userName eq"), 400, "invalidFilter")
    assert detail.startswith("The filter “userName eq” is invalid")
    detail = error(api("GET", '/Users?filter=phoneNumbers.value eq "1"'), 400, "invalidFilter")
    assert detail.startswith("Filtering on “phoneNumbers.value” is not supported")
    detail = error(
        api("GET", '/Users?filter=meta.lastModified gt "yesterday"'), 400, "invalidFilter"
    )
    assert "yesterday" in detail
    detail = error(api("GET", "/Users?filter=active gt true"), 400, "invalidFilter")
    assert "gt" in detail
    detail = error(api("GET", '/Users?filter=active eq "yes"'), 400, "invalidFilter")
    assert detail == "“active” is compared with true or false, not “yes”."
    many = " or ".join(f'userName eq "u{i}"' for i in range(201))
    detail = error(api("GET", f"/Users?filter={many}"), 400, "invalidFilter")
    assert detail.startswith("The filter has more than 200 comparisons")


def test_paging_parameters_must_be_integers(api):
    assert error(api("GET", "/Users?count=ten"), 400, "invalidValue") == (
        "count must be an integer, not “ten”."
    )
    assert error(api("GET", "/Users?startIndex=x"), 400, "invalidValue") == (
        "startIndex must be an integer, not “x”."
    )


def test_oversize_body_is_413(api, settings):
    settings.SCIM_MAX_BODY_BYTES = 1000
    body = user(title="x" * 2000)
    detail = error(api("POST", "/Users", body), 413)
    assert detail == "The request body is larger than the limit of 1000 bytes."
    nothing_written()


def test_missing_bad_and_revoked_tokens_are_401(api):
    response = api("GET", "/Users", secret=None)
    assert error(response, 401).startswith("Send a SCIM token as “Authorization: Bearer")
    assert response["WWW-Authenticate"] == 'Bearer realm="SCIM"'
    assert error(api("GET", "/Users", secret="assc_not-a-token"), 401) == (
        "The SCIM token is not valid."
    )
    token, secret = scim_token_create(name="Old Entra", read_only=False, actor=None)
    scim_token_revoke(token=token, actor=None)
    assert error(api("POST", "/Users", user(), secret=secret), 401) == (
        "The SCIM token was revoked."
    )
    nothing_written()
    # The revoked token's attempt is logged against it, so IT sees who still calls.
    assert ScimRequest.objects.get(token=token).status == 401
    assert ScimRequest.objects.filter(token=None, status=401).count() == 2


def test_read_only_token_reads_but_gets_403_on_writes(api):
    member = make_member()
    _token, secret = scim_token_create(name="Reporting", read_only=True, actor=None)
    assert api("GET", f"/Users/{member.pk}", secret=secret).status_code == 200
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}
    assert api("POST", "/Users/.search", search, secret=secret).status_code == 200
    detail = error(api("POST", "/Users", user(), secret=secret), 403)
    assert detail == "The token “Reporting” is read-only; this request changes users."
    off = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}
    error(api("PATCH", f"/Users/{member.pk}", off, secret=secret), 403)
    error(api("DELETE", f"/Users/{member.pk}", secret=secret), 403)
    member.refresh_from_db()
    assert member.is_active and member.scim_hidden_at is None
    nothing_written(count_before=1)


def test_stale_if_match_is_412_and_changes_nothing(api):
    member = make_member(title="Engineer")
    version = api("GET", f"/Users/{member.pk}").json()["meta"]["version"]
    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "CTO"}]}
    assert api("PATCH", f"/Users/{member.pk}", body, if_match=version).status_code == 200
    detail = error(
        api(
            "PATCH",
            f"/Users/{member.pk}",
            body | {"Operations": [{"op": "replace", "path": "active", "value": False}]},
            if_match=version,
        ),
        412,
    )
    assert detail.startswith(f"The user changed since version {version}")
    member.refresh_from_db()
    assert member.is_active and member.title == "CTO"
    assert not Event.objects.exists()
    current = api("GET", f"/Users/{member.pk}")
    assert api("GET", f"/Users/{member.pk}", if_none_match=current["ETag"]).status_code == 304


def test_a_failing_patch_changes_nothing_even_after_valid_operations(api):
    member = make_member(title="Engineer")
    body = {
        "schemas": [PATCH],
        "Operations": [
            {"op": "replace", "path": "title", "value": "CTO"},
            {"op": "replace", "path": "active", "value": False},
            {"op": "replace", "path": 'emails[type eq "work"].value', "value": "nope"},
        ],
    }
    detail = error(api("PATCH", f"/Users/{member.pk}", body), 400, "invalidValue")
    assert detail == "emails.value: Enter a valid email address."
    member.refresh_from_db()
    assert (member.title, member.is_active) == ("Engineer", True)
    assert not Event.objects.exists()


def test_a_failing_put_changes_nothing(api):
    taken = make_member(email="taken@example.com")
    member = make_member(title="Engineer")
    body = api("GET", f"/Users/{member.pk}").json()
    body.update(title="CTO", active=False, emails=[{"value": "taken@example.com", "type": "work"}])
    error(api("PUT", f"/Users/{member.pk}", body), 409, "uniqueness")
    member.refresh_from_db()
    assert (member.title, member.is_active, taken.email) == ("Engineer", True, "taken@example.com")
    assert not Event.objects.exists()


def test_a_patch_value_of_the_wrong_type_names_the_attribute(api):
    member = make_member()
    body = {
        "schemas": [PATCH],
        "Operations": [{"op": "Replace", "path": "active", "value": "maybe"}],
    }
    detail = error(api("PATCH", f"/Users/{member.pk}", body), 400, "invalidValue")
    assert detail.startswith("active: Input should be a valid boolean")
    member.refresh_from_db()
    assert member.is_active
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    ("operation", "scim_type", "expected"),
    [
        (
            {"op": "remove", "path": "userName"},
            "mutability",
            "userName: required attribute cannot be removed",
        ),
        (
            {"op": "Replace", "path": "userName", "value": None},
            "mutability",
            "userName: required attribute cannot be unassigned",
        ),
        (
            {"op": "replace", "value": {"userName": 5}},
            "invalidValue",
            "userName: Input should be a valid string",
        ),
        ({"op": "replace", "path": "id", "value": "5"}, "mutability", "'id' is read-only"),
    ],
)
def test_a_refused_patch_operation_names_the_attribute(api, operation, scim_type, expected):
    member = make_member(title="Engineer")
    body = {
        "schemas": [PATCH],
        "Operations": [{"op": "replace", "path": "title", "value": "CTO"}, operation],
    }
    assert error(api("PATCH", f"/Users/{member.pk}", body), 400, scim_type) == expected
    member.refresh_from_db()
    assert member.title == "Engineer"


def test_paging_far_past_the_end_is_an_empty_page(api):
    make_member()
    for start in ("99999999999999999999", "2"):
        body = api("GET", f"/Users?startIndex={start}&count=99999999999999999999").json()
        assert (body["totalResults"], body["itemsPerPage"], body["Resources"]) == (1, 0, [])
        assert body["startIndex"] == int(start)
    # Below 1 is read as 1 (RFC 7644 §3.4.2.4), a negative count as 0.
    body = api("GET", "/Users?startIndex=-5&count=-1").json()
    assert (body["startIndex"], body["totalResults"], body["Resources"]) == (1, 1, [])


@pytest.mark.parametrize(
    ("operations", "status", "scim_type"),
    [
        ([{"op": "frobnicate", "path": "title", "value": "x"}], 400, "invalidValue"),
        ([{"op": "replace", "path": "title["}], 400, "invalidPath"),
        ("nope", 400, "invalidSyntax"),
        ([], 400, "invalidSyntax"),
    ],
)
def test_malformed_patch_operations(api, operations, status, scim_type):
    member = make_member(title="Engineer")
    body = {"schemas": [PATCH], "Operations": operations}
    error(api("PATCH", f"/Users/{member.pk}", body), status, scim_type)
    member.refresh_from_db()
    assert member.title == "Engineer"


def test_unknown_user_and_unknown_path_are_404_with_a_body(api):
    assert error(api("GET", "/Users/12345"), 404) == "There is no user with the id “12345”."
    assert error(api("GET", "/Users/abc"), 404) == "There is no user with the id “abc”."
    assert error(api("GET", "/Groups"), 404).startswith("There is nothing at /scim/v2/Groups")


def test_discovery_endpoints_refuse_writes_with_405(api):
    for path in ("/ServiceProviderConfig", "/ResourceTypes", "/Schemas"):
        assert error(api("POST", path, {}), 405) == "POST is not allowed here."


def test_rate_limit_429_with_retry_after(api, settings, clock):
    settings.SCIM_RATE_LIMIT = 3
    settings.SCIM_RATE_WINDOW = 60
    for _ in range(3):
        assert api("GET", "/ServiceProviderConfig").status_code == 200
    response = api("GET", "/Users")
    detail = error(response, 429)
    assert detail == (
        "Too many requests with the token “Okta production”: at most 3 per 60 seconds. "
        "Retry in 30 s."
    )
    assert response["Retry-After"] == "30"
    # Another token has its own budget.
    _token, other = scim_token_create(name="Entra", read_only=False, actor=None)
    assert api("GET", "/Users", secret=other).status_code == 200


def test_an_unexpected_failure_is_a_scim_500_and_is_logged(api, monkeypatch, caplog):
    from provisioning import api as scim_api

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(scim_api, "render", broken)
    member = make_member()
    response = api("GET", f"/Users/{member.pk}")
    detail = error(response, 500)
    request_id = response["X-Request-ID"]
    assert request_id in detail
    assert ScimRequest.objects.get(request_id=request_id).status == 500
    assert "a bug" in caplog.text


def test_stale_if_match_on_delete_is_412_and_the_member_stays(api):
    member = make_member()
    error(api("DELETE", f"/Users/{member.pk}", if_match='W/"stale"'), 412)
    member.refresh_from_db()
    assert member.is_active and member.scim_hidden_at is None
    assert not Event.objects.exists()


def test_requests_without_a_valid_token_are_rate_limited_per_address(api, settings, clock):
    settings.SCIM_UNAUTHENTICATED_RATE_LIMIT = 2
    settings.SCIM_RATE_WINDOW = 60
    here = {"address": "203.0.113.7"}
    assert api("GET", "/Users", secret=None, **here).status_code == 401
    assert api("GET", "/Users", secret="assc_guess", **here).status_code == 401
    response = api("POST", "/Users", user(), secret="assc_guess", **here)
    detail = error(response, 429)
    assert detail.startswith(
        "Too many requests without a valid SCIM token from 203.0.113.7: at most 2 per 60 seconds. "
        "Retry in 30 s;"
    )
    assert response["Retry-After"] == "30"
    for _ in range(5):
        assert api("GET", "/Users", secret=None, **here).status_code == 429
    # The flood past the limit is not written to the request log: its first refusal is.
    assert list(ScimRequest.objects.order_by("pk").values_list("status", flat=True)) == [
        401,
        401,
        429,
    ]
    # A valid token from the same address is not locked out; another address has its own count.
    assert api("GET", "/Users", **here).status_code == 200
    assert api("GET", "/Users", secret=None, address="198.51.100.9").status_code == 401
    nothing_written()
