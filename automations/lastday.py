"""The "Member's last working day" trigger (issue 10): an automation that fires at a time
relative to a member's last working day, in the member's time zone ("2 days before, at 09:00",
"on the day, at 18:00", "7 days after, at 09:00").

- Its settings (`Automation.trigger_options`): {"offset_days": -2, "at": "09:00"}. The builder's
  fields, their validation and the sentence are `LastDayOptions` (the registry's
  `TriggerEvent.options`, automations/triggers.py), so the builder, the services, the admin and
  the history know nothing of this trigger in particular.
- Firing (`last_day_fire_due`, the django-q2 schedule LAST_DAY_SCHEDULE_NAME every minute): for
  each enabled automation with this trigger, the members whose due time (`due_at`: their day plus
  the offset, at the time, in their zone or the company's) has come get an Event of this kind,
  for that automation only (`Event.automation`), keyed (automation, member, day, offset, time) in
  `Event.key`, unique, so each fires once however many scans or scanners run. The event's time is
  the due time (delayed actions count from it); the snapshot says when it was due and when it
  fired, so the execution page can say how late.
- Moving the day moves what has not fired (the scan computes the due time from the day stored
  now; a fired key stays fired). Clearing it stops what has not fired. Reactivating clears a day
  that has ended (members.services.member_reactivate), so nothing "after" fires, and cancels the
  delayed actions still waiting (automations/signals.py). A day still ahead is kept on
  reactivation, with what it triggers: the member is still leaving then.
- Downtime: a scan fires whatever became due since, at most CATCH_UP ago, and never before the
  automation existed (a new "7 days after" automation does not fire for last year's leavers).
- Daylight saving: the wall time is read in the member's zone on that date. A time that does not
  exist (02:30 on the spring night in Europe) is read with the offset before the change, i.e. the
  clock then says 03:30; a time that happens twice (01:30 on the autumn night in America) is the
  first of the two (fold 0). Tests: automations/tests/test_lastday_trigger.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.db import IntegrityError, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

KEY = "member.last_working_day"
LAST_DAY_SCHEDULE_NAME = "automations.last_day_fire_due"
LAST_DAY_FUNC = "automations.tasks.last_day_fire_due"
MAX_OFFSET_DAYS = 90
DEFAULT_OPTIONS = {"offset_days": 0, "at": "18:00"}
# A scan fires what became due at most this long ago (workers down over a weekend and more).
CATCH_UP = timedelta(days=7)
# Fired this much after its due time or less is on time (the schedule runs every minute and
# django-q2's scheduler looks every 30 s).
ON_TIME = timedelta(seconds=120)

DIRECTIONS = [("before", "days before"), ("on", "on the day"), ("after", "days after")]


def normalized(options: dict[str, Any] | None) -> dict[str, Any]:
    """The stored options with the defaults filled in (never raises)."""
    out = dict(DEFAULT_OPTIONS)
    if isinstance(options, dict):
        if isinstance(options.get("offset_days"), int):
            out["offset_days"] = options["offset_days"]
        if isinstance(options.get("at"), str):
            out["at"] = options["at"]
    return out


def _at(options: dict[str, Any]) -> time:
    hours, _, minutes = normalized(options)["at"].partition(":")
    return time(int(hours), int(minutes))


def describe(options: dict[str, Any] | None) -> str:
    """ "2 days before their last working day, at 09:00 their time"."""
    o = normalized(options)
    days = o["offset_days"]
    at = o["at"]
    if days == 0:
        return f"on their last working day, at {at} their time"
    side = "before" if days < 0 else "after"
    n = abs(days)
    return f"{n} day{'s' if n != 1 else ''} {side} their last working day, at {at} their time"


def due_at(day: date, time_zone: str, options: dict[str, Any] | None) -> datetime:
    """When the trigger is due for a member whose last working day is `day` in `time_zone`
    (UTC). The wall time is read in the zone on the offset date (see the module docstring for
    the daylight-saving nights)."""
    o = normalized(options)
    local = datetime.combine(
        day + timedelta(days=o["offset_days"]), _at(o), tzinfo=ZoneInfo(time_zone)
    )
    return local.astimezone(UTC)


def fire_key(automation_id: int, member_id: int, day: date, options: dict[str, Any]) -> str:
    o = normalized(options)
    return f"lastday:{automation_id}:{member_id}:{day.isoformat()}:{o['offset_days']}:{o['at']}"


# --- Builder settings --------------------------------------------------------------------------


class LastDayOptionsForm(forms.Form):
    """The trigger's settings in the builder (prefix "trigger"): how many days, before, on or
    after the last working day, and the wall time in the member's zone. Every message names
    what to enter, a hand-made POST included (the services check the result again)."""

    when = forms.ChoiceField(
        label="When",
        choices=DIRECTIONS,
        initial="on",
        error_messages={
            "required": "Choose days before, on the day, or days after the last working day.",
            "invalid_choice": "Choose days before, on the day, or days after the last working day.",
        },
    )
    # Judged in `clean`: the range matters only before or after the day ("on the day" ignores
    # whatever is typed here, as the help says).
    days = forms.IntegerField(
        label="Days",
        required=False,
        widget=forms.NumberInput(
            attrs={
                "inputmode": "numeric",
                "class": "input-narrow",
                "min": 1,
                "max": MAX_OFFSET_DAYS,
                "step": 1,
            }
        ),
        error_messages={"invalid": "Enter the number of days as a whole number, e.g. 2."},
    )
    at = forms.TimeField(
        label="At (their local time)",
        initial="18:00",
        # A browser's time input sends 18:00, or 18:00:00 with seconds shown; minutes are kept.
        input_formats=["%H:%M", "%H:%M:%S"],
        widget=forms.TimeInput(format="%H:%M", attrs={"type": "time"}),
        error_messages={
            "required": "Enter the time of day it fires, such as 18:00.",
            "invalid": "Enter a time of day such as 18:00.",
        },
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        when = cleaned.get("when")
        if when not in ("before", "after") or "days" in self.errors:
            return cleaned
        days = cleaned.get("days")
        if days is None:
            self.add_error(
                "days",
                f"Say how many days {when} the last working day (1 to {MAX_OFFSET_DAYS}).",
            )
        elif not 1 <= days <= MAX_OFFSET_DAYS:
            self.add_error(
                "days",
                f"Enter 1 to {MAX_OFFSET_DAYS} days {when} the last working day (for the day "
                "itself, choose “on the day”).",
            )
        return cleaned

    def options(self) -> dict[str, Any]:
        c = self.cleaned_data
        days = 0 if c["when"] == "on" else c["days"]
        return {"offset_days": -days if c["when"] == "before" else days, "at": f"{c['at']:%H:%M}"}


@dataclass(frozen=True)
class LastDayOptions:
    """What the trigger registry asks of a trigger with settings of its own."""

    form = LastDayOptionsForm
    default = DEFAULT_OPTIONS

    @staticmethod
    def initial(options: dict[str, Any] | None) -> dict[str, Any]:
        o = normalized(options)
        days = o["offset_days"]
        when = "on" if days == 0 else ("before" if days < 0 else "after")
        return {"when": when, "days": abs(days) or None, "at": o["at"]}

    @staticmethod
    def errors(options: Any) -> list[str]:
        """What is wrong with stored or submitted options (the services check again)."""
        if not isinstance(options, dict) or set(options) - {"offset_days", "at"}:
            return ["The trigger's settings are not understood: choose when again."]
        days, at = options.get("offset_days"), options.get("at")
        problems = []
        if not isinstance(days, int) or isinstance(days, bool) or abs(days) > MAX_OFFSET_DAYS:
            problems.append(
                f"The trigger can be at most {MAX_OFFSET_DAYS} days before or after the last "
                "working day."
            )
        try:
            datetime.strptime(at, "%H:%M")  # noqa: DTZ007 (a wall time, no date or zone)
        except (TypeError, ValueError):
            problems.append("Enter the trigger's time of day such as 18:00.")
        return problems

    @staticmethod
    def insight(trigger: dict[str, Any]) -> str:
        """What the execution page says of a fired event (see `fired_insight`)."""
        return fired_insight(trigger)

    @staticmethod
    def text(options: dict[str, Any] | None) -> str:
        """The settings on their own (history, admin, timeline): "2 days before their last
        working day, at 09:00 their time"."""
        return describe(options)

    @staticmethod
    def runs(options: dict[str, Any] | None, *, conditions: bool) -> str:
        """The automation page's "It runs <2 days before each matching member's last working
        day, at 09:00 their time>" ("each member's" without conditions)."""
        o = normalized(options)
        days, at = o["offset_days"], o["at"]
        whose = "each matching member's" if conditions else "each member's"
        if days == 0:
            return f"on {whose} last working day, at {at} their time"
        n = abs(days)
        side = "before" if days < 0 else "after"
        return f"{n} day{'s' if n != 1 else ''} {side} {whose} last working day, at {at} their time"

    @staticmethod
    def describe(options: dict[str, Any] | None) -> str:
        """The summary's phrase: "When a member in Engineering <is 2 days before their last
        working day (at 09:00 their time)>: …"."""
        o = normalized(options)
        days, at = o["offset_days"], o["at"]
        n = abs(days)
        count = f"{n} day{'s' if n != 1 else ''}"
        if days == 0:
            return f"reaches their last working day (at {at} their time)"
        if days < 0:
            return f"is {count} before their last working day (at {at} their time)"
        return f"is {count} past their last working day (at {at} their time)"


# --- Firing ------------------------------------------------------------------------------------


def _candidates(automation, *, now: datetime, company: str):
    """(member pk, day, zone, due) of the members whose due time for `automation` is in
    [earliest, now]: the days that could be due, from the partial index member_last_day,
    narrowed by the conditions that can be a filter, then exact in Python."""
    from automations import conditions as cond
    from members.models import Member

    options = normalized(automation.trigger_options)
    offset = timedelta(days=options["offset_days"])
    earliest = max(now - CATCH_UP, automation.created_at)
    # Zones span UTC-12 to UTC+14: one day either side covers them all.
    first = (earliest - timedelta(days=1)).date() - offset
    last = (now + timedelta(days=1)).date() - offset
    q, _left = cond.conditions_q(list(automation.conditions.all()), automation.match)
    rows = (
        Member.objects.filter(last_working_day__range=(first, last))
        .filter(q)
        .values_list("pk", "last_working_day", "time_zone")
    )
    out = []
    for pk, day, zone in rows:
        due = due_at(day, zone or company, options)
        if earliest <= due <= now:
            out.append((pk, day, zone or company, due))
    return out


def last_day_fire_due(*, now: datetime | None = None) -> int:
    """Fire the "last working day" trigger for every member and automation whose time has come
    (the every-minute schedule). Returns how many events it recorded. Each event is written
    with its member's row locked (the day re-read under the lock), in a transaction of its own:
    one failure leaves the others fired, and the unique key makes a second scan a no-op."""
    from automations.engine.events import event_record
    from automations.models import Automation, Event
    from members.models import Member
    from members.selectors import company_time_zone

    now = now or timezone.now()
    company = company_time_zone()
    fired = 0
    automations = Automation.objects.filter(enabled=True, trigger_event=KEY).prefetch_related(
        "conditions"
    )
    for automation in automations:
        options = normalized(automation.trigger_options)
        due = {
            fire_key(automation.pk, pk, day, options): (pk, day, zone, at)
            for pk, day, zone, at in _candidates(automation, now=now, company=company)
        }
        done = set(Event.objects.filter(key__in=list(due)).values_list("key", flat=True))
        for key, (pk, day, zone, at) in due.items():
            if key in done:
                continue
            try:
                with transaction.atomic():
                    member = (
                        Member.objects.select_for_update(of=("self",))
                        .select_related("manager")
                        .filter(pk=pk, last_working_day=day)
                        .first()
                    )
                    if member is None or (member.time_zone or company) != zone:
                        continue  # moved or cleared since the candidates were read
                    event_record(
                        member=member,
                        kind=KEY,
                        automation=automation,
                        key=key,
                        occurred_at=at,
                        trigger={
                            "last_working_day": day.isoformat(),
                            "time_zone": zone,
                            "offset_days": options["offset_days"],
                            "at": options["at"],
                            "due_at": at.isoformat(),
                            "fired_at": now.isoformat(),
                        },
                    )
            except IntegrityError:
                continue  # another scan fired it first
            except Exception:
                logger.exception("Could not fire %s for member %s", automation, pk)
                continue
            fired += 1
    return fired


def fired_insight(trigger: dict[str, Any]) -> str:
    """What the execution page says of the event: "Last working day 9 Dec 2026
    (Europe/Berlin), 2 days before, at 09:00: due 7 Dec 09:00, fired on time." """
    try:
        day = date.fromisoformat(trigger["last_working_day"])
        due = datetime.fromisoformat(trigger["due_at"])
        fired = datetime.fromisoformat(trigger["fired_at"])
    except (KeyError, TypeError, ValueError):
        return ""
    zone = ZoneInfo(trigger.get("time_zone") or "UTC")
    text = (
        f"Last working day {day.day} {day:%b %Y} ({trigger.get('time_zone')}); "
        f"{describe(trigger)}: due {due.astimezone(zone):%-d %b %H:%M}"
    )
    late = fired - due
    if late <= ON_TIME:
        return f"{text}, fired on time."
    from automations.engine.common import human_duration

    late_text = human_duration(late.total_seconds())
    return f"{text}, fired {late_text} late (no worker ran the schedule then)."


# --- What is planned ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedFire:
    """One "last working day" automation for one member: when it is due (UTC and in the member's
    zone), and the execution if it has fired."""

    automation: Any
    due: datetime
    local: datetime
    execution: Any = None
    fired: bool = False

    @property
    def describe(self) -> str:
        return describe(self.automation.trigger_options)


def last_day_plan(members, *, company: str) -> dict[int, list[PlannedFire]]:
    """For each member (with last_working_day and time_zone loaded), the enabled "last working
    day" automations whose conditions match them now, each with its due time and, once fired,
    its execution; in due order. A fixed number of queries: the automations with their
    conditions (2), the snapshots of the members (3), the fired events and their executions (2)."""
    from automations import conditions as cond
    from automations.models import Automation, Event

    members = [m for m in members if m.last_working_day]
    automations = list(
        Automation.objects.filter(enabled=True, trigger_event=KEY)
        .prefetch_related("conditions")
        .order_by("name", "id")
    )
    if not members or not automations:
        return {m.pk: [] for m in members}
    snapshots = cond.member_snapshots([m.pk for m in members])
    zones = {m.pk: m.time_zone or company for m in members}
    keys = {}
    plan: dict[int, list] = {}
    for m in members:
        snapshot = snapshots.get(m.pk)
        for a in automations:
            if snapshot is None or not cond.matches(list(a.conditions.all()), a.match, snapshot):
                continue
            due = due_at(m.last_working_day, zones[m.pk], a.trigger_options)
            keys[fire_key(a.pk, m.pk, m.last_working_day, a.trigger_options)] = (m.pk, a, due)
    fired = {
        e.key: e for e in Event.objects.filter(key__in=list(keys)).prefetch_related("executions")
    }
    for key, (pk, automation, due) in keys.items():
        event = fired.get(key)
        plan.setdefault(pk, []).append(
            PlannedFire(
                automation=automation,
                due=due,
                local=due.astimezone(ZoneInfo(zones[pk])),
                execution=next(iter(event.executions.all()), None) if event else None,
                fired=event is not None,
            )
        )
    for fires in plan.values():
        fires.sort(key=lambda f: f.due)
    return {m.pk: plan.get(m.pk, []) for m in members}


def ensure_last_day_schedule(schedule_model=None) -> None:
    """Create the every-minute schedule unless it exists (migration automations 0014 calls
    this with the historical model). Catch-up is off for the cluster: after downtime one run
    fires everything that became due meanwhile (up to CATCH_UP)."""
    if schedule_model is None:
        from django_q.models import Schedule as schedule_model
    schedule_model.objects.get_or_create(
        name=LAST_DAY_SCHEDULE_NAME,
        defaults={
            "func": LAST_DAY_FUNC,
            "schedule_type": "I",  # Schedule.MINUTES
            "minutes": 1,
            "repeats": -1,
            "next_run": timezone.now(),
        },
    )
