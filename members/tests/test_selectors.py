"""members.selectors and members.filters: what the list finds, in which order, with which counts."""

from __future__ import annotations

import pytest
from django.db import connection

from conftest import make_asset, make_entitlement, make_license, make_member
from licenses.services import license_unentitle
from members import selectors, services
from members.filters import MemberFilter


def _names(params: dict, sort: str = "name") -> list[str]:
    filterset = MemberFilter(params, queryset=selectors.member_list_queryset())
    members = filterset.qs.order_by(*selectors.member_ordering(sort))
    return [member.full_name for member in members]


@pytest.fixture
def people(db):
    return {
        "ada": make_member(
            full_name="Ada Lovelace",
            email="countess@example.com",
            employee_id="E0042",
            department="Engineering",
            location="London",
        ),
        "alan": make_member(
            full_name="alan Turing",
            email="alan.t@example.com",
            employee_id="E0043",
            department="Research",
            location="Manchester",
        ),
        "grace": make_member(
            full_name="Grace Hopper",
            email="ada.h@example.com",
            employee_id="N7",
            department="Engineering",
            location="Arlington",
        ),
    }


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("ada", ["Ada Lovelace", "Grace Hopper"]),  # in a name, and in an email
        ("ADA LOVE", ["Ada Lovelace"]),
        ("Alan.T@", ["alan Turing"]),
        ("lovelace", ["Ada Lovelace"]),  # a surname alone
        ("LACE", ["Ada Lovelace"]),  # the middle or end of a word, any case
        ("ess@exa", ["Ada Lovelace"]),  # part of an email
        ("ace", ["Ada Lovelace", "Grace Hopper"]),  # 3 characters: anywhere
        ("ce", []),  # 1-2 characters: prefixes only ("Grace", "Lovelace" end on "ce")
        ("al", ["alan Turing"]),  # ... so "al" finds "alan", not "Lovelace"
        ("gR", ["Grace Hopper"]),
        ("N7", ["Grace Hopper"]),  # a short employee ID still matches whole
        ("e0043", ["alan Turing"]),  # employee ID, typed in lower case
        ("E004", []),  # employee IDs match whole, not by part
        ("100%", []),  # LIKE wildcards are literal
        ("a_a", []),
        ("  ", ["Ada Lovelace", "alan Turing", "Grace Hopper"]),
    ],
)
def test_search_finds_parts_of_names_and_emails_short_prefixes_and_whole_employee_ids(
    people, term, expected
):
    assert _names({"q": term}) == expected


@pytest.mark.skipif(connection.vendor != "postgresql", reason="trigram indexes are PostgreSQL's")
def test_a_substring_search_can_use_the_trigram_indexes_on_postgresql(people):
    with connection.cursor() as cursor:
        # A handful of rows is cheaper to scan; forbid that to see whether the indexes match the
        # SQL `icontains` writes at all.
        cursor.execute("SET LOCAL enable_seqscan = off")
    plan = selectors.member_search(selectors.member_list_queryset(), "lovelace").explain()

    assert "member_name_upper_trgm" in plan
    assert "member_email_upper_trgm" in plan


def test_filters_narrow_by_status_department_and_location(people, it_manager):
    services.member_deactivate(member=people["grace"], actor=it_manager, reason="Retired")

    assert _names({"status": "deactivated"}) == ["Grace Hopper"]
    assert _names({"department": "Engineering"}) == ["Ada Lovelace", "Grace Hopper"]
    assert _names({"department": "Engineering", "status": "active"}) == ["Ada Lovelace"]
    assert _names({"location": "Manchester"}) == ["alan Turing"]


def test_department_and_location_options_are_the_distinct_values_in_use(people):
    make_member(department="", location="")
    filterset = MemberFilter({}, queryset=selectors.member_list_queryset())

    departments = [value for value, _ in filterset.form.fields["department"].choices]
    locations = [value for value, _ in filterset.form.fields["location"].choices]

    assert departments == ["", "Engineering", "Research"]
    assert locations == ["", "Arlington", "London", "Manchester"]


def test_an_unknown_filter_value_or_sort_is_ignored(people):
    everyone = ["Ada Lovelace", "alan Turing", "Grace Hopper"]

    assert _names({"status": "bogus", "department": "Nope"}) == everyone
    assert _names({}, sort="password") == everyone


@pytest.mark.parametrize("status", ["", "deactivated"])
def test_the_holding_filter_keeps_members_with_an_asset_or_a_live_license(
    people, it_manager, status
):
    make_asset(custodian=people["ada"])
    make_entitlement(license=make_license(), member=people["alan"])
    revoked = make_entitlement(license=make_license(), member=people["grace"])
    license_unentitle(entitlement=revoked, actor=it_manager)
    for member in people.values():
        services.member_deactivate(member=member, actor=it_manager, reason="Closure")

    assert _names({"holding": "1", "status": status}) == ["Ada Lovelace", "alan Turing"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("name", ["Ada Lovelace", "alan Turing", "Grace Hopper"]),
        ("-name", ["Grace Hopper", "alan Turing", "Ada Lovelace"]),
        ("department", ["Ada Lovelace", "Grace Hopper", "alan Turing"]),
        ("-location", ["alan Turing", "Ada Lovelace", "Grace Hopper"]),
        ("created", ["Ada Lovelace", "alan Turing", "Grace Hopper"]),
        ("-created", ["Grace Hopper", "alan Turing", "Ada Lovelace"]),
    ],
)
def test_sorting_follows_the_whitelisted_column_in_either_direction(people, sort, expected):
    assert _names({}, sort=sort) == expected


def test_page_counts_include_assets_in_custody_and_only_live_entitlements(people, it_manager):
    ada = people["ada"]
    make_asset(custodian=ada)
    make_asset(custodian=ada)
    make_entitlement(license=make_license(), member=ada)
    revoked = make_entitlement(license=make_license(), member=ada)
    license_unentitle(entitlement=revoked, actor=it_manager)

    page = list(selectors.member_list_queryset())

    counts = {m.full_name: (m.assets_count, m.live_entitlements_count) for m in page}
    assert counts == {"Ada Lovelace": (2, 1), "alan Turing": (0, 0), "Grace Hopper": (0, 0)}
