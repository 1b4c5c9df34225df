"""Asset forms: bad input gives an error on the field that is wrong."""

from __future__ import annotations

import pytest

from assets.forms import AssetForm, CheckInForm, CheckOutForm
from assets.models import Asset
from assets.tests.factories import make_mdm_connection
from conftest import make_asset, make_member

pytestmark = pytest.mark.django_db


def asset_data(**overrides) -> dict:
    data = {
        "asset_tag": "AT-90001",
        "name": "ThinkPad X1",
        "category": Asset.Category.LAPTOP,
        "platform": Asset.Platform.WINDOWS,
        "manufacturer": "Lenovo",
        "model": "X1 Carbon",
        "serial_number": "PF-1234",
        "status": Asset.Status.AVAILABLE,
        "mdm_connection": "",
        "mdm_device_id": "",
        "notes": "",
    }
    data.update(overrides)
    return data


def test_asset_form_accepts_valid_input():
    form = AssetForm(asset_data())

    assert form.is_valid(), form.errors


def test_asset_form_reports_a_duplicate_tag_on_the_tag_field():
    make_asset(asset_tag="AT-90001")

    form = AssetForm(asset_data())

    assert not form.is_valid()
    assert list(form.errors) == ["asset_tag"]


def test_asset_form_reports_a_duplicate_serial_number_on_the_serial_field():
    make_asset(serial_number="PF-1234")

    form = AssetForm(asset_data())

    assert not form.is_valid()
    assert form.errors["serial_number"] == ["Another asset already has this serial number."]
    assert "__all__" not in form.errors


def test_asset_form_allows_several_assets_without_serial_number():
    make_asset(serial_number="")

    assert AssetForm(asset_data(serial_number="")).is_valid()


def test_asset_form_keeps_an_assets_own_serial_number_on_edit():
    asset = make_asset(serial_number="PF-1234")

    form = AssetForm(asset_data(asset_tag=asset.asset_tag), instance=asset)

    assert form.is_valid(), form.errors


def test_asset_form_refuses_a_device_id_without_a_connection():
    form = AssetForm(asset_data(mdm_device_id="dev-1"))

    assert not form.is_valid()
    assert "MDM connection" in form.errors["mdm_connection"][0]
    assert "__all__" not in form.errors


def test_asset_form_refuses_a_device_id_already_enrolled_on_the_same_connection():
    connection = make_mdm_connection()
    make_asset(mdm_connection=connection, mdm_device_id="dev-1")

    form = AssetForm(asset_data(mdm_connection=connection.pk, mdm_device_id="dev-1"))

    assert not form.is_valid()
    assert "already enrolled" in form.errors["mdm_device_id"][0]
    assert "__all__" not in form.errors


def test_asset_form_does_not_offer_in_custody_as_a_status():
    form = AssetForm(asset_data(status=Asset.Status.IN_CUSTODY))

    assert Asset.Status.IN_CUSTODY not in dict(form.fields["status"].choices)
    assert not form.is_valid()
    assert "status" in form.errors


def test_asset_form_locks_the_status_of_an_asset_in_custody():
    asset = make_asset(custodian=make_member())

    form = AssetForm(asset_data(asset_tag=asset.asset_tag, status="retired"), instance=asset)

    assert form.fields["status"].disabled
    assert form.is_valid(), form.errors
    assert form.cleaned_data["status"] == Asset.Status.IN_CUSTODY


def test_asset_form_requires_tag_and_name():
    form = AssetForm(asset_data(asset_tag="", name=""))

    assert not form.is_valid()
    assert set(form.errors) == {"asset_tag", "name"}


def test_check_out_form_finds_a_member_by_email_in_any_case():
    member = make_member(email="Ada.Lovelace@example.com")

    form = CheckOutForm({"check_out-member": " ada.lovelace@EXAMPLE.com "})

    assert form.is_valid(), form.errors
    assert form.cleaned_data["member"] == member


def test_check_out_form_finds_a_member_by_employee_id():
    member = make_member(employee_id="E77777")

    form = CheckOutForm({"check_out-member": "e77777"})

    assert form.is_valid(), form.errors
    assert form.cleaned_data["member"] == member


def test_check_out_form_reports_an_unknown_member_on_the_member_field():
    form = CheckOutForm({"check_out-member": "nobody@example.com"})

    assert not form.is_valid()
    assert "No member has the email address or employee ID" in form.errors["member"][0]


def test_check_out_form_limits_the_note_length():
    member = make_member()

    form = CheckOutForm({"check_out-member": member.email, "check_out-note": "x" * 501})

    assert not form.is_valid()
    assert "note" in form.errors


def test_check_in_form_refuses_in_custody_as_return_status():
    form = CheckInForm({"check_in-status": "in_custody"})

    assert not form.is_valid()
    assert "status" in form.errors


@pytest.mark.parametrize(
    ("field", "stored", "entered", "message"),
    [
        ("asset_tag", "AS-000030", "as-000030", "Another asset already has this asset tag."),
        (
            "serial_number",
            "C02XG0FDH7JY",
            "c02xg0fdh7jy",
            "Another asset already has this serial number.",
        ),
    ],
)
def test_asset_form_refuses_a_tag_or_serial_taken_in_another_letter_case(
    field, stored, entered, message
):
    make_asset(**{field: stored})

    form = AssetForm(asset_data(**{field: entered}))

    assert not form.is_valid()
    assert form.errors[field] == [message]
    assert "__all__" not in form.errors


def test_asset_form_lets_an_asset_change_the_case_of_its_own_tag():
    asset = make_asset(asset_tag="as-000030", serial_number="abc123")
    form = AssetForm(asset_data(asset_tag="AS-000030", serial_number="ABC123"), instance=asset)
    assert form.is_valid(), form.errors
