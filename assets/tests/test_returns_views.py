"""Where device returns show: the Returns view (filters, paging, CSV, permissions, query budget
at two sizes), the dashboard's overdue card, the asset and member pages, the Django admin."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from assets.models import ReturnRequest
from assets.returns import return_requests_open, returns_remind_due
from assetsonar import roles
from assetsonar.tests.test_admin import admin_url
from conftest import make_asset, make_member, make_user

pytestmark = pytest.mark.django_db

# Session, user, user and group permissions (2), the departments for the filter, count, page.
LIST_BUDGET = 8  # +1: the navigation's approvals count


def request_returns(member, n=1, *, overdue=False):
    assets = [make_asset(custodian=member) for _ in range(n)]
    opened = return_requests_open(
        member=member, assets=assets, actor=None, reminder_every_days=2, send=False
    )
    if overdue:
        # Past the first reminder: its due date moved back, then the sweep (its emails go to
        # Django's test mail backend here).
        ReturnRequest.objects.filter(pk__in=[o.request.pk for o in opened]).update(
            next_reminder_at=timezone.now() - timedelta(minutes=1)
        )
        returns_remind_due(now=timezone.now())
    return [o.request for o in opened]


def rows(response) -> list[str]:
    return [r.asset.asset_tag for r in response.context["page_obj"]]


@pytest.mark.parametrize("size", [3, 60])
def test_returns_view_query_budget(manager_client, django_assert_max_num_queries, size):
    for n in range(size):
        request_returns(make_member(department=f"Dept {n % 3}"), overdue=n % 2 == 0)

    for params in ({}, {"status": "overdue", "department": "Dept 1", "q": "Mem"}):
        with django_assert_max_num_queries(LIST_BUDGET):
            response = manager_client.get(reverse("assets:returns"), params)
        assert response.status_code == 200
    assert len(manager_client.get(reverse("assets:returns")).context["page_obj"]) == min(size, 50)


def test_returns_view_lists_open_requests_newest_first_with_what_is_due(manager_client):
    jordan = make_member(full_name="Jordan Rivera", department="Sales")
    (late,) = request_returns(jordan, overdue=True)
    (fresh,) = request_returns(make_member(full_name="Kim Lee", department="Legal"))

    response = manager_client.get(reverse("assets:returns"))

    assert rows(response) == [fresh.asset.asset_tag, late.asset.asset_tag]
    text = " ".join(response.content.decode().split())
    assert "Jordan Rivera" in text and "Overdue" in text and "1 / 3" in text
    assert 'aria-current="page">Returns<' in text


def test_returns_view_filters(manager_client, it_manager):
    from assets.services import asset_check_in

    (late,) = request_returns(
        make_member(full_name="Jordan Rivera", department="Sales", email="jr@example.com"),
        overdue=True,
    )
    (fresh,) = request_returns(make_member(full_name="Kim Lee", department="Legal"))
    (done,) = request_returns(make_member(full_name="Lou Park", department="Sales"))
    asset_check_in(asset=done.asset, actor=it_manager)

    def tags(**params):
        return rows(manager_client.get(reverse("assets:returns"), params))

    assert tags(status="overdue") == [late.asset.asset_tag]
    assert tags(status="closed") == [done.asset.asset_tag]
    assert set(tags(status="all")) == {
        late.asset.asset_tag,
        fresh.asset.asset_tag,
        done.asset.asset_tag,
    }
    assert tags(department="Sales") == [late.asset.asset_tag]  # open is the default
    assert tags(q="kim") == [fresh.asset.asset_tag]
    assert tags(q="jr@ex", status="all") == [late.asset.asset_tag]


def test_returns_view_pages_are_capped_and_keyset(manager_client):
    member = make_member()
    request_returns(member, 55)

    first = manager_client.get(reverse("assets:returns"))
    second = manager_client.get(reverse("assets:returns"), {"page": 2})

    assert len(first.context["page_obj"]) == 50 and len(second.context["page_obj"]) == 5
    assert not set(rows(first)) & set(rows(second))


def test_returns_view_csv_export(manager_client):
    (late,) = request_returns(make_member(full_name="=cmd Rivera"), overdue=True)

    response = manager_client.get(reverse("assets:returns"), {"format": "csv", "status": "overdue"})

    assert response["Content-Type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(response.content.decode())))
    assert lines[0][:3] == ["asset_tag", "device", "member"]
    assert lines[1][0] == late.asset.asset_tag
    assert lines[1][2] == "'=cmd Rivera"  # not run as a formula
    assert lines[1][6] == "1" and lines[1][9] == "yes"


def test_returns_view_needs_the_asset_permission(client, django_user_model):
    nobody = django_user_model.objects.create_user("nobody", password="x-Secret-1")
    client.force_login(nobody)
    assert client.get(reverse("assets:returns")).status_code == 403
    viewer = make_user("watcher", roles.VIEWER)
    client.force_login(viewer)
    assert client.get(reverse("assets:returns")).status_code == 200


def test_dashboard_counts_overdue_returns_and_links_to_them(manager_client):
    request_returns(make_member(), 2, overdue=True)
    request_returns(make_member())

    response = manager_client.get(reverse("dashboard"))

    assert response.context["returns_overdue"] == 2
    html = " ".join(response.content.decode().split())
    assert (
        f'href="{reverse("assets:returns")}?status=overdue"><span class="value">2</span>'
        '<span class="label">Device returns overdue</span>'
    ) in html
    # Assets in custody still counts the three devices on their way back.
    assert response.context["assets"]["in_custody"] == 3


def test_asset_page_shows_the_open_request(manager_client):
    (request,) = request_returns(make_member(), overdue=True)

    html = " ".join(manager_client.get(request.asset.get_absolute_url()).content.decode().split())

    assert "Return requested" in html
    assert "Reminders sent</dt><dd>1 of 3" in html
    assert "Check in" in html  # a returning device is checked in as any other


def test_member_page_lists_their_open_returns(manager_client, it_manager):
    from assets.services import asset_check_in

    member = make_member()
    first, second = request_returns(member, 2)
    asset_check_in(asset=second.asset, actor=it_manager)

    response = manager_client.get(reverse("members:detail", args=[member.pk]))

    assert [r.pk for r in response.context["open_returns"]] == [first.pk]
    assert "Devices to return (1)" in response.content.decode()


def test_admin_lists_return_requests_read_only_for_support_staff(client, support_staff):
    (request,) = request_returns(make_member(full_name="Jordan Rivera"))
    client.force_login(support_staff)

    listing = client.get(admin_url("assets", "returnrequest", "changelist"), {"q": "jordan"})
    page = client.get(admin_url("assets", "returnrequest", "change", request.pk))

    assert listing.status_code == 200 and request.asset.asset_tag in listing.content.decode()
    assert page.status_code == 200
    assert client.get(admin_url("assets", "returnrequest", "add")).status_code == 403


@pytest.mark.parametrize("size", [1, 30])
def test_member_and_asset_pages_with_open_returns_stay_within_budget(
    manager_client, django_assert_max_num_queries, size
):
    from assets.tests.test_query_budget import DETAIL_BUDGET
    from members.tests.test_views import DETAIL_QUERY_BUDGET

    member = make_member()
    requests = request_returns(member, size, overdue=True)

    # One query more than the page without returns: the member's open requests.
    with django_assert_max_num_queries(DETAIL_QUERY_BUDGET + 1):
        response = manager_client.get(reverse("members:detail", args=[member.pk]))
    assert len(response.context["open_returns"]) == size
    with django_assert_max_num_queries(DETAIL_BUDGET):
        response = manager_client.get(requests[-1].asset.get_absolute_url())
    assert response.context["open_return"] == requests[-1]
