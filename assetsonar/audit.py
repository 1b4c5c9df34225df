"""The one way to write the audit log."""

from __future__ import annotations

from typing import Any

from django.db import models

from assetsonar.models import AuditEvent


def client_ip(request: Any) -> str | None:
    """The address Django saw; a reverse proxy's X-Forwarded-For is trusted only behind one."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def audit_record(
    *,
    action: str,
    actor: Any = None,
    obj: models.Model | None = None,
    changes: dict[str, Any] | None = None,
    message: str = "",
    request: Any = None,
    actor_name: str = "",
) -> AuditEvent:
    """Write one audit row. Call it inside the service's transaction so both commit together."""
    event = audit_build(
        action=action,
        actor=actor,
        obj=obj,
        changes=changes,
        message=message,
        request=request,
        actor_name=actor_name,
    )
    event.save(force_insert=True)
    return event


def audit_build(
    *,
    action: str,
    actor: Any = None,
    obj: models.Model | None = None,
    changes: dict[str, Any] | None = None,
    message: str = "",
    request: Any = None,
    actor_name: str = "",
) -> AuditEvent:
    """An unsaved audit row, for writers that save many at once with bulk_create (the import)."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEvent(
        action=action,
        actor=user,
        # An actor that is no user (a SCIM token) names itself: "SCIM · Okta production".
        actor_name=actor_name
        or (user.get_username() if user else getattr(actor, "audit_name", ""))[:150],
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        changes=changes or {},
        message=(message or getattr(actor, "audit_message", ""))[:500],
        ip_address=client_ip(request),
    )


def audit_for(obj: models.Model, limit: int = 50):
    """Recent audit rows about one object, newest first. The pages show `actor_name` (kept
    with the row, and kept when the user is deleted), so the user is not joined."""
    return AuditEvent.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk))[
        :limit
    ]


def model_changes(instance: models.Model, before: dict[str, Any], fields: list[str]) -> dict:
    """{field: [old, new]} for the fields whose value changed, as strings for JSON."""
    changed = {}
    for name in fields:
        old, new = before.get(name), getattr(instance, name)
        if old != new:
            changed[name] = [None if old is None else str(old), None if new is None else str(new)]
    return changed
