"""`{% entitlement_target ent %}`: who or what holds an entitlement (member and asset joined),
as links. A tag rather than an included template: the license page shows it on up to sixty rows,
and an include per row costs more than the rest of the row."""

from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from assetsonar.links import pk_url

register = template.Library()


@register.simple_tag
def entitlement_target(ent) -> SafeString:
    parts = []
    if ent.member_id:
        parts.append(
            format_html(
                '<a href="{}">{}</a>{}',
                pk_url("members:detail", ent.member_id),
                ent.member.full_name,
                mark_safe(' <span class="badge badge-red">Deactivated</span>')  # noqa: S308 - a constant
                if ent.member.status == "deactivated"
                else "",
            )
        )
    if ent.asset_id:
        parts.append(
            format_html(
                '<a href="{}">{}</a> <span class="muted">{}</span>',
                pk_url("assets:detail", ent.asset_id),
                ent.asset.asset_tag,
                ent.asset.name,
            )
        )
    return mark_safe(" on ".join(parts))  # noqa: S308 - each part is format_html's
