"""The action kinds: one module each, registered in `base.REGISTRY` when imported here.

The order of the imports below is the order of the builder's "Add action" menu (the seed's
three first: Trigger webhook, Revoke licenses in AssetSonar, Lock devices in custody via MDM).
A new kind is one more import line here, after its module in this package.
"""

# ruff: noqa: I001 - the import order is the menu's order
from automations.actions.base import (
    REGISTRY,
    ActionKind,
    ActionSpec,
    Target,
    get_kind,
    kind_choices,
    log_label,
    register,
)
from automations.actions import webhook  # noqa: F401
from automations.actions import revoke_licenses  # noqa: F401
from automations.actions import mdm_lock  # noqa: F401
from automations.actions import email  # noqa: F401
from automations.actions import device_return  # noqa: F401
from automations.actions import approval  # noqa: F401

__all__ = [
    "REGISTRY",
    "ActionKind",
    "ActionSpec",
    "Target",
    "get_kind",
    "kind_choices",
    "log_label",
    "register",
]
