"""The license page's entitlement rows, rendered in Python: the page shows up to thirty-five,
and the template language's per-row cost (an `{% if %}`, a filter, a tag and a variable lookup
each walk the context) was most of the page's time at a million members (bench/pages.py, license
detail against the admin's license change page).

`{% entitlement_target ent %}`: who or what holds an entitlement (member and asset joined), as
links. `{% live_entitlement_rows page license can_revoke %}` and `{% revoked_entitlement_rows
page %}`: a table body's rows (the markup the template had, one row per entitlement)."""

from __future__ import annotations

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from assetsonar.links import pk_url
from assetsonar.locale_dates import format_datetime

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


def _when_by(at, user_id, user) -> SafeString:
    """When it happened, and by whom when a person did it."""
    if user_id and user:
        return format_html("{} by {}", format_datetime(at), user.get_username())
    return format_html("{}", format_datetime(at))


def _given(ent) -> SafeString:
    return _when_by(ent.assigned_at, ent.assigned_by_id, ent.assigned_by)


def _kind(ent) -> str:
    if ent.member_id and ent.asset_id:
        return "Member on a device"
    return "Member" if ent.member_id else "Device"


@register.simple_tag
def live_entitlement_rows(entitlements, license, can_revoke) -> SafeString:
    rows = []
    for ent in entitlements:
        revoke = ""
        if can_revoke:
            url = pk_url("licenses:revoke", license.pk, ent.pk)
            revoke = format_html(
                '<td class="actions-cell"><a class="btn btn-sm" href="{}" hx-get="{}" '
                'hx-target="#revoke-dialog-body" hx-swap="innerHTML">Revoke</a></td>',
                url,
                url,
            )
        rows.append(
            format_html(
                "<tr><td>{}</td><td>{}</td><td>{}</td>{}</tr>\n",
                entitlement_target(ent),
                _kind(ent),
                _given(ent),
                revoke,
            )
        )
    return mark_safe("".join(rows))  # noqa: S308 - each row is format_html's


@register.simple_tag
def revoked_entitlement_rows(entitlements) -> SafeString:
    return format_html_join(
        "\n",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                entitlement_target(ent),
                _given(ent),
                _when_by(ent.revoked_at, ent.revoked_by_id, ent.revoked_by),
                ent.revoked_reason,
            )
            for ent in entitlements
        ),
    )
