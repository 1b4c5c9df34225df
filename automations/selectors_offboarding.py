"""What will happen to a leaver and when, and what already happened (issue 10): the steps of the
Upcoming offboardings page and its CSV (one member a row), and of the member page's "Offboarding
timeline". Read-only.

For each member, in time order:

- Each enabled "Member's last working day" automation whose conditions match them now, at its
  due time in the member's zone ("Notify manager: 7 Dec 09:00 Europe/Berlin, 2 days before"),
  computed by automations/lastday.py's own functions (`due_at`, `fire_key`): the same due
  time, the same key, so "fired" here is exactly the trigger's "fired" (a test compares with
  `lastday.last_day_plan`). Once fired: its execution and status. Its actions with their delays
  ("Revoke licenses: 14 Dec 09:00, + 7 days") while it has not fired; once fired, its delayed
  actions are real scheduled logs (below).
- The end of the last working day, when "deactivate on the last working day" is on, and the
  enabled deactivation automations that would then run, matched as the engine matches them
  (conditions.member_snapshots + conditions.matches), each action with its delay after the end
  of the day ("Revoke licenses: 16 Dec 23:59, + 7 days"). Without the option, the same
  automations "when deactivated by hand", without a time. Once deactivated: the deactivation and
  the executions it started.
- The member's delayed actions (ActionLog target type "schedule"): scheduled with their due time,
  ran, or cancelled with the reason ("Member was reactivated on …").

A fixed number of queries whatever the number of members and automations (`offboarding_plans`:
at most 9). Not the deactivate dialog's preview (selectors_preview): that one works out every
action's targets for one member; this one says when, for a page of members.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Prefetch
from django.urls import reverse
from django.utils import timezone

from automations import conditions as cond
from automations import delays, lastday
from automations.actions import log_label
from automations.models import Action, ActionLog, Automation, Condition, Event, Execution
from automations.triggers import MEMBER_DEACTIVATED, MEMBER_REACTIVATED

# Step kinds (a CSS class and a test hook each).
LAST_DAY = "last_day"  # a last-working-day automation
DAY_END = "day_end"  # the end of the day: deactivated automatically
DEACTIVATION = "deactivation"  # a deactivation automation that would run then
DEACTIVATED = "deactivated"  # the deactivation that happened
DEACTIVATION_RUN = "deactivation_run"  # an execution the deactivation started
DELAYED = "delayed"  # a delayed action's log

# Steps are shown with the member's local time; their order is by the UTC moment.
_UNDATED = datetime.max.replace(tzinfo=UTC)


def local_label(moment: datetime, zone: str) -> str:
    """ "7 Dec 09:00 Europe/Berlin" (the moment in `zone`)."""
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local.day} {local:%b %H:%M} {zone}"


def offset_label(options: dict[str, Any] | None) -> str:
    """ "2 days before", "on the day", "7 days after" (the short form of lastday.describe)."""
    days = lastday.normalized(options)["offset_days"]
    if days == 0:
        return "on the day"
    n = abs(days)
    return f"{n} day{'s' if n != 1 else ''} {'before' if days < 0 else 'after'}"


def delay_label(delay: timedelta | None) -> str:
    """ "+ 7 days", or "" for an action that runs at once."""
    label = delays.label(delay)
    return "" if label == delays.IMMEDIATELY else "+ " + label.removeprefix("after ")


@dataclass(frozen=True)
class PlannedAction:
    """One action of a step's automation: when it runs (the step's time plus its delay)."""

    label: str  # "Revoke licenses"
    delay: str  # "+ 7 days", or ""
    at: datetime | None  # UTC; None when the step has no time (deactivated by hand)
    zone: str

    @property
    def when(self) -> str:
        """When a delayed one runs (a step's own time says when the others do)."""
        return local_label(self.at, self.zone) if self.at and self.delay else ""

    @property
    def text(self) -> str:
        """ "Send an email", "Revoke licenses + 7 days (23 Dec 23:59 Europe/Berlin)"."""
        out = f"{self.label} {self.delay}" if self.delay else self.label
        return f"{out} ({self.when})" if self.when else out


@dataclass(frozen=True)
class Step:
    """One dated row: what happens (or happened) for the member, when, and where to see it."""

    kind: str
    title: str  # the automation's name, the action's label, "Deactivated automatically"
    at: datetime | None  # UTC; None: no time (deactivated by hand)
    zone: str  # the member's (or the company's)
    note: str = ""  # "2 days before", "end of the last working day", the reason of a cancel
    done: bool = False  # it happened (fired, ran, cancelled, deactivated)
    status: str = ""  # an Execution or ActionLog status, "" while planned
    status_label: str = ""
    execution_id: int | None = None
    automation: Automation | None = None
    actions: list[PlannedAction] = field(default_factory=list)

    @property
    def when(self) -> str:
        return local_label(self.at, self.zone) if self.at else "When deactivated by hand"

    @property
    def local(self) -> datetime | None:
        return self.at.astimezone(ZoneInfo(self.zone)) if self.at else None

    @property
    def day(self) -> str:
        """ "Mon 7 Dec 2026" in the member's zone (the timeline's rows by day), "" undated."""
        local = self.local
        return f"{local:%a} {local.day} {local:%b %Y}" if local else ""

    @property
    def time(self) -> str:
        """ "09:00" in the member's zone, "" undated."""
        return f"{self.local:%H:%M}" if self.local else ""

    @property
    def execution_url(self) -> str:
        if self.execution_id is None:
            return ""
        return reverse("automations:execution_detail", args=[self.execution_id])

    @property
    def text(self) -> str:
        """The step on one line (the CSV's cell): "Notify manager: 7 Dec 09:00 Europe/Berlin,
        2 days before (fired: Succeeded) [Send an email: 7 Dec 09:00 Europe/Berlin]"."""
        out = f"{self.title}: {self.when}"
        if self.note:
            out += f", {self.note}"
        if self.status_label:
            out += f" ({self.status_label})"
        if self.actions:
            out += " [" + "; ".join(a.text for a in self.actions) + "]"
        return out


def _order(step: Step) -> tuple:
    return (step.at or _UNDATED, step.kind != DAY_END)


def _actions(automation: Automation, at: datetime | None, zone: str) -> list[PlannedAction]:
    """The automation's actions in the builder's order (prefetched), each at `at` plus its
    delay."""
    return [
        PlannedAction(
            label=log_label(a.kind),
            delay=delay_label(a.delay),
            # In UTC, as the engine adds it to the event's time: 7 days are 168 hours, across
            # a daylight-saving change too.
            at=(at.astimezone(UTC) + (a.delay or timedelta(0))) if at else None,
            zone=zone,
        )
        for a in sorted(automation.actions.all(), key=lambda a: (a.position, a.pk))
    ]


def _automations() -> list[Automation]:
    """The enabled automations of the two triggers, with their conditions and actions (3
    queries; 1 when there are none)."""
    return list(
        Automation.objects.filter(enabled=True, trigger_event__in=[lastday.KEY, MEMBER_DEACTIVATED])
        .prefetch_related(
            Prefetch("conditions", queryset=Condition.objects.order_by("position", "id")),
            Prefetch("actions", queryset=Action.objects.order_by("position", "id")),
        )
        .order_by("name", "id")
    )


def _delayed_steps(member_ids: list[int], zones: dict[int, str]) -> dict[int, list[Step]]:
    """The members' delayed actions: scheduled, ran or cancelled (1 query)."""
    logs = (
        ActionLog.objects.filter(
            execution__member_id__in=member_ids, target_type=ActionLog.TargetType.SCHEDULE
        )
        .exclude(execution__event__kind=MEMBER_REACTIVATED)
        .select_related("execution")
        .only(
            "action_kind",
            "status",
            "insight",
            "due_at",
            "execution__id",
            "execution__member_id",
            "execution__automation_name",
        )
        .order_by("due_at", "pk")
    )
    out: dict[int, list[Step]] = {}
    for log in logs:
        member_id = log.execution.member_id
        scheduled = log.status == ActionLog.Status.SCHEDULED
        out.setdefault(member_id, []).append(
            Step(
                kind=DELAYED,
                title=f"{log_label(log.action_kind)} ({log.execution.automation_name})",
                at=log.due_at,
                zone=zones[member_id],
                # Scheduled: "Scheduled for …" says nothing the time does not; otherwise the
                # log's insight says when it ran or why it was cancelled.
                note="" if scheduled else log.insight,
                done=not scheduled,
                status=log.status,
                status_label=log.get_status_display(),
                execution_id=log.execution_id,
            )
        )
    return out


def _fired(keys: Iterable[str]) -> dict[str, tuple[int | None, str]]:
    """Fired trigger key → (its execution id or None, the execution's status) (1 query)."""
    rows = Event.objects.filter(key__in=list(keys)).values_list(
        "key", "executions__id", "executions__status"
    )
    out: dict[str, tuple[int | None, str]] = {}
    for key, execution_id, status in rows:
        if key not in out or out[key][0] is None:
            out[key] = (execution_id, status or "")
    return out


def _deactivation_runs(members: list[Any], zones: dict[int, str]) -> dict[int, list[Step]]:
    """For deactivated members: the executions their (latest) deactivation started (1 query;
    none when every member is active)."""
    gone = {m.pk: m.deactivated_at for m in members if not m.is_active and m.deactivated_at}
    if not gone:
        return {}
    out: dict[int, list[Step]] = {}
    rows = (
        Execution.objects.filter(member_id__in=list(gone), event__kind=MEMBER_DEACTIVATED)
        .values_list("pk", "member_id", "automation_name", "status", "event__occurred_at")
        .order_by("event__occurred_at", "pk")
    )
    labels = dict(Execution.Status.choices)
    for pk, member_id, name, status, occurred_at in rows:
        # Only this deactivation's: an earlier one (reactivated since) is its own story.
        if occurred_at < gone[member_id] - timedelta(minutes=1):
            continue
        out.setdefault(member_id, []).append(
            Step(
                kind=DEACTIVATION_RUN,
                title=name,
                at=occurred_at,
                zone=zones[member_id],
                done=True,
                status=status,
                status_label=labels.get(status, status),
                execution_id=pk,
            )
        )
    return out


def _day_end(member: Any, ends_at: datetime, zone: str, *, automatic: bool, now: datetime) -> Step:
    """The end of the last working day: deactivated automatically then, or not."""
    ended = ends_at < now
    if automatic:
        title = "Deactivated automatically"
        note = "end of the last working day" + (
            ": at the next run of the schedule" if ended else ""
        )
    elif member.is_active:
        title = "Last working day ends"
        note = "not deactivated automatically: deactivate them by hand"
    else:
        # Deactivated before: nothing runs at the end of the day.
        title = "Last working day ended" if ended else "Last working day ends"
        return Step(
            kind=DAY_END,
            title=title,
            at=ends_at,
            zone=zone,
            note="" if ended else "already deactivated: nothing runs then",
            done=ended,
            status="" if ended else "idle",
            status_label="" if ended else "Nothing runs",
        )
    return Step(
        kind=DAY_END, title=title, at=ends_at, zone=zone, note=note, done=ended and not automatic
    )


def _not_fired_note(automation: Automation, due: datetime, now: datetime) -> str:
    if due > now:
        return ""
    if due < automation.created_at:
        return "not fired: it was due before the automation was created"
    if now - due > lastday.CATCH_UP:
        return "not fired: no worker ran the schedule in time"
    return "due: fires at the next run of the schedule"


def offboarding_plans(
    members: Iterable[Any], *, company_zone: str, now: datetime | None = None
) -> dict[int, list[Step]]:
    """Member id → their steps in time order (see the module docstring), for members loaded
    with last_working_day, time_zone, deactivate_on_last_day, status and deactivated_at. At most
    9 queries: the delayed logs (1); with a last working day among them, the automations with
    their conditions and actions (3), the members' snapshots (3) and, when one is due by now,
    the fired triggers (1); with a deactivated member among them, the deactivation's
    executions (1)."""
    now = now or timezone.now()
    members = list(members)
    zones = {m.pk: m.effective_time_zone(company_zone) for m in members}
    plans: dict[int, list[Step]] = {m.pk: [] for m in members}
    if not members:
        return plans
    for pk, steps in _delayed_steps(list(plans), zones).items():
        plans[pk].extend(steps)
    for pk, steps in _deactivation_runs(members, zones).items():
        plans[pk].extend(steps)
    leavers = [m for m in members if m.last_working_day]
    automations = _automations() if leavers else []
    snapshots = cond.member_snapshots([m.pk for m in leavers]) if automations else {}
    fires: list[tuple[Any, Automation, datetime, str]] = []
    for m in members:
        zone = zones[m.pk]
        if not m.is_active and m.deactivated_at:
            plans[m.pk].append(
                Step(
                    kind=DEACTIVATED,
                    title="Deactivated",
                    at=m.deactivated_at,
                    zone=zone,
                    note=m.deactivation_reason,
                    done=True,
                )
            )
        if not m.last_working_day:
            continue
        # 23:59, as people say when a day ends (the deactivation runs at its midnight).
        ends_at = (m.last_day_ends_at(company_zone) - timedelta(minutes=1)).astimezone(UTC)
        automatic = m.is_active and m.deactivate_on_last_day
        plans[m.pk].append(_day_end(m, ends_at, zone, automatic=automatic, now=now))
        snapshot = snapshots.get(m.pk)
        if snapshot is None:
            continue
        matching = [a for a in automations if cond.matches(a.conditions.all(), a.match, snapshot)]
        for a in matching:
            if a.trigger_event == lastday.KEY:
                due = lastday.due_at(m.last_working_day, zone, a.trigger_options)
                key = lastday.fire_key(a.pk, m.pk, m.last_working_day, a.trigger_options)
                fires.append((m, a, due, key))
            elif m.is_active:
                at = ends_at if automatic else None
                plans[m.pk].append(
                    Step(
                        kind=DEACTIVATION,
                        title=a.name,
                        at=at,
                        zone=zone,
                        note="runs when deactivated" if automatic else "",
                        automation=a,
                        actions=_actions(a, at, zone),
                    )
                )
    # A trigger fires at its due time or after it: only those due by now can have fired.
    keys = [key for _m, _a, due, key in fires if due <= now]
    fired = _fired(keys) if keys else {}
    labels = dict(Execution.Status.choices)
    for m, a, due, key in fires:
        zone = zones[m.pk]
        if key in fired:
            execution_id, status = fired[key]
            step = Step(
                kind=LAST_DAY,
                title=a.name,
                at=due,
                zone=zone,
                note=offset_label(a.trigger_options),
                done=True,
                status=status or "fired",
                status_label=f"Fired: {labels.get(status, status)}" if status else "Fired",
                execution_id=execution_id,
                automation=a,
            )
        else:
            missed = _not_fired_note(a, due, now)
            step = Step(
                kind=LAST_DAY,
                title=a.name,
                at=due,
                zone=zone,
                note=", ".join(p for p in (offset_label(a.trigger_options), missed) if p),
                automation=a,
                actions=_actions(a, due, zone),
            )
        plans[m.pk].append(step)
    for steps in plans.values():
        steps.sort(key=_order)
    return plans
