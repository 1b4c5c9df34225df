"""The member list's rows, rendered by `{% member_rows %}` (members/templatetags/member_tags.py)
instead of the template language: the same cells, every value escaped, the selection box only
for active members and only for users who may deactivate."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from assetsonar import roles
from conftest import make_member, make_user
from members.models import Member
from members.services import member_deactivate

pytestmark = pytest.mark.django_db


def rows(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr>.*?</tr>", body, flags=re.S)


def test_a_row_has_every_cell_escaped(manager_client):
    member = make_member(
        full_name="<script>alert(1)</script>",
        email="a&b@example.com",
        department="",
        location="R&D <Lab>",
        title="",
    )
    Member.objects.filter(pk=member.pk).update(
        created_at=datetime(2026, 3, 4, 23, 30, tzinfo=UTC), assets_count=2
    )

    (row,) = rows(manager_client.get(reverse("members:list")).content.decode())

    assert "<script>" not in row
    assert f'<a href="/members/{member.pk}/">&lt;script&gt;alert(1)&lt;/script&gt;</a>' in row
    assert '<span class="sub">a&amp;b@example.com</span>' in row
    assert "<td>—</td>" in row  # no department
    assert '<td class="col-lg">R&amp;D &lt;Lab&gt;</td>' in row
    assert '<td class="col-xl">—</td>' in row  # no title
    assert '<span class="badge badge-green">Active</span>' in row
    assert '<td class="num">2</td><td class="num">0</td>' in row
    # The time element carries the instant in the portal's time zone, its text the date.
    assert re.search(r'<time datetime="2026-03-0[45]T\d\d:30:00[+-]\d\d:\d\d">[^<]+</time>', row)
    assert (
        f'<input type="checkbox" name="ids" value="{member.pk}" form="bulk-form" '
        'aria-label="Select &lt;script&gt;alert(1)&lt;/script&gt;">' in row
    )


def test_only_active_members_can_be_selected(manager_client, it_manager):
    stays, leaves = make_member(full_name="Stays"), make_member(full_name="Leaves")
    member_deactivate(member=leaves, actor=it_manager, reason="Left")

    html = manager_client.get(reverse("members:list")).content.decode()

    by_name = {("Stays" if "Stays" in row else "Leaves"): row for row in rows(html)}
    assert f'value="{stays.pk}"' in by_name["Stays"]
    assert 'type="checkbox"' not in by_name["Leaves"]
    assert '<td class="check"></td>' in by_name["Leaves"]
    assert '<span class="badge badge-red">Deactivated</span>' in by_name["Leaves"]


def test_without_the_deactivate_permission_there_is_no_selection_column(client):
    make_member(full_name="Someone")
    client.force_login(make_user("vera", roles.VIEWER))

    html = client.get(reverse("members:list")).content.decode()

    (row,) = rows(html)
    assert 'class="check"' not in row and 'class="check"' not in html.split("<tbody>")[0][-3000:]


def test_an_empty_list_says_so(manager_client):
    html = manager_client.get(reverse("members:list"), {"q": "nobody-like-this"}).content.decode()

    assert "No member matches these filters." in html
    assert rows(html) == [
        '<tr><td colspan="9" class="empty-state">No member matches these filters.</td></tr>'
    ]
