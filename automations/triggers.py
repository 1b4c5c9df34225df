"""The trigger registry: a module (what the trigger is about) and its events.

A new trigger is one `register()` call here: the builder's selects, validation, summary and the
engine all read this registry. Only events with `available=True` can be chosen in the builder;
the engine fires an event kind when a receiver records an `Event` of that kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from automations import lastday


@dataclass(frozen=True)
class TriggerEvent:
    key: str  # stored in Automation.trigger_event and Event.kind, e.g. "member.deactivated"
    label: str  # "Member is deactivated"
    summary: str  # "is deactivated", used in "When a member in Engineering is deactivated"
    available: bool = True
    # Settings of its own (Automation.trigger_options), or None: an object with `form` (the
    # builder's fields, prefix "trigger"), `default`, `initial(options)`, `errors(options)`,
    # `text(options)` ("2 days before their last working day, at 09:00 their time"),
    # `describe(options)` (the summary's phrase in place of `summary`), `runs(options,
    # conditions=)` (the automation page's "It runs …") and `insight(trigger)` (the execution
    # page's line on a fired event, from its snapshot's "trigger"), as
    # automations.lastday.LastDayOptions.
    options: Any = None
    # True for a trigger that fires at a time (a schedule) rather than on a member's save: the
    # engine runs only the automation its event names (Event.automation).
    timed: bool = False
    # "if they were deactivated", in "it would run for each of them if they were deactivated"
    # (who it would run for now); a trigger with settings says it with `options.text`.
    hypothetical: str = ""

    def describe(self, options: dict | None) -> str:
        """The summary with its settings: "is deactivated", "is 2 days before their last
        working day (at 09:00 their time)"; `summary` alone when the settings are not known
        (None: the builder's "When it fires" is unfinished)."""
        if self.options is None or options is None:
            return self.summary
        return self.options.describe(options)

    def runs(self, options: dict | None, *, conditions: bool) -> str:
        """When it runs, for the automation page's "It runs …": "when a member is deactivated
        and matches its conditions", "2 days before each matching member's last working day,
        at 09:00 their time"."""
        if self.options:
            return self.options.runs(options, conditions=conditions)
        return f"when a member {self.summary}" + (
            " and matches its conditions" if conditions else ""
        )

    def would_run(self, options: dict | None) -> str:
        """When it would run for the members it matches now: "if they were deactivated", "2 days
        before their last working day, at 09:00 their time"."""
        if self.options:
            return self.options.text(options)
        return self.hypothetical or "if its trigger happened to them"


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
MEMBER_LAST_WORKING_DAY = lastday.KEY

register(
    "members",
    "Members",
    "member",
    TriggerEvent(
        MEMBER_DEACTIVATED,
        "Member is deactivated",
        "is deactivated",
        hypothetical="if they were deactivated",
    ),
    TriggerEvent(
        MEMBER_REACTIVATED,
        "Member is reactivated",
        "is reactivated",
        hypothetical="if they were reactivated",
    ),
    TriggerEvent(
        MEMBER_LAST_WORKING_DAY,
        "Member's last working day",
        "reaches their last working day",
        options=lastday.LastDayOptions(),
        timed=True,
    ),
)
