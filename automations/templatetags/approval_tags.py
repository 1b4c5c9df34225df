"""The navigation's Approvals entry (templates/base.html): shown to users with requests waiting
for their decision, with the count (cached: automations/selectors.pending_approvals_count), and
to holders of automations.decide_approval."""

from __future__ import annotations

from django import template

from automations.selectors import pending_approvals_count

register = template.Library()


@register.inclusion_tag("automations/approvals/_nav.html", takes_context=True)
def approvals_nav(context: template.Context) -> dict:
    user = context.get("user")
    if user is None or not user.is_authenticated:
        return {"show": False}
    pending = pending_approvals_count(user)
    return {
        "show": bool(pending) or user.has_perm("automations.decide_approval"),
        "pending": pending,
        "current": context.get("nav_section") == "approvals",
    }
