"""Reads for the automation builder: the list with its last run, one automation with everything
the detail page shows, value suggestions for conditions, the MDM gate, and the plain-language
summary shared by the list, the detail page and the live preview."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db.models import F, OuterRef, Prefetch, Q, QuerySet, Subquery

from assetsonar.models import PortalSettings
from automations import conditions as cond
from automations import triggers
from automations.models import (
    Action,
    Approval,
    Automation,
    AutomationChange,
    Condition,
    Execution,
)

logger = logging.getLogger(__name__)

MDM_PERMISSION = "assets.execute_mdm_commands"


# --- Lists and pages ---------------------------------------------------------------------------


def automation_list_qs(
    *, q: str = "", trigger_event: str = "", enabled: bool | None = None, order: str = "name"
) -> QuerySet[Automation]:
    """Automations for the list page, with their last run (from the latest Execution, one
    subquery per column, no per-row queries), creator, conditions and actions."""
    latest = Execution.objects.filter(automation=OuterRef("pk")).order_by("-created_at", "-id")
    qs = (
        Automation.objects.select_related("created_by")
        .prefetch_related(
            Prefetch("conditions", queryset=Condition.objects.order_by("position", "id")),
            Prefetch("actions", queryset=Action.objects.order_by("position", "id")),
        )
        .annotate(
            last_run_at=Subquery(latest.values("created_at")[:1]),
            last_run_status=Subquery(latest.values("status")[:1]),
            last_run_id=Subquery(latest.values("pk")[:1]),
        )
    )
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(description__icontains=q))
    if trigger_event:
        qs = qs.filter(trigger_event=trigger_event)
    if enabled is not None:
        qs = qs.filter(enabled=enabled)
    orders = {
        "name": ["name", "id"],
        "-created_at": ["-created_at", "-id"],
        "-last_run": [F("last_run_at").desc(nulls_last=True), "name", "id"],
    }
    return qs.order_by(*orders.get(order, orders["name"]))


def automation_detail_qs() -> QuerySet[Automation]:
    """One automation with what its page shows (conditions, actions, both users)."""
    return Automation.objects.select_related("created_by", "updated_by").prefetch_related(
        Prefetch("conditions", queryset=Condition.objects.order_by("position", "id")),
        Prefetch("actions", queryset=Action.objects.order_by("position", "id")),
    )


def automation_changes(automation: Automation, *, limit: int = 50) -> list[AutomationChange]:
    """The automation's history, newest first."""
    return list(automation.changes.select_related("actor").order_by("-at", "-id")[:limit])


def automation_recent_executions(automation: Automation, *, limit: int = 10) -> list[Execution]:
    """The latest runs of one automation (the execution pages show the rest)."""
    return list(
        Execution.objects.filter(automation=automation)
        .select_related("member")
        .order_by("-created_at", "-id")[:limit]
    )


def condition_suggestions() -> dict[str, list[str]]:
    """Existing values for the condition fields that offer them (departments, locations), so an
    IT manager picks "Engineering" rather than guessing its spelling. One query per field."""
    from members.models import Member

    out: dict[str, list[str]] = {}
    for key, field in cond.FIELDS.items():
        if field.suggest_values:
            values = (
                Member.objects.exclude(**{key: ""})
                .order_by(key)
                .values_list(key, flat=True)
                .distinct()[:500]
            )
            out[key] = list(values)
    return out


def trigger_filter_choices() -> list[tuple[str, str]]:
    """Every (event key, "Module › Event") the list can be filtered by."""
    return [
        (event.key, f"{module.label} › {event.label}")
        for module in triggers.REGISTRY.values()
        for event in module.events.values()
    ]


def trigger_label(module_key: str, event_key: str) -> str:
    event = triggers.get_event(module_key, event_key)
    module = triggers.REGISTRY.get(module_key)
    if event is None or module is None:
        return f"{module_key} › {event_key} (no longer available)"
    return event.label


# --- The MDM gate ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MDMAvailability:
    """Whether a user may add or change an MDM lock action, and if not, why and who can help."""

    feature_enabled: bool
    has_permission: bool

    @property
    def available(self) -> bool:
        return self.feature_enabled and self.has_permission

    @property
    def problems(self) -> list[str]:
        problems = []
        if not self.feature_enabled:
            problems.append(
                "The “MDM management commands” feature is switched off for this portal. "
                "An administrator can switch it on in Django admin › Portal settings."
            )
        if not self.has_permission:
            problems.append(
                "Your account does not have the “execute MDM commands” permission. It comes "
                "with the “MDM Operator” role, which an administrator grants in "
                "Django admin › Users."
            )
        return problems


def mdm_availability(user: Any) -> MDMAvailability:
    return MDMAvailability(
        feature_enabled=PortalSettings.load().mdm_commands_enabled,
        has_permission=bool(user and user.has_perm(MDM_PERMISSION)),
    )


# --- Plain-language summary --------------------------------------------------------------------


def _join(parts: Sequence[str], word: str = "and") -> str:
    parts = [p for p in parts if p]
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} {word} {parts[-1]}"


# How each operator reads inside a sentence ("whose title contains Contractor").
SENTENCE_OPERATORS = {
    "is": "is",
    "is_not": "is not",
    "is_any_of": "is",
    "contains": "contains",
    "starts_with": "starts with",
    "is_empty": "is empty",
    "is_not_empty": "is set",
    "greater_than": "is more than",
    "less_than": "is less than",
}


def _shown(field: cond.Field, value: Any) -> str:
    if field.type == cond.CHOICE:
        return dict(cond.choice_values(field)).get(value, str(value))
    return str(value)


def condition_phrase(field_key: str, operator: str, value: Any) -> str:
    """ "department is Engineering or Sales", "number of assets in custody is more than 0"."""
    field = cond.FIELDS.get(field_key)
    op = cond.OPERATORS.get(operator)
    if field is None or op is None:
        return ""
    label = field.label[0].lower() + field.label[1:]
    verb = SENTENCE_OPERATORS.get(operator, op.label)
    if not op.needs_value:
        return f"{label} {verb}"
    if op.many:
        shown = _join([_shown(field, v) for v in (value or [])], "or")
    else:
        shown = _shown(field, value)
    return f"{label} {verb} {shown}"


def who_phrase(rows: Iterable[tuple[str, str, Any]], match: str) -> str:
    """ "any member", "a member in Engineering", "a member whose location is Berlin or …"."""
    rows = list(rows)
    if not rows:
        return "any member"
    word = "and" if match == Automation.Match.ALL else "or"
    department = None
    if match == Automation.Match.ALL:
        department = next(
            (r for r in rows if r[0] == "department" and r[1] in ("is", "is_any_of") and r[2]),
            None,
        )
    rest = [condition_phrase(*r) for r in rows if r is not department]
    phrase = "a member"
    if department:
        values = department[2] if isinstance(department[2], list) else [department[2]]
        phrase = f"a member in {_join([str(v) for v in values], 'or')}"
    if rest:
        phrase += f" whose {_join(rest, word)}"
    return phrase


def actions_phrases(actions: Iterable[tuple]) -> list[str]:
    """Each action's part of the sentence, in order (its kind's `summary`): (kind, settings)
    or (kind, settings, delay); a delayed one ends with "after 7 days"."""
    from automations import delays
    from automations.actions import get_kind

    out = []
    for key, config, *rest in actions:
        kind = get_kind(key)
        phrase = kind.summary(config) if kind else ""
        if phrase:
            delay = rest[0] if rest else None
            out.append(f"{phrase} {delays.label(delay)}" if delay else phrase)
    return out


def automation_summary(
    *,
    trigger_module: str,
    trigger_event: str,
    match: str,
    conditions: Iterable[tuple[str, str, Any]],
    actions: Iterable[tuple],
    trigger_options: dict | None = None,
) -> str:
    """One sentence: "When a member in Engineering is deactivated: revoke user-based licenses,
    lock their devices through MDM, call https://hr.example.com/hooks/offboard" (the actions
    in their order)."""
    event = triggers.get_event(trigger_module, trigger_event)
    who = who_phrase(conditions, match)
    doing = ", ".join(actions_phrases(actions)) or "nothing yet (choose at least one action)"
    # "is deactivated"; "is 2 days before their last working day (at 09:00 their time)".
    happens = event.describe(trigger_options) if event else "triggers the automation"
    return f"When {who} {happens}: {doing}"


def _stored_actions(automation: Automation) -> list[tuple]:
    """The stored actions as (kind, settings, delay), in order (uses prefetched actions)."""
    return [
        (a.kind, a.config, a.delay)
        for a in sorted(automation.actions.all(), key=lambda a: (a.position, a.pk))
    ]


def locks_devices(automation: Automation) -> bool:
    """Whether any of its actions locks devices (the MDM gate applies; uses prefetched
    actions if loaded)."""
    from automations.actions import REGISTRY

    keys = [k.key for k in REGISTRY.values() if k.locks_devices]
    return any(a.kind in keys for a in automation.actions.all())


def summary_of(automation: Automation) -> str:
    """The summary of a stored automation (uses prefetched conditions and actions)."""
    return automation_summary(
        trigger_module=automation.trigger_module,
        trigger_event=automation.trigger_event,
        trigger_options=automation.trigger_options,
        match=automation.match,
        conditions=[(c.field, c.operator, c.value) for c in automation.conditions.all()],
        actions=_stored_actions(automation),
    )


# --- What a trigger would run ------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRun:
    """An enabled automation the trigger would run now, for which of the given members, and
    what it does, in the automation's order: "revoke user-based licenses",
    "lock their devices through MDM", "call https://…" (the Upcoming offboardings page). Each
    action's targets and skip reasons: automations.selectors_preview, the deactivate dialogs."""

    automation: Automation
    members: list[Any]
    actions: list[str]


def automations_planned(
    *, member_ids: Sequence[int], trigger_event: str = triggers.MEMBER_DEACTIVATED
) -> list[PlannedRun]:
    """The enabled automations of `trigger_event` that would run for each of the members if the
    event happened now, matched as the engine matches them (conditions.member_snapshots +
    conditions.matches, the functions the engine uses on the event's snapshot), by name.
    At most 6 queries whatever the number of members and automations; 1 when no automation
    of the trigger is enabled."""
    automations = list(
        Automation.objects.filter(enabled=True, trigger_event=trigger_event)
        .prefetch_related(
            Prefetch("conditions", queryset=Condition.objects.order_by("position", "id")),
            Prefetch("actions", queryset=Action.objects.order_by("position", "id")),
        )
        .order_by("name", "id")
    )
    if not automations or not member_ids:
        return []
    snapshots = cond.member_snapshots(member_ids)
    members = {pk: _SnapshotMember(snapshot) for pk, snapshot in snapshots.items()}
    planned = []
    for automation in automations:
        matched = [
            members[pk]
            for pk in member_ids
            if pk in snapshots
            and cond.matches(automation.conditions.all(), automation.match, snapshots[pk])
        ]
        if matched:
            planned.append(
                PlannedRun(
                    automation=automation,
                    members=matched,
                    actions=actions_phrases(_stored_actions(automation)),
                )
            )
    return planned


@dataclass(frozen=True)
class _SnapshotMember:
    """Who an automation runs for, from the snapshot already read (no further query)."""

    snapshot: dict[str, Any]

    @property
    def pk(self) -> int:
        return self.snapshot["id"]

    @property
    def full_name(self) -> str:
        return self.snapshot["full_name"]


# --- The navigation's count of approvals waiting for a user's decision ---------------------------
#
# It is on every portal page (templates/base.html). Counted on each request it was a join of
# approvals and their approvers: about 1.5 ms of the ORM's time on a 20 ms page, the dashboard's
# and the license page's margin over the admin pages they are measured against (bench/pages.py).
# So it is cached per user, and forgotten when an approval or its approvers change
# (automations/signals.py, after the commit), so a new request or a decision shows on the next
# page. With REDIS_URL the cache is shared by the web server and the workers; without it each
# process has its own, and a request a worker raised shows on the portal within
# PENDING_APPROVALS_CACHE_SECONDS. A count read while a change was committing may also be kept
# that long.
PENDING_APPROVALS_CACHE_SECONDS = 30


def _pending_approvals_key(user_id: int) -> str:
    return f"approvals:pending:{user_id}"


def pending_approvals_count(user: Any) -> int:
    """How many pending approvals wait for `user`'s decision (cached, see above). A cache that
    does not answer (Redis down) costs the count its query, not the page."""
    key = _pending_approvals_key(user.pk)
    try:
        count = cache.get(key)
    except Exception:  # noqa: BLE001 - any backend's connection error
        logger.warning("The cache did not answer; approvals counted without it", exc_info=True)
        return _pending_approvals(user)
    if count is None:
        count = _pending_approvals(user)
        with contextlib.suppress(Exception):
            cache.set(key, count, PENDING_APPROVALS_CACHE_SECONDS)
    return count


def _pending_approvals(user: Any) -> int:
    return Approval.objects.filter(status=Approval.Status.PENDING, approvers=user).count()


def pending_approvals_forget(user_ids: Iterable[int]) -> None:
    """The cached counts of these users are counted again on their next page. A cache that
    does not answer cannot be told: what it holds expires within
    PENDING_APPROVALS_CACHE_SECONDS."""
    keys = [_pending_approvals_key(pk) for pk in set(user_ids)]
    if not keys:
        return
    try:
        cache.delete_many(keys)
    except Exception:  # noqa: BLE001 - any backend's connection error
        logger.warning("The cache did not answer; approvals counts expire on their own")
