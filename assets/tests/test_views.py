"""Asset pages: who may do what, what happens on good and bad input, and the htmx fragments."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from assets.models import Asset, CustodyRecord
from assetsonar.models import AuditEvent
from conftest import make_asset, make_entitlement, make_license, make_member
from licenses.models import License
from members.services import member_deactivate

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def asset_post_data(**overrides) -> dict:
    data = {
        "asset_tag": "AT-70001",
        "name": "MacBook Air",
        "category": Asset.Category.LAPTOP,
        "platform": Asset.Platform.MACOS,
        "manufacturer": "Apple",
        "model": "M3",
        "serial_number": "C02-70001",
        "status": Asset.Status.AVAILABLE,
        "mdm_connection": "",
        "mdm_device_id": "",
        "notes": "",
    }
    data.update(overrides)
    return data


def write_urls(asset: Asset) -> list[str]:
    return [
        reverse("assets:create"),
        reverse("assets:edit", args=[asset.pk]),
        reverse("assets:check_out", args=[asset.pk]),
        reverse("assets:check_in", args=[asset.pk]),
    ]


# --- Access -----------------------------------------------------------------------------------


def test_anonymous_users_are_sent_to_sign_in_from_every_asset_page(client):
    asset = make_asset()
    for url in [reverse("assets:list"), reverse("assets:detail", args=[asset.pk])] + write_urls(
        asset
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("login")), url


@pytest.mark.parametrize("method", ["get", "post"])
def test_viewer_is_refused_every_asset_write(viewer_client, method):
    member = make_member()
    asset = make_asset(custodian=member)
    before = CustodyRecord.objects.count()

    for url in write_urls(asset):
        response = getattr(viewer_client, method)(url, asset_post_data())
        assert response.status_code == 403, url

    assert Asset.objects.count() == 1
    assert CustodyRecord.objects.count() == before
    asset.refresh_from_db()
    assert asset.custodian == member


def test_support_staff_is_refused_checking_out(client, support_staff):
    client.force_login(support_staff)
    asset = make_asset()

    response = client.post(
        reverse("assets:check_out", args=[asset.pk]), {"check_out-member": make_member().email}
    )

    assert response.status_code == 403
    asset.refresh_from_db()
    assert asset.status == Asset.Status.AVAILABLE


def test_refusal_is_written_to_the_audit_log(viewer_client, viewer):
    viewer_client.post(reverse("assets:create"), asset_post_data())

    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.PERMISSION_DENIED, actor=viewer
    ).exists()


def test_viewer_sees_list_and_detail_without_write_buttons(viewer_client):
    asset = make_asset()

    listing = viewer_client.get(reverse("assets:list"))
    detail = viewer_client.get(reverse("assets:detail", args=[asset.pk]))

    assert listing.status_code == detail.status_code == 200
    assert reverse("assets:create") not in listing.content.decode()
    page = detail.content.decode()
    assert reverse("assets:edit", args=[asset.pk]) not in page
    assert reverse("assets:check_out", args=[asset.pk]) not in page


def test_list_refuses_other_http_methods(manager_client):
    assert manager_client.post(reverse("assets:list")).status_code == 405
    assert (
        manager_client.delete(reverse("assets:detail", args=[make_asset().pk])).status_code == 405
    )


# --- List -------------------------------------------------------------------------------------


def test_list_shows_the_columns_and_links_the_custodian(manager_client):
    member = make_member(full_name="Grace Hopper")
    make_asset(asset_tag="AT-LIST-1", name="Dell XPS", custodian=member)

    page = manager_client.get(reverse("assets:list")).content.decode()

    assert "AT-LIST-1" in page
    assert "Dell XPS" in page
    assert "In custody" in page
    assert "Grace Hopper" in page
    assert reverse("members:detail", args=[member.pk]) in page


def test_list_searches_tag_prefix_serial_and_name_prefix(manager_client):
    make_asset(asset_tag="AT-SRCH-1", name="Alpha", serial_number="ZZ-111")
    make_asset(asset_tag="BX-2", name="Beta phone", serial_number="QQ-222")
    url = reverse("assets:list")

    def tags(query: str) -> list[str]:
        response = manager_client.get(url, {"q": query})
        return [a.asset_tag for a in response.context["page_obj"]]

    assert tags("at-srch") == ["AT-SRCH-1"]
    assert tags("QQ-222") == ["BX-2"]
    assert tags("beta") == ["BX-2"]
    assert tags("phone") == []  # name matches by prefix only


def test_list_filters_by_status_platform_department_and_mdm(manager_client):
    from assets.tests.factories import make_mdm_connection

    sales = make_member(department="Sales")
    make_asset(asset_tag="AT-F-1", custodian=sales, platform=Asset.Platform.WINDOWS)
    make_asset(
        asset_tag="AT-F-2",
        mdm_connection=make_mdm_connection(),
        mdm_device_id="d-2",
        platform=Asset.Platform.MACOS,
    )
    make_asset(asset_tag="AT-F-3", status=Asset.Status.RETIRED, platform=Asset.Platform.MACOS)
    url = reverse("assets:list")

    def tags(**params) -> list[str]:
        response = manager_client.get(url, params)
        return [a.asset_tag for a in response.context["page_obj"]]

    assert tags(status="in_custody") == ["AT-F-1"]
    assert tags(platform="macos") == ["AT-F-2", "AT-F-3"]
    assert tags(department="Sales") == ["AT-F-1"]
    assert tags(mdm="enrolled") == ["AT-F-2"]
    assert tags(mdm="not_enrolled", platform="macos") == ["AT-F-3"]


def test_list_shows_an_error_for_an_unknown_filter_value_and_ignores_it(manager_client):
    make_asset()

    response = manager_client.get(reverse("assets:list"), {"status": "melted"})

    assert response.status_code == 200
    assert "status" in response.context["filter"].form.errors
    assert len(response.context["page_obj"]) == 1


def test_list_sorts_by_whitelisted_columns_only(manager_client):
    make_asset(asset_tag="AT-S-1", name="Zebra")
    make_asset(asset_tag="AT-S-2", name="Aardvark")
    url = reverse("assets:list")

    def names(sort: str) -> list[str]:
        return [a.name for a in manager_client.get(url, {"sort": sort}).context["page_obj"]]

    assert names("name") == ["Aardvark", "Zebra"]
    assert names("-name") == ["Zebra", "Aardvark"]
    assert names("-tag") == ["Aardvark", "Zebra"]
    assert names("notes") == ["Zebra", "Aardvark"]  # not whitelisted: default (tag) order


def test_list_paginates_by_fifty(manager_client):
    for n in range(51):
        make_asset(asset_tag=f"AT-P-{n:03d}")

    first = manager_client.get(reverse("assets:list"))
    second = manager_client.get(reverse("assets:list"), {"page": 2})

    assert len(first.context["page_obj"]) == 50
    assert [a.asset_tag for a in second.context["page_obj"]] == ["AT-P-050"]


def test_list_answers_htmx_with_the_results_fragment_only(manager_client):
    make_asset(asset_tag="AT-HX-1")

    response = manager_client.get(
        reverse("assets:list"), {"q": "AT-HX"}, HTTP_HX_TARGET="asset-results", **HTMX
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section id="asset-results"')
    assert "AT-HX-1" in body
    assert "<html" not in body
    assert "HX-Request" in response["Vary"]


def test_list_without_htmx_is_a_full_page(manager_client):
    body = manager_client.get(reverse("assets:list")).content.decode()

    assert "<html" in body
    assert 'id="asset-results"' in body


# --- Detail -----------------------------------------------------------------------------------


def test_detail_shows_properties_mdm_custody_entitlements_and_audit(manager_client, it_manager):
    from assets.services import asset_check_in, asset_check_out
    from assets.tests.factories import make_mdm_connection

    asset = make_asset(
        asset_tag="AT-D-1", mdm_connection=make_mdm_connection(name="Jamf HQ"), mdm_device_id="J-1"
    )
    first = make_member(full_name="First Holder")
    asset_check_out(asset=asset, member=first, actor=it_manager, note="Loan")
    asset_check_in(asset=asset, actor=it_manager)
    live_license = make_license(name="Office Suite", kind=License.Kind.DEVICE)
    make_entitlement(license=live_license, asset=asset)
    old = make_entitlement(
        license=make_license(name="Old CAD", kind=License.Kind.DEVICE), asset=asset
    )
    old.revoked_at = timezone.now()
    old.revoked_reason = "Reimaged"
    old.save()

    page = manager_client.get(reverse("assets:detail", args=[asset.pk])).content.decode()

    assert "Jamf HQ" in page
    assert "J-1" in page
    assert "Not locked" in page
    assert "First Holder" in page
    assert "by manager" in page
    assert "Office Suite" in page
    assert "Old CAD" in page and "Reimaged" in page
    assert "Asset checked out" in page  # audit trail
    assert reverse("assets:check_out", args=[asset.pk]) in page


def test_detail_offers_check_in_for_an_asset_in_custody(manager_client):
    asset = make_asset(custodian=make_member())

    page = manager_client.get(reverse("assets:detail", args=[asset.pk])).content.decode()

    assert reverse("assets:check_in", args=[asset.pk]) in page
    assert reverse("assets:check_out", args=[asset.pk]) not in page
    assert 'id="check-in-dialog"' in page


def test_detail_of_a_missing_asset_is_404(manager_client):
    assert manager_client.get(reverse("assets:detail", args=[999999])).status_code == 404


# --- Create and edit ---------------------------------------------------------------------------


def test_manager_creates_an_asset_and_is_redirected_with_a_message(manager_client, it_manager):
    response = manager_client.post(reverse("assets:create"), asset_post_data(), follow=True)

    asset = Asset.objects.get(asset_tag="AT-70001")
    assert response.redirect_chain == [(asset.get_absolute_url(), 302)]
    assert "Asset AT-70001 added." in response.content.decode()
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.CREATED, object_id=str(asset.pk), actor=it_manager
    ).exists()


def test_create_with_bad_input_shows_field_errors_and_saves_nothing(manager_client):
    make_asset(asset_tag="AT-70001")

    response = manager_client.post(
        reverse("assets:create"), asset_post_data(name="", mdm_device_id="dev-9")
    )

    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.errors) == {"asset_tag", "name", "mdm_connection"}
    assert "nothing was saved" in response.content.decode()
    assert Asset.objects.count() == 1
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CREATED).exists()


def test_manager_edits_an_asset(manager_client):
    asset = make_asset()

    response = manager_client.post(
        reverse("assets:edit", args=[asset.pk]),
        asset_post_data(asset_tag=asset.asset_tag, name="Renamed", status="in_repair"),
    )

    assert response.status_code == 302
    asset.refresh_from_db()
    assert asset.name == "Renamed"
    assert asset.status == Asset.Status.IN_REPAIR
    assert AuditEvent.objects.get(action=AuditEvent.Action.CHANGED).changes["name"][1] == "Renamed"


def test_edit_with_a_duplicate_serial_keeps_the_saved_asset(manager_client):
    make_asset(serial_number="TAKEN-1")
    asset = make_asset(name="Original")

    response = manager_client.post(
        reverse("assets:edit", args=[asset.pk]),
        asset_post_data(asset_tag=asset.asset_tag, name="Changed", serial_number="TAKEN-1"),
    )

    assert response.status_code == 200
    assert "serial_number" in response.context["form"].errors
    assert response.context["asset"].name == "Original"
    asset.refresh_from_db()
    assert asset.name == "Original"


# --- Check out and check in -------------------------------------------------------------------


def test_check_out_by_plain_post_redirects_to_the_asset(manager_client):
    asset = make_asset()
    member = make_member(employee_id="E55555")

    response = manager_client.post(
        reverse("assets:check_out", args=[asset.pk]),
        {"check_out-member": "E55555", "check_out-note": "Onboarding"},
    )

    assert response.status_code == 302
    assert response.url == asset.get_absolute_url()
    asset.refresh_from_db()
    assert asset.custodian == member
    assert CustodyRecord.objects.get(asset=asset).note == "Onboarding"


def test_check_out_by_htmx_answers_with_hx_redirect(manager_client):
    asset = make_asset()
    member = make_member()

    response = manager_client.post(
        reverse("assets:check_out", args=[asset.pk]), {"check_out-member": member.email}, **HTMX
    )

    assert response.status_code == 200
    assert response["HX-Redirect"] == asset.get_absolute_url()
    asset.refresh_from_db()
    assert asset.custodian == member


def test_check_out_to_an_unknown_member_shows_the_error_in_the_dialog_fragment(manager_client):
    asset = make_asset()

    response = manager_client.post(
        reverse("assets:check_out", args=[asset.pk]),
        {"check_out-member": "ghost@example.com"},
        **HTMX,
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<form id="check-out-form"')
    assert "No member has the email address or employee ID" in body
    asset.refresh_from_db()
    assert asset.status == Asset.Status.AVAILABLE


def test_check_out_to_a_deactivated_member_is_refused_on_the_member_field(
    manager_client, it_manager
):
    member, _ = member_deactivate(member=make_member(), actor=it_manager, reason="Left")
    asset = make_asset()

    response = manager_client.post(
        reverse("assets:check_out", args=[asset.pk]), {"check_out-member": member.email}
    )

    assert response.status_code == 200
    assert "deactivated" in response.context["form"].errors["member"][0]
    assert "<html" in response.content.decode()  # without JavaScript: the check-out page
    assert not CustodyRecord.objects.exists()


def test_check_out_of_an_asset_in_repair_shows_the_service_message(manager_client):
    asset = make_asset(status=Asset.Status.IN_REPAIR)

    response = manager_client.post(
        reverse("assets:check_out", args=[asset.pk]), {"check_out-member": make_member().email}
    )

    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    assert "only available assets can be checked out" in errors[0]
    assert not CustodyRecord.objects.exists()


def test_check_out_page_works_without_javascript(manager_client):
    asset = make_asset()

    response = manager_client.get(reverse("assets:check_out", args=[asset.pk]))

    assert response.status_code == 200
    assert 'name="check_out-member"' in response.content.decode()


def test_check_in_returns_the_asset_to_the_chosen_status(manager_client):
    asset = make_asset(custodian=make_member())

    response = manager_client.post(
        reverse("assets:check_in", args=[asset.pk]),
        {"check_in-status": "in_repair", "check_in-note": "Battery swollen"},
        follow=True,
    )

    assert "checked in" in response.content.decode()
    asset.refresh_from_db()
    assert asset.status == Asset.Status.IN_REPAIR
    assert asset.custodian is None
    assert CustodyRecord.objects.get(asset=asset).checked_in_at is not None


def test_check_in_of_an_available_asset_shows_the_service_message(manager_client):
    asset = make_asset()

    response = manager_client.post(
        reverse("assets:check_in", args=[asset.pk]), {"check_in-status": "available"}, **HTMX
    )

    assert response.status_code == 200
    assert "not checked out to anyone" in response.content.decode()
    assert "HX-Redirect" not in response
