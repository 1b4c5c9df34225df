"""The asset list and detail pages cost a fixed number of queries whatever the data size."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from assets.services import asset_check_in, asset_check_out
from assets.tests.factories import make_mdm_connection
from conftest import make_asset, make_entitlement, make_license, make_member
from licenses.models import License

pytestmark = pytest.mark.django_db

# Session, user, user permissions, group permissions, departments for the filter, count, page.
LIST_BUDGET = 8  # +1: the navigation's approvals count
# Session, user, user and group permissions, asset, then a count and a page for custody history,
# live and revoked entitlements (6), the audit trail, the MDM panel's command history, and the
# open return request of a device someone holds.
DETAIL_BUDGET = 15  # +1: the navigation's approvals count


def _populate_assets(size: int) -> None:
    connection = make_mdm_connection()
    for n in range(size):
        member = make_member(department=f"Dept {n % 3}")
        make_asset(
            custodian=member if n % 2 else None,
            mdm_connection=connection if n % 3 == 0 else None,
            mdm_device_id=f"dev-{n}" if n % 3 == 0 else "",
        )


@pytest.mark.parametrize("size", [3, 60])
def test_asset_list_query_budget(manager_client, django_assert_max_num_queries, size):
    _populate_assets(size)

    with django_assert_max_num_queries(LIST_BUDGET):
        response = manager_client.get(reverse("assets:list"), {"sort": "custodian"})

    assert response.status_code == 200
    assert len(response.context["page_obj"]) == min(size, 50)


@pytest.mark.parametrize("size", [3, 60])
def test_asset_list_htmx_fragment_query_budget(manager_client, django_assert_max_num_queries, size):
    _populate_assets(size)

    with django_assert_max_num_queries(LIST_BUDGET):
        response = manager_client.get(
            reverse("assets:list"),
            {"department": "Dept 1"},
            HTTP_HX_REQUEST="true",
            HTTP_HX_TARGET="asset-results",
        )

    assert response.status_code == 200


@pytest.mark.parametrize("size", [2, 40])
def test_asset_detail_query_budget(manager_client, it_manager, django_assert_max_num_queries, size):
    asset = make_asset(mdm_connection=make_mdm_connection(), mdm_device_id="dev-x")
    for _ in range(size):
        asset_check_out(asset=asset, member=make_member(), actor=it_manager, note="loan")
        asset_check_in(asset=asset, actor=it_manager)
    asset_check_out(asset=asset, member=make_member(), actor=it_manager)
    for _ in range(size):
        lic = make_license(kind=License.Kind.USER)
        make_entitlement(license=lic, member=make_member(), asset=asset)
        revoked = make_entitlement(license=lic, asset=asset, member=make_member())
        revoked.revoked_at = timezone.now()
        revoked.revoked_by = it_manager
        revoked.save()

    with django_assert_max_num_queries(DETAIL_BUDGET):
        response = manager_client.get(reverse("assets:detail", args=[asset.pk]))

    assert response.status_code == 200
    assert response.context["custody"].paginator.count == size + 1
