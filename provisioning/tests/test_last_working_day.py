"""The last working day over SCIM: our extension's lastWorkingDay, served, set, cleared,
advertised in discovery, and kept by a PUT that does not carry the extension."""

from __future__ import annotations

from datetime import date

import pytest

from assetsonar.models import AuditEvent
from conftest import make_member
from members.models import Member
from provisioning.schema import ASSETSONAR, CORE, ENTERPRISE

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _user(**extra) -> dict:
    return {
        "schemas": [CORE, ASSETSONAR],
        "userName": "ada@example.com",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": "ada@example.com", "type": "work", "primary": True}],
        "active": True,
        **extra,
    }


@pytest.mark.django_db(transaction=True)
def test_a_user_created_with_a_last_working_day_has_it_and_serves_it(scim):
    response = scim("POST", "/Users", _user(**{ASSETSONAR: {"lastWorkingDay": "2026-12-13"}}))

    assert response.status_code == 201, response.text
    member = Member.objects.get(email="ada@example.com")
    assert member.last_working_day == date(2026, 12, 13)
    body = scim("GET", f"/Users/{member.pk}").json()
    assert body[ASSETSONAR] == {"lastWorkingDay": "2026-12-13"}
    assert ASSETSONAR in body["schemas"]


@pytest.mark.django_db(transaction=True)
def test_patch_sets_moves_and_removes_it_and_each_change_is_audited(scim):
    member = make_member(email="ada@example.com", scim_user_name="ada@example.com")
    path = f"{ASSETSONAR}:lastWorkingDay"

    def patch(op):
        return scim("PATCH", f"/Users/{member.pk}", {"schemas": [PATCH], "Operations": [op]})

    assert patch({"op": "add", "path": path, "value": "2026-12-13"}).status_code == 200
    member.refresh_from_db()
    assert member.last_working_day == date(2026, 12, 13)
    # Entra sends a dateTime for a date attribute: its date part is the day.
    assert patch({"op": "replace", "path": path, "value": "2026-12-18T00:00:00Z"}).ok
    member.refresh_from_db()
    assert member.last_working_day == date(2026, 12, 18)
    assert patch({"op": "remove", "path": path}).ok
    member.refresh_from_db()
    assert member.last_working_day is None

    changes = [
        a.changes["last_working_day"]
        for a in AuditEvent.objects.filter(action=AuditEvent.Action.CHANGED).order_by("id")
        if "last_working_day" in a.changes
    ]
    assert changes == [[None, "2026-12-13"], ["2026-12-13", "2026-12-18"], ["2026-12-18", None]]


@pytest.mark.django_db(transaction=True)
def test_a_bad_date_is_refused_with_the_attribute_named_and_nothing_changes(scim):
    member = make_member(email="ada@example.com", last_working_day=date(2026, 12, 13))

    response = scim(
        "PATCH",
        f"/Users/{member.pk}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "replace", "path": f"{ASSETSONAR}:lastWorkingDay", "value": "13/12/2026"}
            ],
        },
    )

    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"{ASSETSONAR}:lastWorkingDay: “13/12/2026” is not a date; send it as YYYY-MM-DD, "
        "e.g. 2026-12-13."
    )
    member.refresh_from_db()
    assert member.last_working_day == date(2026, 12, 13)


@pytest.mark.django_db(transaction=True)
def test_a_put_without_the_extension_keeps_the_day_and_the_option(scim):
    member = make_member(
        email="ada@example.com",
        last_working_day=date(2026, 12, 13),
        deactivate_on_last_day=False,
        time_zone="America/New_York",
        personal_email="ada@home.example",
    )
    body = _user(title="Countess")
    body["schemas"] = [CORE]

    assert scim("PUT", f"/Users/{member.pk}", body).status_code == 200

    member.refresh_from_db()
    assert member.title == "Countess"
    assert member.last_working_day == date(2026, 12, 13)
    assert member.deactivate_on_last_day is False
    assert (member.time_zone, member.personal_email) == ("America/New_York", "ada@home.example")


@pytest.mark.django_db(transaction=True)
def test_discovery_advertises_the_extension_and_its_attribute(scim):
    schemas = {s["id"]: s for s in scim("GET", "/Schemas").json()["Resources"]}
    ours = schemas[ASSETSONAR]
    assert [a["name"] for a in ours["attributes"]] == ["lastWorkingDay"]
    assert ours["attributes"][0]["type"] == "string"
    assert "YYYY-MM-DD" in ours["attributes"][0]["description"]
    assert scim("GET", f"/Schemas/{ASSETSONAR}").status_code == 200

    user_type = scim("GET", "/ResourceTypes/User").json()
    assert user_type["schemaExtensions"] == [
        {"schema": ENTERPRISE, "required": False},
        {"schema": ASSETSONAR, "required": False},
    ]
