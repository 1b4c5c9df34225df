"""The license list and detail pages cost a fixed number of queries whatever the data size."""

from __future__ import annotations

import pytest
from django.urls import reverse

from conftest import make_asset, make_entitlement, make_license, make_member
from licenses.models import License
from licenses.services import license_unentitle

pytestmark = pytest.mark.django_db

# Session, user, user permissions, group permissions, count, page (seats annotated in it).
LIST_BUDGET = 7  # +1: the navigation's approvals count
# Session, user, permissions (2), license (seats used is a column), the live page's ids and
# rows (its count is the license's), the revoked count and page, and the audit trail.
DETAIL_BUDGET = 11  # +1: the navigation's approvals count


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
