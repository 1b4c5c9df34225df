"""The member list's rows, rendered in Python: `{% member_rows page can_select %}`.

The list shows 50 members a page; the template language's per-row cost (each variable, filter
and `{% if %}` walks the context) was about 0.13 ms a row, a quarter of the page's time, and it
is what made a page of 50 rows at 1M members slower than the same search's page of 16 rows at
1k (bench/pages.py). The markup is the template's (templates: members/member_list.html), one
`<tr>` per member; every value is escaped by format_html.
"""

from __future__ import annotations

from django import template
from django.template.defaultfilters import date as date_filter
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from assetsonar.locale_dates import format_date

register = template.Library()

_ACTIVE = mark_safe('<span class="badge badge-green">Active</span>')  # noqa: S308 - a constant
_DEACTIVATED = mark_safe('<span class="badge badge-red">Deactivated</span>')  # noqa: S308


def _select(member) -> SafeString:
    """The bulk-deactivation checkbox cell (active members only)."""
    box = ""
    if member.is_active:
        box = format_html(
            '<input type="checkbox" name="ids" value="{}" form="bulk-form" aria-label="Select {}">',
            member.pk,
            member.full_name,
        )
    return format_html('<td class="check">{}</td>', box)


@register.simple_tag
def member_rows(members, can_select: bool) -> SafeString:
    rows = []
    for m in members:
        created = (
            timezone.localtime(m.created_at) if timezone.is_aware(m.created_at) else m.created_at
        )
        rows.append(
            format_html(
                "<tr>{}"
                '<td><a href="{}">{}</a><span class="sub">{}</span></td>'
                "<td>{}</td>"
                '<td class="col-lg">{}</td>'
                '<td class="col-xl">{}</td>'
                "<td>{}</td>"
                '<td class="num">{}</td>'
                '<td class="num">{}</td>'
                '<td class="nowrap col-lg"><time datetime="{}">{}</time></td>'
                "</tr>\n",
                _select(m) if can_select else "",
                m.get_absolute_url(),
                m.full_name,
                m.email,
                m.department or "—",
                m.location or "—",
                m.title or "—",
                _ACTIVE if m.is_active else _DEACTIVATED,
                m.assets_count,
                m.live_entitlements_count,
                date_filter(created, "c"),
                format_date(m.created_at),
            )
        )
    return mark_safe("".join(rows))  # noqa: S308 - each row is format_html's
