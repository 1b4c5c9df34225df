"""members.forms: bad input becomes errors on the right field and nothing is written."""

from __future__ import annotations

import pytest

from conftest import make_member
from members.forms import BulkDeactivateForm, DeactivateForm, MemberForm
from members.models import Member


def _data(**overrides) -> dict:
    data = {
        "full_name": "Grace Hopper",
        "email": "grace@example.com",
        "employee_id": "G1",
        "department": "Engineering",
        "location": "Berlin",
        "title": "Rear Admiral",
        "manager": "",
        "employment_type": Member.EmploymentType.FULL_TIME,
    }
    data.update(overrides)
    return data


@pytest.mark.django_db
def test_a_complete_form_is_valid_and_resolves_nothing_as_no_manager():
    form = MemberForm(_data())

    assert form.is_valid(), form.errors
    assert form.service_fields()["manager"] is None
    assert Member.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"email": "not-an-email"}, "email", "Enter a valid email address."),
        ({"email": "TAKEN@example.COM"}, "email", "Another member already has this email address."),
        ({"employee_id": "T1"}, "employee_id", "Another member already has this employee ID."),
        ({"full_name": ""}, "full_name", "This field is required."),
        ({"manager": "nobody@example.com"}, "manager", "No member has the email address"),
        ({"manager": "X999"}, "manager", "No member has the email address"),
        ({"employment_type": "pirate"}, "employment_type", "Select a valid choice."),
    ],
)
def test_bad_input_is_reported_on_its_field(overrides, field, message):
    make_member(email="taken@example.com", employee_id="T1")

    form = MemberForm(_data(**overrides))

    assert not form.is_valid()
    assert any(message in error for error in form.errors[field]), form.errors
    assert Member.objects.count() == 1


@pytest.mark.django_db
def test_the_manager_is_found_by_email_in_any_case_or_by_employee_id_as_typed_or_upper_case():
    boss = make_member(email="Boss@Example.com", employee_id="B7")

    by_email = MemberForm(_data(manager=" boss@EXAMPLE.com "))
    by_id = MemberForm(_data(manager="b7", email="other@example.com", employee_id="O1"))

    assert by_email.is_valid(), by_email.errors
    assert by_id.is_valid(), by_id.errors
    assert by_email.cleaned_data["manager"] == boss
    assert by_id.cleaned_data["manager"] == boss


@pytest.mark.django_db
def test_a_member_cannot_be_made_to_report_to_someone_below_them():
    top = make_member()
    middle = make_member(manager=top)
    bottom = make_member(manager=middle, email="bottom@example.com")

    form = MemberForm(_data(email=top.email, manager="bottom@example.com"), instance=top)

    assert not form.is_valid()
    assert "reports to this member" in form.errors["manager"][0]
    top.refresh_from_db()
    assert top.manager is None
    assert bottom.manager == middle


@pytest.mark.django_db
def test_a_member_cannot_be_their_own_manager():
    member = make_member(email="self@example.com")

    form = MemberForm(_data(email="self@example.com", manager="self@example.com"), instance=member)

    assert not form.is_valid()
    assert form.errors["manager"] == ["A member cannot be their own manager."]


@pytest.mark.django_db
def test_editing_a_member_does_not_clash_with_their_own_email_and_id_and_shows_the_manager():
    boss = make_member(email="boss@example.com")
    member = make_member(email="me@example.com", employee_id="M1", manager=boss)

    unbound = MemberForm(instance=member)
    bound = MemberForm(
        _data(email="ME@example.com", employee_id="M1", manager="boss@example.com"),
        instance=member,
    )

    assert unbound["manager"].value() == "boss@example.com"
    assert bound.is_valid(), bound.errors


def test_the_deactivation_form_requires_a_reason_and_caps_its_length():
    assert not DeactivateForm({"reason": "   "}).is_valid()
    assert not DeactivateForm({"reason": "x" * 501}).is_valid()
    assert DeactivateForm({"reason": "Left the company"}).is_valid()


@pytest.mark.django_db
def test_the_bulk_form_refuses_an_empty_selection_and_unknown_members():
    member = make_member()

    empty = BulkDeactivateForm({"reason": "Left"})
    unknown = BulkDeactivateForm({"reason": "Left", "ids": [member.pk, 999999]})
    good = BulkDeactivateForm({"reason": "Left", "ids": [member.pk]})

    assert empty.errors["ids"] == ["Select at least one member."]
    assert "ids" in unknown.errors
    assert good.is_valid(), good.errors
    assert list(good.cleaned_data["ids"]) == [member]


# The offboarding fields


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"last_working_day": "13.12.2026"},
            "last_working_day",
            "Enter the date as YYYY-MM-DD, e.g. 2026-12-13.",
        ),
        (
            {"time_zone": "Europe/Atlantis"},
            "time_zone",
            "“Europe/Atlantis” is not a time zone name; use an IANA name such as Europe/Berlin "
            "or America/New_York.",
        ),
        (
            {"personal_email": "grace@example.com"},
            "personal_email",
            "This is the work email; enter a private address or leave it empty.",
        ),
        ({"personal_email": "nope"}, "personal_email", "Enter a valid email address."),
    ],
)
def test_bad_offboarding_values_are_refused_on_their_field(overrides, field, message):
    form = MemberForm(_data(**overrides))

    assert not form.is_valid()
    assert form.errors[field] == [message]


@pytest.mark.django_db
def test_the_offboarding_fields_are_cleaned_for_the_service():
    from datetime import date

    form = MemberForm(
        _data(
            last_working_day="2026-12-13",
            time_zone="America/New_York",
            deactivate_on_last_day="on",
            personal_email="grace@home.example",
        )
    )

    assert form.is_valid(), form.errors
    fields = form.service_fields()
    assert fields["last_working_day"] == date(2026, 12, 13)
    assert fields["time_zone"] == "America/New_York"
    assert fields["deactivate_on_last_day"] is True
    assert fields["personal_email"] == "grace@home.example"


@pytest.mark.django_db
@pytest.mark.parametrize("default", [True, False])
def test_a_new_member_form_ticks_the_option_as_the_portal_setting_says(default):
    from assetsonar.models import PortalSettings

    PortalSettings.load()
    PortalSettings.objects.update(
        deactivate_on_last_day_default=default, company_time_zone="Europe/Berlin"
    )

    form = MemberForm()

    assert form["deactivate_on_last_day"].initial is default
    assert "The company&#x27;s (Europe/Berlin)" in str(form["time_zone"])
