"""The action kinds: one module each, registered in `base.REGISTRY` when imported here.

The import order is the order of the builder's "Add action" menu.
"""

from automations.actions import mdm_lock, revoke_licenses, webhook  # noqa: E402, F401, I001
from automations.actions.base import (
    REGISTRY,
    ActionKind,
    ActionSpec,
    get_kind,
    kind_choices,
    log_label,
    register,
)

__all__ = [
    "REGISTRY",
    "ActionKind",
    "ActionSpec",
    "get_kind",
    "kind_choices",
    "log_label",
    "register",
]
