"""What would happen: the dry run of a trigger for members (the deactivate dialogs, issue 10), and
who an automation would run for now (the automation page).

The preview is computed by the code the engine runs, with no write: the member's snapshot as the
event would carry it (`conditions.member_snapshots` + `engine.events.event_snapshot`), the
automations matched by `conditions.matches`, and each action's targets and skip reasons from its
kind's `plan()` (actions/base.py), which shares its target selection with the kind's `prepare()`.
A fixed number of queries for any number of members, licenses, devices and automations (one set
per kind of action, not per action). What only sending can tell (a webhook receiver that is down,
an MDM vendor refusing) is not known in advance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Prefetch
from django.db.models.functions import Lower
from django.utils import timezone

from automations import conditions as cond
from automations import delays, lastday, triggers
from automations.actions import REGISTRY, ActionKind, Target, get_kind
from automations.engine.common import Prep, RunContext
from automations.engine.events import event_snapshot
from automations.lastday import normalized
from automations.models import Action, Automation, Condition, Event, Execution

# The events a deactivation sets off now.
DEACTIVATION_EVENTS: tuple[str, ...] = (triggers.MEMBER_DEACTIVATED,)
# The events a member's last working day sets off: the "Member's last working day" trigger at
# each automation's offset (automations/lastday.py), and the deactivation at the day's end (with
# "deactivate automatically" on, members.services.members_deactivate_due).
LAST_WORKING_DAY_EVENTS: tuple[str, ...] = (
    triggers.MEMBER_LAST_WORKING_DAY,
    triggers.MEMBER_DEACTIVATED,
)


@dataclass
class PlannedStep:
    """One action of a planned run, in the builder's order, with its targets."""

    action: Action
    kind: ActionKind | None
    phrase: str  # its part of the automation's sentence: "revoke user-based licenses"
    targets: list[Target] = field(default_factory=list)
    # When it runs after the trigger. Per-action delays fill this in ("after 7 days"); ""
    # means immediately.
    when: str = ""
    # What it waits for: "approval by the IT Manager role", "“Trigger webhook” (action 1) to
    # succeed"; "" when nothing.
    waits_for: str = ""

    @property
    def to_do(self) -> list[Target]:
        """The targets it would act on."""
        return [t for t in self.targets if t.acted_on]

    @property
    def skipped(self) -> list[Target]:
        return [t for t in self.targets if not t.acted_on]

    @property
    def label(self) -> str:
        return self.kind.log_label if self.kind else self.action.kind

    @property
    def count_label(self) -> str:
        """ "3 license seats", "1 device lock"."""
        n = len(self.to_do)
        one, many = self.kind.target_noun if self.kind else ("target", "targets")
        return f"{n} {one if n == 1 else many}"


@dataclass
class PlannedRun:
    """An enabled automation the event would run for a member, and what each action does."""

    automation: Automation
    event: str  # the trigger event key
    steps: list[PlannedStep] = field(default_factory=list)
    # When the trigger fires, for a timed trigger: "2 days before their last working day, at
    # 09:00 their time" and the moment in the member's zone; "" / None for the others.
    when: str = ""
    due: datetime | None = None


@dataclass
class MemberPreview:
    """What the events would set off for one member now."""

    member_id: int
    full_name: str
    snapshot: dict[str, Any]
    runs: list[PlannedRun] = field(default_factory=list)


def _automations(trigger_events: Sequence[str]) -> list[Automation]:
    """The enabled automations of the events, in the engine's order (by name: executions are
    created, and prepared, in that order), with conditions and actions (3 queries)."""
    return list(
        Automation.objects.filter(enabled=True, trigger_event__in=list(trigger_events))
        .prefetch_related(
            Prefetch("conditions", queryset=Condition.objects.order_by("position", "id")),
            Prefetch("actions", queryset=Action.objects.order_by("position", "id")),
        )
        .order_by("name", "id")
    )


def event_snapshots(
    member_ids: Sequence[int], *, last_working_day: bool = False
) -> dict[int, dict[str, Any]]:
    """The member snapshots the deactivation event would carry now (3 queries), as
    `engine.events.event_record` writes them. `last_working_day`: as at the end of their last
    working day (the reason `members_deactivate_due` gives; their data as it is today)."""
    from members.models import Member

    custody: dict[int, list[int]] = {}
    snapshots = cond.member_snapshots(member_ids, custody=custody)
    days: dict[int, tuple[date | None, str]] = {}
    if last_working_day:
        from members.selectors import company_time_zone
        from members.services import last_day_reason

        company = company_time_zone()
        days = {
            pk: (day, zone or company)
            for pk, day, zone in Member.objects.filter(pk__in=list(snapshots)).values_list(
                "pk", "last_working_day", "time_zone"
            )
        }
    out = {}
    for pk, snapshot in snapshots.items():
        reason = ""
        if last_working_day:
            day, zone = days.get(pk, (None, ""))
            snapshot["last_working_day"] = day.isoformat() if day else ""
            reason = last_day_reason(day, zone, timedelta(0)) if day else ""
            # As the timed trigger's event carries it (automations/lastday.py).
            snapshot["trigger"] = {
                "last_working_day": snapshot["last_working_day"],
                "time_zone": zone,
            }
        snapshot["status"] = Member.Status.DEACTIVATED
        out[pk] = event_snapshot(
            snapshot, custody_asset_ids=custody.get(pk, []), deactivation_reason=reason
        )
    return out


def _waits_for(gate: Action, kind: ActionKind | None) -> str:
    if getattr(kind, "holds_later", False):
        return (kind.summary(kind.read(gate)) if kind else "").removeprefix("wait for ")
    label = kind.log_label if kind else gate.kind
    return f"“{label}” (action {gate.position + 1}) to succeed"


def action_when(action: Action) -> str:
    """When the action runs after the trigger, in words ("after 7 days"); "" for immediately."""
    return delays.label(action.delay) if action.delay else ""


def _due(automation: Automation, snapshot: dict[str, Any]) -> datetime | None:
    """When a timed trigger would fire for the member (their last working day in the snapshot,
    as `event_snapshots(last_working_day=True)` puts it), or None."""
    trigger = snapshot.get("trigger") or {}
    if automation.trigger_event != triggers.MEMBER_LAST_WORKING_DAY or not trigger.get(
        "last_working_day"
    ):
        return None
    day = date.fromisoformat(trigger["last_working_day"])
    return lastday.due_at(day, trigger["time_zone"], automation.trigger_options)


def preview_members(
    member_ids: Sequence[int],
    *,
    trigger_events: Sequence[str] = DEACTIVATION_EVENTS,
    last_working_day: bool = False,
) -> dict[int, MemberPreview]:
    """What the trigger events would set off now for each member: every enabled automation whose
    conditions match the snapshot the event would carry, and for each of its actions, in the
    builder's order, its targets with the reasons for what would be skipped. Reads only; a
    fixed number of queries whatever the number of members, automations and targets (3 for the
    automations, 3 for the snapshots, then each kind's plan once for all its actions)."""
    ids = list(dict.fromkeys(member_ids))
    if not ids:
        return {}
    automations = _automations(trigger_events)
    snapshots = event_snapshots(ids, last_working_day=last_working_day) if automations else {}
    if not automations:
        from members.models import Member

        snapshots = {
            pk: {"id": pk, "full_name": name}
            for pk, name in Member.objects.filter(pk__in=ids).values_list("pk", "full_name")
        }
    previews = {
        pk: MemberPreview(pk, snapshots[pk].get("full_name", ""), snapshots[pk])
        for pk in ids
        if pk in snapshots
    }
    now = timezone.now()
    # (wave, member order, automation order, position): the order the engine prepares in,
    # so that what an earlier action takes a later one does not get.
    work: list[tuple[tuple, PlannedStep, Prep]] = []
    for m, preview in enumerate(previews.values()):
        for a, automation in enumerate(automations):
            if not cond.matches(automation.conditions.all(), automation.match, preview.snapshot):
                continue
            due = _due(automation, preview.snapshot)
            if automation.trigger_event == triggers.MEMBER_LAST_WORKING_DAY and due is None:
                continue  # no last working day: this trigger never fires for them
            run = PlannedRun(automation, automation.trigger_event, due=due)
            if due is not None:
                zone = ZoneInfo(preview.snapshot["trigger"]["time_zone"])
                run.when = (
                    f"{lastday.describe(automation.trigger_options)}: "
                    f"{due.astimezone(zone):%-d %b %H:%M} {zone.key}"
                )
            preview.runs.append(run)
            event = Event(
                kind=automation.trigger_event,
                member_id=preview.member_id,
                occurred_at=due or now,
                member_snapshot=preview.snapshot,
            )
            execution = Execution(
                automation=automation,
                automation_name=automation.name,
                member_id=preview.member_id,
            )
            wave, waits_for = 0, ""
            for action in automation.actions.all():
                kind = get_kind(action.kind)
                step = PlannedStep(
                    action=action,
                    kind=kind,
                    phrase=kind.summary(kind.read(action)) if kind else "",
                    when=action_when(action),
                    waits_for=waits_for,
                )
                run.steps.append(step)
                if kind is not None:
                    work.append(
                        ((wave, m, a, action.position), step, Prep(execution, action, event))
                    )
                if not action.continue_on_error or getattr(kind, "holds_later", False):
                    wave, waits_for = wave + 1, _waits_for(action, kind)
    work.sort(key=lambda entry: entry[0])
    context = RunContext(now=now)
    for key, kind in REGISTRY.items():
        of_kind = [(step, prep) for _, step, prep in work if prep.action.kind == key]
        if not of_kind:
            continue
        plans = kind.plan(items=[prep for _, prep in of_kind], context=context)
        for (step, _), targets in zip(of_kind, plans, strict=True):
            step.targets = targets
    return previews


def member_preview(
    member, *, trigger_events: Sequence[str] = DEACTIVATION_EVENTS, last_working_day=False
) -> MemberPreview:
    """`preview_members` for one member."""
    found = preview_members(
        [member.pk], trigger_events=trigger_events, last_working_day=last_working_day
    )
    return found.get(member.pk) or MemberPreview(member.pk, member.full_name, {})


@dataclass
class KindTotal:
    """One kind of action across a selection: how many targets it would act on, and how many
    it would skip, by reason."""

    kind: ActionKind
    to_do: int = 0
    skipped: Counter = field(default_factory=Counter)
    members: set = field(default_factory=set)

    @property
    def noun(self) -> str:
        one, many = self.kind.target_noun
        return one if self.to_do == 1 else many

    @property
    def skipped_count(self) -> int:
        return sum(self.skipped.values())


@dataclass
class SelectionPreview:
    """What deactivating a selection of members would set off, in totals."""

    members: int
    matched: int  # members at least one automation runs for
    # Each automation, for how many of the members, and its actions' phrases.
    runs: list[tuple[Automation, int, list[str]]]
    kinds: list[KindTotal]


def preview_selection(
    member_ids: Sequence[int], *, trigger_events: Sequence[str] = DEACTIVATION_EVENTS
) -> SelectionPreview:
    """Totals of `preview_members` for a selection (the bulk-deactivate dialog): members,
    automations and, per kind of action, targets to act on and skipped (the same fixed number of
    queries)."""
    previews = preview_members(member_ids, trigger_events=trigger_events)
    runs: dict[int, list] = {}
    kinds: dict[str, KindTotal] = {}
    for preview in previews.values():
        for run in preview.runs:
            entry = runs.setdefault(
                run.automation.pk, [run.automation, 0, [step.phrase for step in run.steps]]
            )
            entry[1] += 1
            for step in run.steps:
                if step.kind is None:
                    continue
                total = kinds.setdefault(step.kind.key, KindTotal(step.kind))
                total.members.add(preview.member_id)
                for target in step.targets:
                    if target.acted_on:
                        total.to_do += 1
                    elif target.key != "none":
                        total.skipped[target.skip_reason] += 1
    order = list(REGISTRY)
    return SelectionPreview(
        members=len(previews),
        matched=sum(1 for p in previews.values() if p.runs),
        runs=sorted(
            ((automation, n, phrases) for automation, n, phrases in runs.values()),
            key=lambda run: (run[0].name, run[0].pk),
        ),
        kinds=sorted(kinds.values(), key=lambda t: order.index(t.kind.key)),
    )


# --- Who an automation would run for now -------------------------------------------------------

# The members an automation's trigger can happen to: deactivation triggers happen to active
# members, reactivation to deactivated ones; a timed trigger (the last working day) to the
# members with a day set, whatever their status, as automations/lastday.py fires it.
AUDIENCE_STATUS: dict[str, str] = {triggers.MEMBER_REACTIVATED: "deactivated"}
# Members checked one by one when a condition cannot be a database filter.
SCAN_LIMIT = 2000
SCAN_CHUNK = 500
AUDIENCE_ORDERING = [Lower("full_name"), "id"]


@dataclass
class Audience:
    """The members an automation would run for if its trigger happened to them now.

    In the database (`queryset`, paged by the caller) when every condition can be a filter
    (`conditions.conditions_q`); otherwise the members are checked with `conditions.matches` on
    their snapshots, at most SCAN_LIMIT of them (`checked`, `matched`), narrowed first by the
    conditions that can be a filter when all must match."""

    status: str
    queryset: Any = None
    matched: list[Any] = field(default_factory=list)
    checked: int = 0
    of: int = 0  # members of that status the scan could have checked
    left_out: list[str] = field(default_factory=list)  # conditions checked one by one
    # When it would run for them, from the trigger registry: "if they were deactivated", "2 days
    # before their last working day, at 09:00 their time".
    would_run: str = ""
    # The members of a timed trigger: those with a last working day set (any status).
    last_day: bool = False

    @property
    def in_database(self) -> bool:
        return self.queryset is not None

    @property
    def one(self) -> str:
        """ "active member", "member with a last working day set"."""
        return "member with a last working day set" if self.last_day else f"{self.status} member"

    @property
    def many(self) -> str:
        return "members with a last working day set" if self.last_day else f"{self.status} members"


def automation_audience(automation: Automation) -> Audience:
    """Who `automation` would run for now (uses its prefetched conditions). In the database:
    no query until the caller pages the queryset. Checked one by one: 2 queries, then 3 per
    SCAN_CHUNK members checked."""
    from automations.selectors import condition_phrase
    from members.models import Member

    status = AUDIENCE_STATUS.get(automation.trigger_event, Member.Status.ACTIVE)
    event = triggers.get_event(automation.trigger_module, automation.trigger_event)
    would_run = event.would_run(automation.trigger_options) if event else ""
    timed = bool(event and event.timed)
    conditions = list(automation.conditions.all())
    q, left = cond.conditions_q(conditions, automation.match)
    if timed:
        # The members whose day, moved by the offset, is not past (yesterday in UTC still
        # counts: zones run up to a day behind); a day long gone fires no more.
        offset = timedelta(days=normalized(automation.trigger_options)["offset_days"])
        first = (timezone.now() - timedelta(days=1)).date() - offset
        base = Member.objects.filter(last_working_day__gte=first).filter(q)
    else:
        base = Member.objects.filter(status=status).filter(q)
    found = {"would_run": would_run, "last_day": timed}
    if not left:
        # Counted in key order (no sort of what matches); the pages order it by name.
        return Audience(
            status,
            queryset=base.only("id", "full_name", "email", "department").order_by("pk"),
            **found,
        )
    audience = Audience(
        status,
        of=base.count(),
        left_out=[condition_phrase(c.field, c.operator, c.value) for c in left],
        **found,
    )
    ids = list(base.order_by(*AUDIENCE_ORDERING).values_list("pk", flat=True)[:SCAN_LIMIT])
    for start in range(0, len(ids), SCAN_CHUNK):
        chunk = ids[start : start + SCAN_CHUNK]
        snapshots = cond.member_snapshots(chunk)
        audience.matched += [
            snapshots[pk]
            for pk in chunk
            if pk in snapshots and cond.matches(conditions, automation.match, snapshots[pk])
        ]
    audience.checked = len(ids)
    return audience
