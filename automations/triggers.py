"""The trigger registry: a module (what the trigger is about) and its events.

A new trigger is one `register()` call here: the builder's selects, validation, summary and the
engine all read this registry. Only events with `available=True` can be chosen in the builder;
the engine fires an event kind when a receiver records an `Event` of that kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TriggerEvent:
    key: str  # stored in Automation.trigger_event and Event.kind, e.g. "member.deactivated"
    label: str  # "Member is deactivated"
    summary: str  # "is deactivated", used in "When a member in Engineering is deactivated"
    available: bool = True


@dataclass(frozen=True)
class TriggerModule:
    key: str  # stored in Automation.trigger_module
    label: str
    subject: str  # "member": what conditions are evaluated against
    events: dict[str, TriggerEvent] = field(default_factory=dict)


REGISTRY: dict[str, TriggerModule] = {}


def register(module_key: str, module_label: str, subject: str, *events: TriggerEvent) -> None:
    module = REGISTRY.setdefault(module_key, TriggerModule(module_key, module_label, subject))
    for event in events:
        module.events[event.key] = event


def get_event(module_key: str, event_key: str) -> TriggerEvent | None:
    module = REGISTRY.get(module_key)
    return module.events.get(event_key) if module else None


def module_choices() -> list[tuple[str, str]]:
    return [(m.key, m.label) for m in REGISTRY.values()]


def event_choices(module_key: str) -> list[tuple[str, str]]:
    module = REGISTRY.get(module_key)
    if module is None:
        return []
    return [(e.key, e.label) for e in module.events.values() if e.available]


MEMBER_DEACTIVATED = "member.deactivated"
MEMBER_REACTIVATED = "member.reactivated"

register(
    "members",
    "Members",
    "member",
    TriggerEvent(MEMBER_DEACTIVATED, "Member is deactivated", "is deactivated"),
    TriggerEvent(MEMBER_REACTIVATED, "Member is reactivated", "is reactivated"),
)
