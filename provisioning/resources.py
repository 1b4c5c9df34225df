"""A Member as a SCIM User, and a SCIM User as the fields of a Member.

scim2-models validates the incoming JSON (types, schema URNs; `"active": "False"` is read as a
boolean), applies PATCH operations and serialises responses with `attributes` /
`excludedAttributes`. The mapping to Member columns is ours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from pydantic import ValidationError as PydanticValidationError
from scim2_models import Context, EnterpriseUser, ResponseParameters

from members.models import Member
from provisioning.errors import invalid_syntax, invalid_value
from provisioning.schema import (
    ASSETSONAR,
    CORE,
    ENTERPRISE,
    LAST_WORKING_DAY,
    SCIM_USER,
    AssetSonarUser,
)


def user_version(member: Member) -> str:
    """A weak ETag that changes with every save (updated_at is auto_now)."""
    return f'W/"{int(member.updated_at.timestamp() * 1_000_000):x}"'


def _timestamp(moment) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def member_to_json(member: Member, base: str) -> dict[str, Any]:
    """The member as a SCIM User document, every attribute we serve."""
    location = f"{base}/Users/{member.pk}"
    name = {"formatted": member.full_name}
    if member.given_name:
        name["givenName"] = member.given_name
    if member.family_name:
        name["familyName"] = member.family_name
    data: dict[str, Any] = {
        "schemas": [CORE],
        "id": str(member.pk),
        "userName": member.scim_user_name or member.email,
        "name": name,
        "active": member.is_active,
        "emails": [{"value": member.email, "type": "work"}],
        "meta": {
            "resourceType": "User",
            "created": _timestamp(member.created_at),
            "lastModified": _timestamp(member.updated_at),
            "location": location,
            "version": user_version(member),
        },
    }
    if member.external_id:
        data["externalId"] = member.external_id
    if member.title:
        data["title"] = member.title
    if member.location:
        data["addresses"] = [{"type": "work", "locality": member.location}]
    enterprise: dict[str, Any] = {}
    if member.employee_id:
        enterprise["employeeNumber"] = member.employee_id
    if member.department:
        enterprise["department"] = member.department
    if member.manager_id:
        enterprise["manager"] = {
            "value": str(member.manager_id),
            "$ref": f"{base}/Users/{member.manager_id}",
        }
    if enterprise:
        data["schemas"].append(ENTERPRISE)
        data[ENTERPRISE] = enterprise
    if member.last_working_day:
        data["schemas"].append(ASSETSONAR)
        data[ASSETSONAR] = {"lastWorkingDay": member.last_working_day.isoformat()}
    return data


def _scim_name(part: Any) -> str:
    # pydantic names a field by its Python name when the input came as an object (a PATCH
    # without a path): user_name is userName to the client.
    text = str(part).strip("`")
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), text) if ":" not in text else text


def describe_validation_error(exc: PydanticValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(_scim_name(p) for p in error["loc"] if not isinstance(p, int))
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts)


def check_email_values(value: Any) -> None:
    """Refuse an address the portal's member form refuses, with the form's message. Checked
    before scim2-models sees it, whose own (stricter, different) email check would otherwise
    answer with another reason."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        address = item.get("value") if isinstance(item, dict) else item
        if isinstance(address, str) and not _is_email(address.strip()):
            raise invalid_value("emails.value: Enter a valid email address.")


def parse_user(body: Any) -> Any:
    """The request body as a scim2-models User; 400 naming the attribute when it is not one."""
    if not isinstance(body, dict):
        raise invalid_syntax("The request body must be a JSON object (a SCIM User).")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or CORE not in schemas:
        raise invalid_syntax(f"schemas: a User must list “{CORE}”.")
    unknown = [s for s in schemas if s not in (CORE, ENTERPRISE, ASSETSONAR)]
    if unknown:
        raise invalid_syntax(
            f"schemas: “{unknown[0]}” is not served here; a User may use {CORE}, {ENTERPRISE} "
            f"and {ASSETSONAR}."
        )
    check_email_values(body.get("emails") or [])
    try:
        return SCIM_USER.model_validate(body)
    except PydanticValidationError as exc:
        raise invalid_value(describe_validation_error(exc)) from exc


def user_from_member(member: Member, base: str) -> Any:
    return SCIM_USER.model_validate(member_to_json(member, base))


def render(member: Member, base: str, params: Any = None) -> dict[str, Any]:
    """The member as a response document, honouring attributes/excludedAttributes.

    Without those parameters the document is served as built: validating it through scim2-models
    only to dump it unchanged costs a few milliseconds per user, most of a 100-user page
    (test_render asserts both give the same document)."""
    if params is None:
        return member_to_json(member, base)
    user = user_from_member(member, base)
    return user.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=params)


def response_parameters(attributes: str | None, excluded: str | None) -> Any:
    data = {}
    if attributes:
        data["attributes"] = attributes
    if excluded:
        data["excludedAttributes"] = excluded
    if not data:
        return None
    try:
        return ResponseParameters[SCIM_USER].model_validate(data)
    except PydanticValidationError as exc:
        raise invalid_value(describe_validation_error(exc)) from exc


@dataclass
class Desired:
    """What a User document asks of a member: the service fields, and the status."""

    fields: dict[str, Any]
    manager_ref: str | None
    active: bool | None
    # Member fields the document sets beyond the identity ones (the last working day, when
    # the document carries our extension); absent ones keep the member's value.
    extra: dict[str, Any] = field(default_factory=dict)


def _last_working_day(value: str | None) -> date | None:
    text = (value or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise invalid_value(
            f"{LAST_WORKING_DAY}: “{text[:40]}” is not a date; send it as YYYY-MM-DD, "
            "e.g. 2026-12-13."
        ) from None


def _is_email(value: str) -> bool:
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


def _pick_email(user: Any) -> str | None:
    # A member keeps one address. The primary one wins, then the last work one (a PATCH "add"
    # appends, and what was added last is what the client means), then the last one.
    emails = [e for e in (user.emails or []) if e.value]
    for email in emails:
        if email.primary:
            return email.value
    work = [e for e in emails if (e.type or "work").lower() == "work"]
    if work:
        return work[-1].value
    return emails[-1].value if emails else None


def _pick_locality(user: Any) -> str:
    addresses = [a for a in (user.addresses or []) if a.locality]
    work = [a for a in addresses if (a.type or "work").lower() == "work"]
    chosen = (work or addresses)[-1:] if (work or addresses) else []
    return chosen[0].locality if chosen else ""


def desired_fields(user: Any, current: Member | None, *, complete: bool = False) -> Desired:
    """Map a User document onto member fields. `current` is the member being replaced.

    `complete`: the document is the member as served with a PATCH applied, so an attribute
    missing from it was removed. A PUT or POST from a client that does not know our extension
    leaves the last working day as it is."""
    user_name = (user.user_name or "").strip()
    if not user_name:
        raise invalid_value("userName is required.")
    email = _pick_email(user)
    if not email:
        if not _is_email(user_name):
            raise invalid_value(
                "emails: a member needs a work email address; send emails or an email address "
                "as userName."
            )
        email = user_name
    name = user.name
    given = (name.given_name or "").strip() if name else ""
    family = (name.family_name or "").strip() if name else ""
    full_name = (
        ((name.formatted or "").strip() if name else "")
        or " ".join(p for p in (given, family) if p)
        or (user.display_name or "").strip()
        or (current.full_name if current else "")
        or user_name[:150]
    )
    enterprise = user[EnterpriseUser]
    manager_ref = None
    if enterprise is not None and enterprise.manager is not None:
        manager_ref = (enterprise.manager.value or "").strip() or None
    fields = {
        "full_name": full_name,
        "email": email.strip(),
        "employee_id": ((enterprise.employee_number if enterprise else None) or "").strip(),
        "department": ((enterprise.department if enterprise else None) or "").strip(),
        "location": _pick_locality(user).strip(),
        "title": (user.title or "").strip(),
        "external_id": (user.external_id or "").strip(),
        "scim_user_name": user_name,
        "given_name": given,
        "family_name": family,
    }
    extra = {}
    ours = user[AssetSonarUser]
    if ours is not None:
        extra["last_working_day"] = _last_working_day(ours.last_working_day)
    elif complete:
        extra["last_working_day"] = None
    return Desired(fields=fields, manager_ref=manager_ref, active=user.active, extra=extra)
