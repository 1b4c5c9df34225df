"""Template tags for automation pages and for other apps' pages that show automation data.

`{% automated_actions member %}` renders the member detail's "Automated actions" panel, so the
members view needs no knowledge of executions.
"""

from __future__ import annotations

from datetime import timedelta

from django import template

from automations import selectors_executions as selectors
from automations import selectors_preview as preview
from automations import triggers
from members.models import Member

register = template.Library()


def member_actions_context(member: Member, *, can_view: bool) -> dict:
    """The panel's context: the newest actions for the member and whether work still runs
    (the panel keeps polling only then)."""
    if not can_view:
        return {"member": member, "can_view": False}
    logs, has_more = selectors.member_action_logs(member)
    return {
        "member": member,
        "can_view": True,
        "logs": logs,
        "has_more": has_more,
        "limit": selectors.MEMBER_PANEL_LIMIT,
        **selectors.member_action_summary(member),
    }


@register.inclusion_tag("automations/executions/_member_actions.html", takes_context=True)
def automated_actions(context: template.Context, member: Member) -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    can_view = bool(user and user.has_perm("automations.view_execution"))
    return member_actions_context(member, can_view=can_view)


def member_preview_context(member: Member) -> dict:
    """What deactivating `member` now sets off (selectors_preview.member_preview), and, when
    they have a last working day ahead, what it sets off (selectors_preview.
    LAST_WORKING_DAY_EVENTS): the "last working day" automations at their times, and with
    "deactivate automatically" on, the deactivation's at the day's end."""
    from members.selectors import company_time_zone, company_today

    last_day = None
    day = member.last_working_day
    ahead = day is not None and day >= company_today(company_time_zone())
    if member.is_active and ahead:
        # The day's own triggers always; the deactivation's only if it deactivates them.
        events = [
            e
            for e in preview.LAST_WORKING_DAY_EVENTS
            if e != triggers.MEMBER_DEACTIVATED or member.deactivate_on_last_day
        ]
        last_day = preview.member_preview(member, trigger_events=events, last_working_day=True)
    return {
        "member": member,
        "preview": preview.member_preview(member, trigger_events=preview.DEACTIVATION_EVENTS),
        "last_day": last_day,
    }


def selection_context(ids: list[int]) -> dict:
    return {"selection": preview.preview_selection(ids), "count": len(ids)}


@register.inclusion_tag("automations/_member_preview.html")
def member_deactivation_preview(member: Member) -> dict:
    """The deactivate dialog's preview for one member, rendered in place (the page without
    JavaScript and a re-rendered dialog)."""
    return member_preview_context(member)


@register.inclusion_tag("automations/_deactivation_preview.html")
def deactivation_preview(members) -> dict:
    """What deactivating `members` (several, or their ids) sets off, in totals
    (selectors_preview.preview_selection)."""
    ids = [getattr(m, "pk", m) for m in members]
    return selection_context(ids)


@register.filter
def human_duration(value: timedelta | None) -> str:
    """A timedelta as "850 ms", "12.4 s", "3 min 5 s" or "2 h 10 min"; "—" when unknown."""
    if value is None:
        return "—"
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@register.filter
def trigger_label(event_kind: str) -> str:
    """An event kind ("member.deactivated") as the builder names it ("Member is deactivated")."""
    for module in triggers.REGISTRY.values():
        if event_kind in module.events:
            return module.events[event_kind].label
    return event_kind


@register.filter
def event_insight(event) -> str:
    """What a timed trigger's event says of itself ("Last working day 12 May 2027 (UTC); …,
    fired 3 hours late"), from its kind's registry entry; "" for other events."""
    trigger = (event.member_snapshot or {}).get("trigger")
    for module in triggers.REGISTRY.values():
        entry = module.events.get(event.kind)
        if entry is not None and entry.options is not None and trigger:
            return entry.options.insight(trigger)
    return ""


@register.filter
def action_log_template(action_kind: str) -> str:
    """The template of a log's extra rows on the execution page (its kind's `log_template`)."""
    from automations.actions import get_kind

    kind = get_kind(action_kind)
    return kind.log_template if kind else ""
