"""Query budgets of the SCIM list: filtered and paged, the same at two data sizes."""

from __future__ import annotations

import pytest

from members.models import Member

pytestmark = pytest.mark.django_db

# Token lookup, count, page, request log row: 4; plus the token's last use, written at most once a
# minute. Manager ids come from the member row itself: no join, no query per member.
BUDGET = 5


def seed(n: int) -> list[Member]:
    boss = Member.objects.create(full_name="Boss", email="boss@example.com", family_name="Boss")
    Member.objects.bulk_create(
        Member(
            full_name=f"Person {i}",
            email=f"person{i}@example.com",
            given_name="Person",
            family_name="Rivera" if i % 2 else "Lee",
            employee_id=f"E{i:06d}",
            department="Engineering",
            location="Berlin",
            title="Engineer",
            manager=boss,
        )
        for i in range(n)
    )
    return list(Member.objects.all())


@pytest.fixture
def get(client, scim_secret):
    def call(path):
        response = client.get("/scim/v2" + path, HTTP_AUTHORIZATION=f"Bearer {scim_secret}")
        assert response.status_code == 200, response.content
        return response.json()

    return call


@pytest.mark.parametrize("size", [10, 120])
def test_filtered_list_has_a_fixed_query_budget(get, size, django_assert_max_num_queries):
    seed(size)
    get("/ServiceProviderConfig")  # the token's last use is written once a minute at most
    with django_assert_max_num_queries(BUDGET) as captured:
        body = get('/Users?filter=name.familyName eq "rivera" and active eq true&count=100')
    # The filter is SQL: the page is one SELECT with the condition and a LIMIT, never every
    # member loaded and matched in Python.
    (page_sql,) = [
        q["sql"]
        for q in captured.captured_queries
        if 'FROM "members_member"' in q["sql"] and "COUNT(" not in q["sql"]
    ]
    assert 'LOWER("members_member"."family_name")' in page_sql and "LIMIT 100" in page_sql
    assert body["totalResults"] == size // 2
    assert len(body["Resources"]) == min(100, size // 2)
    assert all(r["name"]["familyName"] == "Rivera" for r in body["Resources"])

    with django_assert_max_num_queries(BUDGET):
        body = get('/Users?filter=userName eq "PERSON3@example.com"')
    assert [r["userName"] for r in body["Resources"]] == ["person3@example.com"]


@pytest.mark.parametrize("size", [10, 120])
def test_paging_has_a_fixed_query_budget(get, size, django_assert_max_num_queries):
    members = seed(size)
    get("/ServiceProviderConfig")
    seen = []
    start = 1
    while True:
        with django_assert_max_num_queries(BUDGET):
            body = get(f"/Users?startIndex={start}&count=50")
        assert body["totalResults"] == size + 1
        assert body["startIndex"] == start
        seen += [r["id"] for r in body["Resources"]]
        if not body["Resources"]:
            break
        start += body["itemsPerPage"]
    # Every member once, newest first, no page overlapping another.
    assert seen == [str(m.pk) for m in sorted(members, key=lambda m: -m.pk)]
    assert get("/Users?count=0")["Resources"] == []
