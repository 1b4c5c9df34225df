"""License forms: bad input gives an error on the field that is wrong."""

from __future__ import annotations

import pytest

from conftest import make_asset, make_license, make_member
from licenses.forms import EntitleForm, LicenseForm, RevokeForm
from licenses.models import License

pytestmark = pytest.mark.django_db


def license_data(**overrides) -> dict:
    data = {
        "name": "Photoshop",
        "vendor": "Adobe",
        "kind": License.Kind.USER,
        "seats": "10",
        "expires_on": "2030-01-31",
        "cost": "1200.00",
        "notes": "",
    }
    data.update(overrides)
    return data


def test_license_form_accepts_valid_input():
    form = LicenseForm(license_data())

    assert form.is_valid(), form.errors


def test_license_form_refuses_a_negative_cost():
    form = LicenseForm(license_data(cost="-1"))

    assert not form.is_valid()
    assert form.errors["cost"] == ["The cost cannot be negative."]


@pytest.mark.parametrize("seats", ["0", "-3", "many"])
def test_license_form_refuses_seats_that_are_not_a_positive_number(seats):
    form = LicenseForm(license_data(seats=seats))

    assert not form.is_valid()
    assert "seats" in form.errors


@pytest.mark.parametrize("seats", ["0", "-1", "-3"])
def test_zero_or_negative_seats_get_one_clear_message(seats):
    form = LicenseForm(license_data(seats=seats))

    assert not form.is_valid()
    # Not also Django's "greater than or equal to 0" beside it (issue 7, item 8).
    assert form.errors["seats"] == ["A license needs at least one seat."]


def test_license_form_refuses_seats_below_those_in_use():
    lic = make_license(seats=10)

    form = LicenseForm(license_data(seats="3"), instance=lic, seats_used=4)

    assert not form.is_valid()
    assert "4 seats are in use" in form.errors["seats"][0]


def test_license_form_refuses_a_duplicate_name_and_vendor_on_the_name_field():
    make_license(name="Photoshop", vendor="Adobe")

    form = LicenseForm(license_data())

    assert not form.is_valid()
    assert form.errors["name"] == ["A license with this name and vendor already exists."]
    assert "__all__" not in form.errors


def test_license_form_refuses_a_malformed_expiry_date():
    form = LicenseForm(license_data(expires_on="31/31/2030"))

    assert not form.is_valid()
    assert "expires_on" in form.errors


def test_license_form_locks_the_kind_while_seats_are_in_use():
    lic = make_license(kind=License.Kind.USER)

    form = LicenseForm(license_data(kind="device"), instance=lic, seats_used=1)

    assert form.fields["kind"].disabled
    assert form.is_valid(), form.errors
    assert form.cleaned_data["kind"] == License.Kind.USER


def test_entitle_form_for_a_user_license_asks_for_a_member_and_an_optional_device():
    form = EntitleForm(license=make_license(kind=License.Kind.USER))

    assert form.fields["member"].required
    assert not form.fields["asset"].required


def test_entitle_form_for_a_device_license_asks_for_a_device_only():
    lic = make_license(kind=License.Kind.DEVICE)
    asset = make_asset(asset_tag="AT-DEV-1")

    form = EntitleForm({"entitle-asset": "at-dev-1"}, license=lic)

    assert "member" not in form.fields
    assert form.is_valid(), form.errors
    assert form.cleaned_data["asset"] == asset


def test_entitle_form_reports_unknown_member_and_unknown_device_on_their_fields():
    form = EntitleForm(
        {"entitle-member": "nobody@example.com", "entitle-asset": "NOPE-1"},
        license=make_license(kind=License.Kind.USER),
    )

    assert not form.is_valid()
    assert "No member" in form.errors["member"][0]
    assert "No asset has the tag" in form.errors["asset"][0]


def test_entitle_form_requires_a_member_for_a_user_license():
    form = EntitleForm({"entitle-member": ""}, license=make_license(kind=License.Kind.CLOUD))

    assert not form.is_valid()
    assert "member" in form.errors


def test_entitle_form_finds_the_member_by_email():
    member = make_member(email="lin@example.com")

    form = EntitleForm({"entitle-member": "LIN@example.com"}, license=make_license())

    assert form.is_valid(), form.errors
    assert form.cleaned_data["member"] == member


def test_revoke_form_limits_the_reason_length():
    assert not RevokeForm({"revoke-reason": "x" * 501}).is_valid()
    assert RevokeForm({"revoke-reason": ""}).is_valid()
