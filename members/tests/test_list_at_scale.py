"""The members list at any size: a count that stops, keyset pages past it that neither repeat nor
skip a member, filter options from a loose index scan, the holding filter from the kept counts,
fixed query counts at two sizes, and (PostgreSQL) plans that use the indexes made for them."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from assetsonar import paging
from conftest import make_asset, make_entitlement, make_license
from members import selectors
from members.filters import MemberFilter
from members.models import Member

pytestmark = pytest.mark.django_db

NAMES = ["ada", "Bob", "carol", "Dan", "erin", "Finn", "gus", "Hana", "ivy", "Jo"]


def bulk_members(count: int, **fields) -> list[Member]:
    """Members straight into the table (as an import would), several sharing each name."""
    now = timezone.now()
    rows = [
        Member(
            full_name=f"{NAMES[n % len(NAMES)]} {n // 7}",
            email=f"m{n}@example.com",
            employee_id=f"S{n:06d}",
            department=f"Dept {n % 4}",
            location=f"City {n % 3}",
            status="deactivated" if n % 5 == 0 else "active",
            deactivated_at=now if n % 5 == 0 else None,
            **fields,
        )
        for n in range(count)
    ]
    return Member.objects.bulk_create(rows)


def walk(client, query: dict) -> tuple[list[int], int]:
    """Every member id the list shows, following its own links page by page (numbered, then
    keyset); and how many pages that took."""
    seen, pages = [], 0
    response = client.get(reverse("members:list"), query)
    while True:
        pages += 1
        page = response.context["page_obj"]
        seen += [m.pk for m in page.object_list]
        links = re.findall(r'href="([^"]*)" rel="next"', response.content.decode())
        if not links:
            return seen, pages
        response = client.get(reverse("members:list") + links[0].replace("&amp;", "&"))
        assert response.status_code == 200


@pytest.mark.parametrize("sort", ["name", "-name", "department", "-location", "status", "created"])
def test_keyset_pages_past_the_count_show_every_member_once_in_order(
    manager_client, monkeypatch, sort
):
    monkeypatch.setattr(paging, "COUNT_LIMIT", 200)
    monkeypatch.setattr(paging, "OFFSET_LIMIT", 120)
    bulk_members(333)
    expected = list(
        Member.objects.order_by(*selectors.member_ordering(sort)).values_list("pk", flat=True)
    )

    seen, pages = walk(manager_client, {"sort": sort})

    assert seen == expected  # neither repeated nor skipped, in the sort's order
    # 3 numbered pages (OFFSET_LIMIT 120 rows: pages of 50 up to it), 150 rows, then 4 keyset
    # pages of 50 for the other 183.
    assert pages == 7


def test_the_count_stops_at_the_limit_and_says_so(manager_client, monkeypatch):
    monkeypatch.setattr(paging, "COUNT_LIMIT", 100)
    monkeypatch.setattr(paging, "OFFSET_LIMIT", 100)
    bulk_members(130)

    first = manager_client.get(reverse("members:list"))
    last = manager_client.get(reverse("members:list"), {"page": "999"})

    html = first.content.decode()
    assert "100+ members" in html
    assert "Page 1 · 100+ total" in html
    assert last.context["page_obj"].number == 2
    assert last.context["page_obj"].next_after  # the way on past the counted rows
    keyset = manager_client.get(
        reverse("members:list"), {"after": last.context["page_obj"].next_after}
    )
    assert "Past the first 100" in keyset.content.decode()
    assert len(keyset.context["page_obj"]) == 30


def test_a_token_that_does_not_decode_shows_the_first_page(manager_client):
    bulk_members(5)
    for token in ("not-base64!", "W10", "WyJ4Il0"):  # garbage, [], ["x"] (too few keys)
        response = manager_client.get(reverse("members:list"), {"after": token})
        assert response.status_code == 200
        assert response.context["page_obj"].number == 1


def test_filter_options_are_the_distinct_values_in_order():
    bulk_members(40)
    Member.objects.filter(pk=Member.objects.first().pk).update(department="")
    expected = sorted(
        set(Member.objects.exclude(department="").values_list("department", flat=True))
    )

    assert selectors.member_departments() == expected
    assert selectors.member_locations() == ["City 0", "City 1", "City 2"]
    assert MemberFilter({}).form.fields["department"].choices[1:] == [(d, d) for d in expected]


def test_holding_reads_the_kept_counts(manager_client, it_manager):
    _deactivated, holder, seat_holder, _clean = bulk_members(4)
    make_asset(custodian=holder)
    make_entitlement(license=make_license(), member=seat_holder)

    response = manager_client.get(reverse("members:list"), {"holding": "1"})

    assert {m.pk for m in response.context["page_obj"]} == {holder.pk, seat_holder.pk}


@pytest.mark.parametrize("size", [60, 400])
def test_query_count_of_every_list_variant_is_fixed(
    manager_client, django_assert_max_num_queries, monkeypatch, size
):
    monkeypatch.setattr(paging, "COUNT_LIMIT", 100)
    monkeypatch.setattr(paging, "OFFSET_LIMIT", 100)
    bulk_members(size)
    after = manager_client.get(reverse("members:list"), {"page": "2"}).context["page_obj"]
    variants = [
        {},
        {"holding": "1"},
        {"status": "deactivated", "holding": "1"},
        {"department": "Dept 1", "status": "active"},
        {"q": "carol"},
        {"sort": "-created"},
        {"page": "2"},
    ]
    if after.next_after:
        variants.append({"after": after.next_after})
    for query in variants:
        # Session, user, permissions (2), count, page, departments, locations.
        with django_assert_max_num_queries(9):  # +1: the navigation's approvals count
            response = manager_client.get(reverse("members:list"), query)
        assert response.status_code == 200


# --- PostgreSQL plans -----------------------------------------------------------------------------

postgres_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="the planner's choices are PostgreSQL's"
)


def plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.fixture
def many_members():
    members = bulk_members(20_000)
    # A tenth hold something (the counts as the services keep them).
    Member.objects.filter(pk__in=[m.pk for m in members[::10]]).update(assets_count=1)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE members_member")
    return members


@postgres_only
@pytest.mark.parametrize("sort", ["name", "-name", "department", "-location", "created"])
def test_each_sort_reads_its_index_not_a_sort_of_the_table(many_members, sort):
    queryset = Member.objects.order_by(*selectors.member_ordering(sort))[:50]
    text = plan(queryset)
    assert "Index Scan" in text, text
    assert "Seq Scan" not in text, text


@postgres_only
def test_a_keyset_page_seeks_the_index(many_members, rf, monkeypatch):
    ordering = selectors.member_ordering("department")
    first = paging.paginate(Member.objects.all(), ordering=ordering, per_page=50, number=20)
    values = paging._decode(first.next_after, 3)
    names = ["keyset_0", "keyset_1", "keyset_2"]
    queryset = (
        Member.objects.annotate(
            **dict(zip(names, (e for e, _ in paging._keys(ordering)), strict=True))
        )
        .filter(keyset_0__gte=values[0])
        .order_by(*names)[:51]
    )
    text = plan(queryset)
    assert "member_dept_name" in text, text
    assert "Seq Scan" not in text, text


@postgres_only
def test_holding_is_a_condition_on_the_row_not_a_hashed_subplan(many_members):
    queryset = Member.objects.filter(selectors.member_holding_filter()).order_by(
        *selectors.member_ordering("name")
    )[:50]
    text = plan(queryset)
    assert "SubPlan" not in text and "Hash" not in text, text
    assert "member_holding_name" in text, text
    deactivated = plan(
        Member.objects.deactivated()
        .filter(selectors.member_holding_filter())
        .order_by("-deactivated_at", "-id")[:10]
    )
    assert "member_deactivated_holding" in deactivated, deactivated


@postgres_only
def test_filter_options_are_index_probes_not_a_scan(many_members):
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = on")
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        selectors.member_departments()
    sql = captured.captured_queries[0]["sql"]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql)
        text = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan" not in text, text
    assert "Index Only Scan" in text or "Index Scan" in text, text


@postgres_only
@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({"department": "Dept 1", "status": "active"}, "member_dept_status_name"),
        ({"status": "deactivated"}, "member_status_lname"),
    ],
)
def test_a_filtered_page_by_name_is_a_range_of_one_index(many_members, filters, index):
    """department + status (the filter bar's pair) and status alone, by name: the first 50 rows
    of one index range, however the statuses are spread over the names (no walk of the name
    index discarding the rows of the other status, no sort)."""
    queryset = Member.objects.filter(**filters).order_by(*selectors.member_ordering("name"))[:50]
    text = plan(queryset)
    assert index in text, text
    assert "Sort" not in text and "Seq Scan" not in text, text


def test_a_search_is_counted_to_its_first_page_and_goes_on_by_keyset(manager_client):
    """A broad search says "50+ members" (no count over every match) and its Next link walks
    every match once, in order; a narrow one is counted exactly, with no pager."""
    from members.views import PAGE_SIZE

    bulk_members(3 * PAGE_SIZE + 7)  # every tenth name is "ada …": 16 of them
    matching = list(
        selectors.member_search(Member.objects.all(), "m1")  # emails m1, m10-m19, m100-…
        .order_by(*selectors.member_ordering("name"))
        .values_list("pk", flat=True)
    )
    assert len(matching) > PAGE_SIZE

    first = manager_client.get(reverse("members:list"), {"q": "m1"})
    html = first.content.decode()
    assert f"{PAGE_SIZE}+ members" in html
    assert f"Page 1 · {PAGE_SIZE}+ total" in html
    seen, pages = walk(manager_client, {"q": "m1"})
    assert seen == matching
    assert pages == -(-len(matching) // PAGE_SIZE)

    narrow = manager_client.get(reverse("members:list"), {"q": "ada"}).content.decode()
    assert "16 members" in narrow
    assert 'rel="next"' not in narrow


def test_a_search_page_costs_the_queries_of_the_plain_list(manager_client):
    """No count query: the page's keys, one longer than the page, say whether there are more;
    then the page's rows by those keys."""
    from django.test.utils import CaptureQueriesContext

    bulk_members(120)
    manager_client.get(reverse("members:list"))
    counts = []
    for query in ({}, {"q": "m1"}, {"q": "ada"}):
        with CaptureQueriesContext(connection) as captured:
            assert manager_client.get(reverse("members:list"), query).status_code == 200
        counts.append(len(captured))
    assert counts[1] == counts[2] == counts[0], counts


@postgres_only
def test_a_search_walks_the_name_index_alone_for_its_keys(many_members):
    """The first query of a search page is an index-only scan of member_name_search (the
    filter on the columns it carries), not a walk of the table."""
    from django.test.utils import CaptureQueriesContext

    from members.views import PAGE_SIZE

    queryset = selectors.member_search(Member.objects.all(), "ada")
    with CaptureQueriesContext(connection) as captured:
        paging.paginate(
            queryset,
            ordering=selectors.member_ordering("name"),
            per_page=PAGE_SIZE,
            number=1,
            limit=PAGE_SIZE,
            offset_limit=PAGE_SIZE,
        )
    keys_sql = captured.captured_queries[0]["sql"]
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_bitmapscan = off")
        try:
            cursor.execute("EXPLAIN " + keys_sql)
            text = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("RESET enable_seqscan")
            cursor.execute("RESET enable_bitmapscan")
    assert "Index Only Scan using member_name_search" in text, text


def _search_keyset_queries(term: str, after: str | None):
    from django.test.utils import CaptureQueriesContext

    from members.views import PAGE_SIZE

    with CaptureQueriesContext(connection) as captured:
        page = paging.paginate(
            selectors.member_search(Member.objects.all(), term),
            ordering=selectors.member_ordering("name"),
            per_page=PAGE_SIZE,
            number=1,
            after=after,
            limit=PAGE_SIZE,
            offset_limit=PAGE_SIZE,
        )
        rows = list(page.object_list)
    return page, rows, captured.captured_queries


def test_a_search_keyset_page_takes_its_keys_first_like_the_first_page(manager_client):
    """The second page of a search: its keys, then its rows by key (2 queries, as the first
    page), in the list's order, the next key from the last of them."""
    from members.views import PAGE_SIZE

    bulk_members(5 * PAGE_SIZE)  # "m1" matches m1, m10-m19 and m100-m199: 111 members
    first, _, first_queries = _search_keyset_queries("m1", None)
    second, rows, queries = _search_keyset_queries("m1", first.next_after)
    _, third, _ = _search_keyset_queries("m1", second.next_after)
    matching = list(
        selectors.member_search(Member.objects.all(), "m1")
        .order_by(*selectors.member_ordering("name"))
        .values_list("pk", flat=True)
    )

    assert len(matching) == 111
    assert [m.pk for m in rows] == matching[PAGE_SIZE : 2 * PAGE_SIZE]
    assert [m.pk for m in third] == matching[2 * PAGE_SIZE :]
    assert len(queries) == len(first_queries) == 2
    assert queries[0]["sql"].lstrip().upper().startswith('SELECT "MEMBERS_MEMBER"."ID" AS "PK"')


@postgres_only
def test_a_search_keyset_page_walks_the_name_index_alone_for_its_keys(many_members):
    """The keys of a search's later page: an index-only scan of member_name_search from the
    key on, not a walk that fetches every filtered-out row from the table."""
    from members.views import PAGE_SIZE

    first, _, _ = _search_keyset_queries("ada", None)
    _, _, queries = _search_keyset_queries("ada", first.next_after)
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_bitmapscan = off")
        try:
            cursor.execute("EXPLAIN " + queries[0]["sql"])
            text = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("RESET enable_seqscan")
            cursor.execute("RESET enable_bitmapscan")
    assert len(many_members) > PAGE_SIZE
    assert "Index Only Scan using member_name_search" in text, text


@pytest.mark.parametrize("limit", [10, 20])
def test_a_page_counted_to_less_than_its_size_shows_that_many_and_goes_on(manager_client, limit):
    """`paginate(limit=…)` below the page size: one page of `limit` rows, "Next" from its last
    row, and the keyset pages after it reach every row once, whatever offset_limit says."""
    bulk_members(45)
    queryset = Member.objects.all()
    ordering = selectors.member_ordering("name")
    expected = list(queryset.order_by(*ordering).values_list("pk", flat=True))
    page = paging.paginate(queryset, ordering=ordering, per_page=20, number=1, limit=limit)
    seen = [m.pk for m in page.object_list]
    assert len(seen) == limit and page.paginator.capped and page.next_after
    after = page.next_after
    while after:
        keyset = paging.paginate(queryset, ordering=ordering, per_page=20, number=None, after=after)
        seen += [m.pk for m in keyset.object_list]
        after = keyset.next_after
    assert seen == expected
