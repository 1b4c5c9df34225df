"""The dashboard: its counts, and a query budget that does not grow with the data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from assets.models import Asset
from assetsonar.selectors import EXPIRY_WARNING_DAYS
from conftest import make_asset, make_entitlement, make_license, make_member
from licenses.services import license_unentitle
from members.services import member_deactivate

pytestmark = pytest.mark.django_db

# Session, user, the user's and their groups' permissions (what the page and the navigation may
# show depends on them), then one query each: the tallies (member and asset counts), the
# company time zone, the cards' counts (upcoming offboardings, overdue device returns, holding:
# one query, assetsonar.paging.counts_at_once), holding rows, expiring licenses, seat use.
QUERY_BUDGET = 11  # +1: the navigation's approvals count


def _deactivate(member):
    member, _ = member_deactivate(member=member, actor=None, reason="Left the company")
    return member


def test_dashboard_counts(manager_client):
    today = timezone.localdate()
    make_member(full_name="Active Alone")
    make_member(full_name="Active Other")
    holder = make_member(full_name="Active Holder")
    make_asset(custodian=holder)
    make_asset()  # available
    make_asset(status=Asset.Status.RETIRED)

    still_has_laptop = make_member(full_name="Gone With Laptop")
    make_asset(custodian=still_has_laptop)
    _deactivate(still_has_laptop)
    still_has_seat = make_member(full_name="Gone With Seat")
    make_entitlement(license=make_license(name="Figma"), member=still_has_seat)
    _deactivate(still_has_seat)
    handed_back = make_member(full_name="Gone Clean Revoked")
    seat = make_entitlement(license=make_license(name="Slack"), member=handed_back)
    license_unentitle(entitlement=seat, actor=None, reason="Offboarding")
    _deactivate(handed_back)
    _deactivate(make_member(full_name="Gone Never Held"))

    make_license(name="Expired", expires_on=today - timedelta(days=3))
    make_license(name="Last Warning Day", expires_on=today + timedelta(days=EXPIRY_WARNING_DAYS))
    make_license(name="Later", expires_on=today + timedelta(days=EXPIRY_WARNING_DAYS + 1))
    make_license(name="Perpetual")

    response = manager_client.get(reverse("dashboard"))

    assert response.status_code == 200
    context = response.context
    assert context["members"] == {"active": 3, "deactivated": 4}
    assert context["assets"]["in_custody"] == 2
    assert context["assets"]["available"] == 1
    assert context["assets"]["total"] == 4
    assert context["holding_count"] == 2
    assert {m.full_name for m in context["holding"]} == {"Gone With Laptop", "Gone With Seat"}
    assert [lic.name for lic in context["expiring"]] == ["Expired", "Last Warning Day"]
    seats_used = {lic.name: lic.seats_used for lic in context["seat_use"]}
    assert seats_used["Figma"] == 1
    assert seats_used["Slack"] == 0
    html = response.content.decode()
    assert "Gone With Laptop" in html
    assert "Gone Never Held" not in html
    assert "Expired" in html


def test_dashboard_with_no_data_renders_empty_states(manager_client):
    response = manager_client.get(reverse("dashboard"))

    assert response.status_code == 200
    assert response.context["holding_count"] == 0
    assert "Every deactivated member has handed everything back." in response.content.decode()


def _populate(size: int) -> None:
    """`size` of everything the dashboard lists, so each of its sections has rows."""
    today = timezone.localdate()
    for n in range(size):
        keeps_laptop = make_member()
        make_asset(custodian=keeps_laptop)
        _deactivate(keeps_laptop)
        keeps_seat = make_member()
        lic = make_license(expires_on=today + timedelta(days=n % EXPIRY_WARNING_DAYS))
        make_entitlement(license=lic, member=keeps_seat)
        _deactivate(keeps_seat)
        make_asset(custodian=make_member())


def test_dashboard_query_count_does_not_grow_with_data(
    manager_client, django_assert_max_num_queries
):
    counts = []
    for size in (2, 15):
        _populate(size)
        cache.clear()  # each request as a first one: the navigation's approvals count is cached
        with django_assert_max_num_queries(QUERY_BUDGET) as captured:
            response = manager_client.get(reverse("dashboard"))
        assert response.status_code == 200
        counts.append(len(captured.captured_queries))

    # 2 and then 17 of each: the lists are full (10 rows) the second time.
    assert response.context["holding_count"] == 34
    assert counts[0] == counts[1]


def test_the_upcoming_offboardings_card_counts_the_next_14_days_and_links_to_the_page(
    manager_client,
):
    from datetime import timedelta

    from assetsonar.models import PortalSettings
    from members.selectors import company_today

    PortalSettings.load()
    PortalSettings.objects.update(company_time_zone="Europe/Berlin")
    today = company_today("Europe/Berlin")
    make_member(last_working_day=today)
    make_member(last_working_day=today + timedelta(days=14))
    make_member(last_working_day=today + timedelta(days=15))  # later
    make_member(last_working_day=today - timedelta(days=1))  # past
    gone = make_member(last_working_day=today + timedelta(days=3))
    gone.status, gone.deactivated_at = "deactivated", gone.created_at
    gone.save()

    response = manager_client.get(reverse("dashboard"))

    assert response.context["upcoming_offboardings"] == 2
    html = response.content.decode()
    link = f'href="{reverse("members:upcoming")}?days=14"'
    assert link in html
    assert "Upcoming offboardings (next 14 days)" in html


def test_the_holding_tile_counts_to_its_limit_then_says_so(manager_client, monkeypatch):
    from assetsonar import selectors as dashboard_selectors

    monkeypatch.setattr(dashboard_selectors, "HOLDING_COUNT_LIMIT", 2)
    for _ in range(3):
        member = make_member()
        make_asset(custodian=member)
        _deactivate(member)

    response = manager_client.get(reverse("dashboard"))

    assert response.context["holding_count"] == 2
    assert response.context["holding_capped"] is True
    assert '<span class="value">2+</span>' in response.content.decode()
    assert len(response.context["holding"]) == 3  # the list is not capped by the count
