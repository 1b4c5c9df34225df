"""License pages: who may do what, what happens on good and bad input, and the htmx fragments."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from assetsonar.models import AuditEvent
from conftest import make_asset, make_entitlement, make_license, make_member
from licenses.models import Entitlement, License
from licenses.services import license_unentitle
from licenses.views import ENTITLEMENT_PAGE_SIZE
from members.services import member_deactivate

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def license_post_data(**overrides) -> dict:
    data = {
        "name": "Sketch",
        "vendor": "Sketch B.V.",
        "kind": License.Kind.USER,
        "seats": "5",
        "expires_on": "",
        "cost": "99.00",
        "notes": "",
    }
    data.update(overrides)
    return data


# --- Access -----------------------------------------------------------------------------------


def test_anonymous_users_are_sent_to_sign_in_from_every_license_page(client):
    lic = make_license()
    entitlement = make_entitlement(license=lic, member=make_member())
    urls = [
        reverse("licenses:list"),
        reverse("licenses:detail", args=[lic.pk]),
        reverse("licenses:create"),
        reverse("licenses:edit", args=[lic.pk]),
        reverse("licenses:revoke", args=[lic.pk, entitlement.pk]),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("login")), url
    response = client.post(reverse("licenses:entitle", args=[lic.pk]))
    assert response.status_code == 302


def test_viewer_is_refused_every_license_write(viewer_client):
    lic = make_license(seats=5)
    entitlement = make_entitlement(license=lic, member=make_member())
    member = make_member()
    attempts = [
        ("get", reverse("licenses:create"), {}),
        ("post", reverse("licenses:create"), license_post_data()),
        ("get", reverse("licenses:edit", args=[lic.pk]), {}),
        ("post", reverse("licenses:edit", args=[lic.pk]), license_post_data(name="Changed")),
        ("post", reverse("licenses:entitle", args=[lic.pk]), {"entitle-member": member.email}),
        ("get", reverse("licenses:revoke", args=[lic.pk, entitlement.pk]), {}),
        ("post", reverse("licenses:revoke", args=[lic.pk, entitlement.pk]), {}),
    ]
    for method, url, data in attempts:
        response = getattr(viewer_client, method)(url, data)
        assert response.status_code == 403, (method, url)

    assert License.objects.count() == 1
    lic.refresh_from_db()
    assert lic.name != "Changed"
    assert Entitlement.objects.live().count() == 1


def test_viewer_sees_list_and_detail_without_write_buttons(viewer_client):
    lic = make_license()
    entitlement = make_entitlement(license=lic, member=make_member())

    listing = viewer_client.get(reverse("licenses:list")).content.decode()
    detail = viewer_client.get(reverse("licenses:detail", args=[lic.pk])).content.decode()

    assert reverse("licenses:create") not in listing
    assert reverse("licenses:edit", args=[lic.pk]) not in detail
    assert reverse("licenses:entitle", args=[lic.pk]) not in detail
    assert reverse("licenses:revoke", args=[lic.pk, entitlement.pk]) not in detail


def test_entitle_refuses_get(manager_client):
    response = manager_client.get(reverse("licenses:entitle", args=[make_license().pk]))

    assert response.status_code == 405


# --- List -------------------------------------------------------------------------------------


def test_list_shows_seat_use_expiry_badges_and_cost(manager_client):
    today = timezone.localdate()
    full = make_license(name="Full One", seats=1, cost="10.00")
    make_entitlement(license=full, member=make_member())
    make_license(name="Expired One", expires_on=today - timedelta(days=1))
    make_license(name="Soon One", expires_on=today + timedelta(days=10))

    page = manager_client.get(reverse("licenses:list")).content.decode()

    assert "1 / 1" in page
    assert 'class="seat-meter full" value="1" max="1"' in page
    assert 'badge badge-red">Expired' in page
    assert 'badge badge-amber">Expires' in page
    assert "10.00" in page


def test_list_searches_and_filters_by_kind_and_expiry(manager_client):
    today = timezone.localdate()
    make_license(name="Slack", vendor="Salesforce", kind=License.Kind.CLOUD)
    make_license(name="AutoCAD", vendor="Autodesk", kind=License.Kind.DEVICE)
    make_license(name="Old Tool", vendor="Acme", expires_on=today - timedelta(days=3))
    url = reverse("licenses:list")

    def names(**params) -> list[str]:
        return [lic.name for lic in manager_client.get(url, params).context["page_obj"]]

    assert names(q="sales") == ["Slack"]
    assert names(q="auto") == ["AutoCAD"]
    assert names(kind="device") == ["AutoCAD"]
    assert names(expiry="expired") == ["Old Tool"]
    assert names(expiry="valid") == ["AutoCAD", "Slack"]


def test_list_sorts_by_seats_used(manager_client):
    busy = make_license(name="Busy")
    make_license(name="Idle")
    make_entitlement(license=busy, member=make_member())
    url = reverse("licenses:list")

    def names(sort: str) -> list[str]:
        return [lic.name for lic in manager_client.get(url, {"sort": sort}).context["page_obj"]]

    assert names("-seats") == ["Busy", "Idle"]
    assert names("seats") == ["Idle", "Busy"]
    assert names("drop table") == ["Busy", "Idle"]  # not whitelisted: default (name) order


def test_list_answers_htmx_with_the_results_fragment_only(manager_client):
    make_license(name="Jira")

    response = manager_client.get(
        reverse("licenses:list"), {"kind": "user"}, HTTP_HX_TARGET="license-results", **HTMX
    )

    body = response.content.decode()
    assert body.lstrip().startswith('<section id="license-results"')
    assert "Jira" in body
    assert "<html" not in body


# --- Detail -----------------------------------------------------------------------------------


def test_detail_shows_seat_use_live_and_revoked_entitlements_and_audit(manager_client, it_manager):
    lic = make_license(name="Zoom", seats=4, kind=License.Kind.USER)
    holder = make_member(full_name="Live Holder")
    make_entitlement(license=lic, member=holder, asset=make_asset(asset_tag="AT-ZM-1"))
    gone = make_entitlement(license=lic, member=make_member(full_name="Former Holder"))
    license_unentitle(entitlement=gone, actor=it_manager, reason="Changed team")

    response = manager_client.get(reverse("licenses:detail", args=[lic.pk]))
    page = response.content.decode()

    assert "<strong>1</strong> of 4 seats used" in page
    assert "Live Holder" in page and "AT-ZM-1" in page and "Member on a device" in page
    assert "Former Holder" in page and "Changed team" in page
    assert "Entitlement revoked" in page  # audit trail
    assert response.context["live_entitlements"].paginator.count == 1
    assert response.context["revoked_entitlements"].paginator.count == 1


def test_detail_paginates_live_entitlements(manager_client):
    lic = make_license(seats=60)
    for _ in range(55):
        make_entitlement(license=lic, member=make_member())

    first = manager_client.get(reverse("licenses:detail", args=[lic.pk]))
    second = manager_client.get(reverse("licenses:detail", args=[lic.pk]), {"live_page": 2})

    assert ENTITLEMENT_PAGE_SIZE == 25
    assert len(first.context["live_entitlements"]) == 25
    assert len(second.context["live_entitlements"]) == 25
    third = manager_client.get(reverse("licenses:detail", args=[lic.pk]), {"live_page": 3})
    assert len(third.context["live_entitlements"]) == 5


def test_detail_pager_links_keep_the_other_pager_and_jump_to_their_section(manager_client):
    lic = make_license(seats=60)
    for _ in range(55):
        make_entitlement(license=lic, member=make_member())

    page = manager_client.get(
        reverse("licenses:detail", args=[lic.pk]), {"live_page": 2, "revoked_page": 1}
    ).content.decode()

    assert 'aria-label="Entitlement pages"' in page
    assert 'href="?live_page=1&amp;revoked_page=1#live-h" rel="prev"' in page
    assert "Page 2 of 3 · 55 total" in page


def test_detail_entitle_form_follows_the_license_kind(manager_client):
    device = make_license(kind=License.Kind.DEVICE)
    user = make_license(kind=License.Kind.USER)

    device_page = manager_client.get(reverse("licenses:detail", args=[device.pk])).content
    user_page = manager_client.get(reverse("licenses:detail", args=[user.pk])).content

    assert b'name="entitle-member"' not in device_page
    assert b'name="entitle-asset"' in device_page
    assert b'name="entitle-member"' in user_page


# --- Create and edit ---------------------------------------------------------------------------


def test_manager_creates_a_license(manager_client):
    response = manager_client.post(reverse("licenses:create"), license_post_data(), follow=True)

    lic = License.objects.get(name="Sketch")
    assert response.redirect_chain == [(lic.get_absolute_url(), 302)]
    assert "License Sketch added." in response.content.decode()


def test_create_with_bad_input_shows_field_errors_and_saves_nothing(manager_client):
    response = manager_client.post(
        reverse("licenses:create"), license_post_data(name="", seats="0", cost="-5")
    )

    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"name", "seats", "cost"}
    assert "nothing was saved" in response.content.decode()
    assert not License.objects.exists()


def test_edit_refuses_seats_below_those_in_use(manager_client):
    lic = make_license(name="Miro", seats=5)
    for _ in range(3):
        make_entitlement(license=lic, member=make_member())

    response = manager_client.post(
        reverse("licenses:edit", args=[lic.pk]),
        license_post_data(name="Miro renamed", seats="2"),
    )

    assert response.status_code == 200
    assert "3 seats are in use" in response.context["form"].errors["seats"][0]
    assert response.context["license"].name == "Miro"
    lic.refresh_from_db()
    assert (lic.name, lic.seats) == ("Miro", 5)


def test_edit_refuses_a_kind_change_once_the_license_has_history(manager_client, it_manager):
    lic = make_license(kind=License.Kind.USER)
    entitlement = make_entitlement(license=lic, member=make_member())
    license_unentitle(entitlement=entitlement, actor=it_manager)

    response = manager_client.post(
        reverse("licenses:edit", args=[lic.pk]),
        license_post_data(name=lic.name, vendor=lic.vendor, kind="device"),
    )

    assert response.status_code == 200
    assert "cannot change" in response.context["form"].errors["kind"][0]
    lic.refresh_from_db()
    assert lic.kind == License.Kind.USER


def test_manager_edits_a_license(manager_client):
    lic = make_license(seats=3)

    response = manager_client.post(
        reverse("licenses:edit", args=[lic.pk]), license_post_data(seats="30")
    )

    assert response.status_code == 302
    lic.refresh_from_db()
    assert lic.seats == 30
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CHANGED).exists()


# --- Entitle and revoke ------------------------------------------------------------------------


def test_entitle_a_member_by_employee_id_redirects_with_a_message(manager_client):
    lic = make_license(name="Notion")
    member = make_member(full_name="Kim", employee_id="E31337")

    response = manager_client.post(
        reverse("licenses:entitle", args=[lic.pk]), {"entitle-member": "E31337"}, follow=True
    )

    assert response.redirect_chain == [(lic.get_absolute_url(), 302)]
    assert "Notion given to Kim." in response.content.decode()
    assert Entitlement.objects.live().get(license=lic).member == member


def test_entitle_a_device_by_htmx_answers_with_hx_redirect(manager_client):
    lic = make_license(kind=License.Kind.DEVICE)
    asset = make_asset(asset_tag="AT-EN-1")

    response = manager_client.post(
        reverse("licenses:entitle", args=[lic.pk]), {"entitle-asset": "AT-EN-1"}, **HTMX
    )

    assert response["HX-Redirect"] == lic.get_absolute_url()
    assert Entitlement.objects.live().get(license=lic).asset == asset


def test_entitle_past_the_last_seat_shows_the_service_message_and_saves_nothing(manager_client):
    lic = make_license(name="Loom", seats=1)
    make_entitlement(license=lic, member=make_member())

    response = manager_client.post(
        reverse("licenses:entitle", args=[lic.pk]),
        {"entitle-member": make_member().email},
        **HTMX,
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<form id="entitle-form"')
    assert "All 1 seats of Loom are in use." in body
    assert "HX-Redirect" not in response
    assert Entitlement.objects.filter(license=lic).count() == 1


def test_entitle_a_deactivated_member_is_refused_on_the_member_field(manager_client, it_manager):
    member, _ = member_deactivate(member=make_member(), actor=it_manager, reason="Left")
    lic = make_license()

    response = manager_client.post(
        reverse("licenses:entitle", args=[lic.pk]), {"entitle-member": member.email}
    )

    assert response.status_code == 200
    assert "deactivated" in response.context["entitle_form"].errors["member"][0]
    assert "<html" in response.content.decode()  # without JavaScript: the whole detail page
    assert not Entitlement.objects.exists()


def test_entitle_an_expired_license_is_refused(manager_client):
    lic = make_license(expires_on=timezone.localdate() - timedelta(days=2))

    response = manager_client.post(
        reverse("licenses:entitle", args=[lic.pk]), {"entitle-member": make_member().email}
    )

    assert "expired" in response.context["entitle_form"].non_field_errors()[0]
    assert not Entitlement.objects.exists()


def test_revoke_dialog_is_loaded_by_htmx_and_asks_to_open(manager_client):
    lic = make_license()
    entitlement = make_entitlement(license=lic, member=make_member())

    response = manager_client.get(reverse("licenses:revoke", args=[lic.pk, entitlement.pk]), **HTMX)

    assert response.content.decode().lstrip().startswith('<form id="revoke-form"')
    assert "revoke-dialog" in response["HX-Trigger-After-Swap"]


def test_revoke_keeps_the_entitlement_as_history(manager_client, it_manager):
    lic = make_license()
    entitlement = make_entitlement(license=lic, member=make_member())

    response = manager_client.post(
        reverse("licenses:revoke", args=[lic.pk, entitlement.pk]),
        {"revoke-reason": "Moved to another team"},
    )

    assert response.status_code == 302
    entitlement.refresh_from_db()
    assert entitlement.revoked_by == it_manager
    assert entitlement.revoked_reason == "Moved to another team"


def test_revoking_twice_changes_once(manager_client):
    lic = make_license()
    entitlement = make_entitlement(license=lic, member=make_member())
    url = reverse("licenses:revoke", args=[lic.pk, entitlement.pk])

    manager_client.post(url, {"revoke-reason": "First"})
    second = manager_client.post(url, {"revoke-reason": "Second"}, follow=True)

    assert "was already revoked" in second.content.decode()
    entitlement.refresh_from_db()
    assert entitlement.revoked_reason == "First"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVOKED).count() == 1


def test_revoke_of_another_licenses_entitlement_is_404(manager_client):
    entitlement = make_entitlement(license=make_license(), member=make_member())
    other = make_license()

    response = manager_client.post(reverse("licenses:revoke", args=[other.pk, entitlement.pk]))

    assert response.status_code == 404
    entitlement.refresh_from_db()
    assert entitlement.is_live


def test_detail_counts_the_revoked_history_to_its_limit_then_says_so(manager_client, monkeypatch):
    from licenses import views

    monkeypatch.setattr(views, "REVOKED_COUNT_LIMIT", 2)
    lic = make_license(seats=10)
    for _ in range(3):
        license_unentitle(
            entitlement=make_entitlement(license=lic, member=make_member()),
            actor=None,
            reason="Moved",
        )

    response = manager_client.get(reverse("licenses:detail", args=[lic.pk]))

    assert response.context["revoked_entitlements"].paginator.count == 2
    assert "2+ revoked" in response.content.decode()
