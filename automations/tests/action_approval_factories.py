"""Factories of the approval tests: an automation with a "Require approval" step before the
seed's device lock, and a member with a laptop enrolled in the built-in MDM simulator."""

from __future__ import annotations

from automations.models import Action
from automations.tests.engine_factories import make_connection, make_device, make_engine_automation
from conftest import make_member


def approval_automation(
    *, users=("ida",), role="", mdm=True, expire_days=3, name="Offboarding with approval"
):
    """Require approval (position 0), then the seed's device lock (position 1)."""
    automation = make_engine_automation(mdm=mdm, name=name)
    Action.objects.create(
        automation=automation,
        kind="approval",
        position=0,
        config={
            "role": role,
            "users": list(users),
            "expire_days": expire_days,
            "note": "Check the handover first",
        },
    )
    return automation


def member_with_laptop():
    member = make_member(full_name="Lena Leaver")
    laptop = make_device(member, make_connection(name="Demo MDM"), name="Lena's MacBook")
    return member, laptop
