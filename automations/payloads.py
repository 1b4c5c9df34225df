"""The JSON body a webhook receiver gets, shared by the builder's preview and the sender.

Shape follows the Standard Webhooks recommendation: {"type", "timestamp", "data"}.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

SAMPLE_SNAPSHOT = {
    "id": 1042,
    "full_name": "Jordan Rivera",
    "email": "jordan.rivera@example.com",
    "employee_id": "E01042",
    "department": "Engineering",
    "location": "Berlin",
    "title": "Senior Engineer",
    "employment_type": "full_time",
    "manager": "alex.chen@example.com",
    "status": "deactivated",
    "deactivation_reason": "Last working day",
    "assets_in_custody": 2,
    "live_entitlements": 5,
}

MEMBER_FIELDS = [
    "id",
    "full_name",
    "email",
    "employee_id",
    "department",
    "location",
    "title",
    "employment_type",
    "status",
    "deactivation_reason",
]


def build_payload(
    *,
    event_type: str,
    event_id: str,
    occurred_at: datetime | str,
    snapshot: dict[str, Any],
    automation_id: int | None,
    automation_name: str,
) -> dict[str, Any]:
    occurred = occurred_at.isoformat() if isinstance(occurred_at, datetime) else occurred_at
    member = {key: snapshot.get(key, "") for key in MEMBER_FIELDS}
    member["manager_email"] = snapshot.get("manager", "")
    return {
        "type": event_type,
        "timestamp": occurred,
        "data": {
            "event_id": str(event_id),
            "occurred_at": occurred,
            "member": member,
            "automation": {"id": automation_id, "name": automation_name},
        },
    }


def event_payload(event, automation) -> dict[str, Any]:
    """The payload for a real event (the member as recorded at the event)."""
    return build_payload(
        event_type=event.kind,
        event_id=str(event.pk),
        occurred_at=event.occurred_at,
        snapshot=event.member_snapshot,
        automation_id=automation.pk if automation else None,
        automation_name=automation.name if automation else "",
    )


def preview_payload(*, event_type: str, automation_id: int | None, automation_name: str) -> dict:
    """What the builder shows: the same shape with a sample member."""
    return build_payload(
        event_type=event_type,
        event_id="3f2b8c1e-0000-4000-8000-00000000demo",
        occurred_at="2026-11-28T09:30:00+00:00",
        snapshot=SAMPLE_SNAPSHOT,
        automation_id=automation_id,
        automation_name=automation_name or "Untitled automation",
    )
