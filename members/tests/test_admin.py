"""members.admin: the admin's member search is the portal's (members.selectors.member_search)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from conftest import make_member


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("lovelace", ["Ada Lovelace"]),  # a surname alone
        ("countess@", ["Ada Lovelace"]),  # part of an email
        ("ce", []),  # 1-2 characters: prefixes only
        ("gr", ["Grace Hopper"]),
        ("e0042", ["Ada Lovelace"]),  # an employee ID, typed in lower case
    ],
)
def test_the_admin_searches_members_like_the_portal(admin_client, term, expected):
    make_member(full_name="Ada Lovelace", email="the.countess@example.com", employee_id="E0042")
    make_member(full_name="Grace Hopper", email="grace@example.com", employee_id="N7")

    response = admin_client.get(reverse("admin:members_member_changelist"), {"q": term})

    assert [member.full_name for member in response.context["cl"].result_list] == expected
