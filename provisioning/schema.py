"""What this service provider serves, as SCIM discovery documents (RFC 7643 §5–7).

The User and enterprise schemas are scim2-models' own (User.to_schema()), cut down to the
attributes a Member stores, so that discovery tells a client exactly what survives a round trip:
an attribute we would accept and drop (phoneNumbers, photos, ...) is not published. A member
always has a name, a work email address and a status, so `name`, `emails` and `active` are
published as required; a request that leaves them out is still accepted (the name falls back to
displayName or userName, the email to userName, the status to active).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from pydantic import Field
from scim2_models import (
    URN,
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    ETag,
    Extension,
    Filter,
    Patch,
    ResourceType,
    Schema,
    SchemaExtension,
    ServiceProviderConfig,
    Sort,
    User,
)

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ASSETSONAR = "urn:ietf:params:scim:schemas:extension:assetsonar:2.0:User"
LAST_WORKING_DAY = f"{ASSETSONAR}:lastWorkingDay"


class AssetSonarUser(Extension):
    """Our own extension: what a member has that neither the core nor the enterprise schema
    names. An identity provider maps a custom attribute onto it (README, "Scheduled
    offboarding")."""

    __schema__ = URN(ASSETSONAR)

    # The examples are what scim2-tester fills the attribute with (test_compliance).
    last_working_day: str | None = Field(None, examples=["2026-12-13", "2027-01-29"])
    """The member's last working day as a date, YYYY-MM-DD (a dateTime is read as its date).
    When it ends in the member's time zone, the member is deactivated if their "deactivate on
    the last working day" option is on."""


SCIM_USER = User[EnterpriseUser | AssetSonarUser]

# attribute -> the sub-attributes kept (None: a simple attribute)
USER_ATTRIBUTES: dict[str, set[str] | None] = {
    "userName": None,
    "name": {"formatted", "givenName", "familyName"},
    "title": None,
    "active": None,
    "emails": {"value", "type"},
    "addresses": {"type", "locality"},
}
ENTERPRISE_ATTRIBUTES: dict[str, set[str] | None] = {
    "employeeNumber": None,
    "department": None,
    "manager": {"value", "$ref"},
}
REQUIRED = {"userName", "name", "active", "emails"}
# A member keeps one email address and one location: the work ones.
ONLY_WORK = {"emails", "addresses"}


def _trim(schema: Schema, keep: dict[str, set[str] | None], description: str) -> dict[str, Any]:
    data = schema.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    data["description"] = description
    attributes = []
    for attribute in data["attributes"]:
        name = attribute["name"]
        if name not in keep:
            continue
        attribute["required"] = name in REQUIRED or attribute.get("required", False)
        if keep[name] is not None:
            subs = [sub for sub in attribute.get("subAttributes", []) if sub["name"] in keep[name]]
            for sub in subs:
                if name == "emails" and sub["name"] == "value":
                    sub["required"] = True
                if name in ONLY_WORK and sub["name"] == "type":
                    sub["canonicalValues"] = ["work"]
                    sub["description"] = "Always “work”: a member keeps one, the work one."
            attribute["subAttributes"] = subs
        attributes.append(attribute)
    data["attributes"] = attributes
    data.pop("meta", None)
    return data


def base_url(request) -> str:
    return request.build_absolute_uri("/scim/v2").rstrip("/")


def _meta(request, resource_type: str, path: str) -> dict[str, str]:
    return {"resourceType": resource_type, "location": f"{base_url(request)}/{path}"}


@cache
def _schemas() -> list[dict[str, Any]]:
    user = _trim(
        User.to_schema(),
        USER_ATTRIBUTES,
        "A member of the portal: the person whose devices and licenses IT keeps track of.",
    )
    enterprise = _trim(
        EnterpriseUser.to_schema(),
        ENTERPRISE_ATTRIBUTES,
        "The member's employee number, department and manager.",
    )
    ours = AssetSonarUser.to_schema().model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    ours["name"] = "AssetSonarUser"
    ours["description"] = "What a member has beyond the core and enterprise schemas."
    ours["attributes"][0]["description"] = (
        "The member's last working day, YYYY-MM-DD (a dateTime is read as its date part). "
        "Empty or null clears it; a User document without this extension leaves it unchanged."
    )
    ours.pop("meta", None)
    system = [
        s.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
        for s in (ServiceProviderConfig.to_schema(), ResourceType.to_schema(), Schema.to_schema())
    ]
    for s in system:
        s.pop("meta", None)
    return [user, enterprise, ours, *system]


def schemas(request) -> list[dict[str, Any]]:
    return [{**s, "meta": _meta(request, "Schema", f"Schemas/{s['id']}")} for s in _schemas()]


def resource_types(request) -> list[dict[str, Any]]:
    user = ResourceType(
        id="User",
        name="User",
        description="Members of the portal",
        endpoint="/Users",
        schema_=CORE,
        schema_extensions=[
            SchemaExtension(schema_=ENTERPRISE, required=False),
            SchemaExtension(schema_=ASSETSONAR, required=False),
        ],
    ).model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    user["meta"] = _meta(request, "ResourceType", "ResourceTypes/User")
    return [user]


def service_provider_config(request) -> dict[str, Any]:
    """What is and is not supported. Groups are not served; there is no bulk, sort or password."""
    config = ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=settings.SCIM_MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="Bearer token",
                description="A SCIM token created on the portal's Provisioning page, sent as "
                "“Authorization: Bearer <token>”.",
                primary=True,
            )
        ],
    ).model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    config["meta"] = _meta(request, "ServiceProviderConfig", "ServiceProviderConfig")
    return config
