"""The license list and detail pages cost a fixed number of queries whatever the data size."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conftest import make_asset, make_entitlement, make_license, make_member
from licenses.models import License
from licenses.services import license_unentitle

pytestmark = pytest.mark.django_db

# Session, user, user permissions, group permissions, count, page (seats annotated in it).
LIST_BUDGET = 7  # +1: the navigation's approvals count
# Session, user, permissions (2), license (seats used is a column, the revoked count a subquery
# of its row), the live page (its keys a subquery; its count is the license's), the revoked
# page, and the audit trail.
DETAIL_BUDGET = 9  # +1: the navigation's approvals count


@pytest.mark.parametrize("size", [3, 60])
def test_license_list_query_budget(manager_client, django_assert_max_num_queries, size):
    members = [make_member() for _ in range(5)]
    for n in range(size):
        lic = make_license(kind=License.Kind.USER, seats=10)
        for member in members[: n % 5]:
            make_entitlement(license=lic, member=member)

    with django_assert_max_num_queries(LIST_BUDGET):
        response = manager_client.get(reverse("licenses:list"), {"sort": "-seats"})

    assert response.status_code == 200
    assert len(response.context["page_obj"]) == min(size, 50)


@pytest.mark.parametrize("size", [2, 70])
def test_license_detail_query_budget(
    manager_client, it_manager, django_assert_max_num_queries, size
):
    lic = make_license(kind=License.Kind.USER, seats=1000)
    for _ in range(size):
        make_entitlement(license=lic, member=make_member(), asset=make_asset())
        revoked = make_entitlement(license=lic, member=make_member())
        license_unentitle(entitlement=revoked, actor=it_manager)

    with django_assert_max_num_queries(DETAIL_BUDGET):
        response = manager_client.get(reverse("licenses:detail", args=[lic.pk]))

    assert response.status_code == 200
    assert response.context["live_entitlements"].paginator.count == size


def test_a_page_of_live_entitlements_is_one_query_with_its_keys_as_a_subquery(
    manager_client, django_assert_max_num_queries
):
    # 30 live seats: page 1 holds the newest 25, page 2 the oldest 5, each in one query whose
    # keys (an index-only scan of the live partial index on PostgreSQL) are a LIMIT subquery.
    lic = make_license(kind=License.Kind.USER, seats=100)
    given = [make_entitlement(license=lic, member=make_member()) for _ in range(30)]
    newest_first = [entitlement.pk for entitlement in reversed(given)]
    shown = []
    for page in ("1", "2"):
        with CaptureQueriesContext(connection) as queries:
            response = manager_client.get(
                reverse("licenses:detail", args=[lic.pk]), {"live_page": page}
            )
        assert response.status_code == 200
        shown += [entitlement.pk for entitlement in response.context["live_entitlements"]]
        live = [
            q["sql"]
            for q in queries.captured_queries
            if '"licenses_entitlement"' in q["sql"] and '"revoked_at" IS NULL' in q["sql"]
        ]
        assert len(live) == 1, live
        assert re.search(r" IN \(SELECT .* LIMIT \d+( OFFSET 25)?\)\) ORDER BY", live[0]), live[0]
    assert shown == newest_first


@pytest.mark.parametrize(("revoked", "shown"), [(0, None), (3, "3 revoked"), (5, "4+ revoked")])
def test_the_revoked_count_is_read_with_the_license(manager_client, monkeypatch, revoked, shown):
    from licenses import views

    monkeypatch.setattr(views, "REVOKED_COUNT_LIMIT", 4)
    lic = make_license(kind=License.Kind.USER, seats=100)
    for _ in range(revoked):
        license_unentitle(
            entitlement=make_entitlement(license=lic, member=make_member()), actor=None
        )

    with CaptureQueriesContext(connection) as queries:
        response = manager_client.get(reverse("licenses:detail", args=[lic.pk]))

    assert response.status_code == 200
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(*)" in q["sql"]]
    (with_license,) = [sql for sql in counts if sql.startswith('SELECT "licenses_license"')]
    assert '"revoked_at" IS NOT NULL' in with_license and "LIMIT 5" in with_license
    assert not [sql for sql in counts if '"licenses_entitlement"' in sql and sql != with_license]
    paginator = response.context["revoked_entitlements"].paginator
    assert (paginator.count, paginator.capped) == (min(revoked, 4), revoked > 4)
    html = response.content.decode()
    if shown:
        assert shown in html
    else:
        assert "No entitlement has been revoked." in html
