"""Validation of every builder field: details, trigger, actions (webhook with headers, revoke
licenses, MDM lock), and "at least one action"."""

from __future__ import annotations

import pytest

from automations.forms import BuilderForms
from automations.services import ConditionSpec
from automations.tests.builder_factories import (
    automation_spec,
    builder_data,
    card,
    make_automation,
    mdm_spec,
    revoke_spec,
    webhook_spec,
)

pytestmark = pytest.mark.django_db


def bound(automation=None, **kwargs) -> BuilderForms:
    forms = BuilderForms(builder_data(automation=automation, **kwargs), automation=automation)
    forms.valid = forms.is_valid()
    return forms


def test_valid_post_becomes_the_spec_the_service_saves():
    forms = bound(
        description="  For engineers  ",
        conditions=[
            ("department", "is", "Engineering"),
            ("assets_in_custody", "greater_than", "0"),
        ],
        match="any",
        revoke=("user_based", "device_based"),
        webhook={"url": "https://127.0.0.1/hooks/offboard", "method": "PUT"},
        headers=[("Authorization", "Bearer abc")],
        mdm={"message": " Return this laptop to IT. ", "phone": "+49 30 1234567"},
    )

    assert forms.valid, (
        forms.details.errors,
        card(forms, "webhook").errors,
        card(forms, "mdm_lock").errors,
    )
    assert forms.spec() == automation_spec(
        name="Offboard engineers",
        description="For engineers",
        enabled=True,
        trigger_module="members",
        trigger_event="member.deactivated",
        match="any",
        conditions=(
            ConditionSpec("department", "is", "Engineering"),
            ConditionSpec("assets_in_custody", "greater_than", 0),
        ),
        webhook=webhook_spec(
            url="https://127.0.0.1/hooks/offboard",
            method="PUT",
            headers={"Authorization": "Bearer abc"},
        ),
        revoke=revoke_spec(user_based=True, user_machine=False, device_based=True),
        mdm=mdm_spec(message="Return this laptop to IT.", phone="+49 30 1234567"),
    )


# --- Details and trigger -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "This field is required."),
        ("   ", "This field is required."),
        ("x" * 151, "Ensure this value has at most 150 characters (it has 151)."),
        ("Two\nlines", "The name cannot contain line breaks or control characters."),
    ],
)
def test_name_is_required_short_and_one_line(name, message):
    forms = bound(name=name)

    assert not forms.valid
    assert forms.details.errors["name"] == [message]


def test_name_is_unique_ignoring_case_but_an_automation_keeps_its_own_name():
    existing = make_automation(name="Offboard Engineers")

    forms = bound(name="offboard engineers")
    assert forms.details.errors["name"] == ["An automation with this name already exists."]

    assert bound(existing, name="OFFBOARD ENGINEERS").valid


def test_description_is_limited():
    forms = bound(description="d" * 1001)

    assert "description" in forms.details.errors


@pytest.mark.parametrize(
    ("module", "event"),
    [("members", "member.exploded"), ("members", ""), ("assets", "member.deactivated")],
)
def test_trigger_must_be_a_registered_module_and_one_of_its_events(module, event):
    data = builder_data(trigger_event=event)
    data["trigger_module"] = module

    forms = BuilderForms(data)

    assert not forms.is_valid()
    assert forms.details.errors.keys() & {"trigger_module", "trigger_event"}


def test_match_must_be_all_or_any():
    forms = bound(match="most")

    assert "match" in forms.details.errors


# --- Actions -------------------------------------------------------------------------------------


def test_at_least_one_action_is_required():
    forms = bound(revoke=None)

    assert not forms.valid
    assert forms.non_form_errors == ["Choose at least one action: add one from the list below."]


def test_revoke_needs_at_least_one_kind():
    forms = bound(revoke=("none",))

    assert not forms.valid
    assert card(forms, "revoke_licenses").non_field_errors() == [
        "Choose at least one kind of license to revoke."
    ]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "Enter the URL the webhook is sent to."),
        ("not a url", "Enter a valid URL."),
        ("ftp://127.0.0.1/x", "Use an https:// URL."),
        ("https://user:pw@127.0.0.1/x", "Put credentials in a header, not in the URL."),
        (
            "https://hooks.nonexistent.invalid/x",
            "The host name “hooks.nonexistent.invalid” does not resolve.",
        ),
    ],
)
def test_webhook_url_is_checked_when_saved(url, message):
    forms = bound(webhook={"url": url})

    assert not forms.valid
    assert card(forms, "webhook").errors["url"] == [message]


def test_webhook_url_must_be_https_unless_the_setting_allows_http(settings):
    settings.WEBHOOK_ALLOW_HTTP = False
    assert card(bound(webhook={"url": "http://127.0.0.1/hook"}), "webhook").errors["url"] == [
        "Use an https:// URL."
    ]
    assert bound(webhook={"url": "https://127.0.0.1/hook"}).valid

    settings.WEBHOOK_ALLOW_HTTP = True
    assert bound(webhook={"url": "http://127.0.0.1/hook"}).valid


def test_webhook_to_a_private_address_is_refused(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []

    forms = bound(webhook={"url": "https://10.1.2.3/hook"})

    assert "private, loopback, link-local or metadata" in card(forms, "webhook").errors["url"][0]


def test_webhook_method_is_post_or_put():
    forms = bound(webhook={"url": "https://127.0.0.1/x", "method": "GET"})

    assert "method" in card(forms, "webhook").errors


def test_a_removed_action_is_not_validated():
    # Rows: 0 revoke, 1 MDM lock, 2 webhook; the last two removed (DELETE), both invalid.
    data = builder_data(mdm={"message": "", "phone": "nope"}, webhook={"url": "not a url"})
    data["actions-1-DELETE"] = "on"
    data["actions-2-DELETE"] = "on"

    forms = BuilderForms(data)

    assert forms.is_valid()
    assert [a.kind for a in forms.spec().actions] == ["revoke_licenses"]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([("X Api Key", "v")], "Use letters, digits and - only (e.g. X-Api-Key)."),
        (
            [("Content-Type", "text/plain")],
            "Content-Type is set by AssetSonar; choose another header.",
        ),
        (
            [("webhook-signature", "x")],
            "webhook-signature is set by AssetSonar; choose another header.",
        ),
        ([("X-Token", "")], "Enter a value (saved values are kept only on edit)."),
        ([("", "orphan")], "Enter the header name."),
        ([("X-Token", "a\r\nInjected: 1")], "A header value cannot contain line breaks."),
        ([("X-Token", "a"), ("x-token", "b")], "This header is already in the list."),
    ],
)
def test_custom_headers_are_validated_beside_their_row(headers, message):
    forms = bound(webhook={"url": "https://127.0.0.1/x"}, headers=headers)

    assert not forms.valid
    errors = [
        e
        for form_errors in card(forms, "webhook").headers.errors
        for es in form_errors.values()
        for e in es
    ]
    assert message in errors


def test_at_most_twenty_headers():
    headers = [(f"X-H{i}", "v") for i in range(21)]

    forms = bound(webhook={"url": "https://127.0.0.1/x"}, headers=headers)

    assert card(forms, "webhook").headers.non_form_errors() == [
        "A webhook can have at most 20 custom headers."
    ]


def test_on_edit_a_blank_header_value_keeps_the_saved_one_and_names_match_any_case():
    automation = make_automation(
        webhook={"headers": {"Authorization": "Bearer old", "X-Team": "it"}}
    )

    forms = bound(
        automation,
        webhook={"url": "https://127.0.0.1/hooks/offboard"},
        headers=[("authorization", ""), ("X-Team", "ops"), ("X-New", "n")],
        initial_headers=2,
    )

    assert forms.valid
    assert forms.spec().actions[-1].config["headers"] == {
        "authorization": "Bearer old",
        "X-Team": "ops",
        "X-New": "n",
    }


def test_edit_form_shows_header_names_but_never_their_values():
    automation = make_automation(webhook={"headers": {"Authorization": "Bearer very-secret"}})

    forms = BuilderForms(automation=automation)

    assert [f.initial for f in card(forms, "webhook").headers.initial_forms] == [
        {"name": "Authorization", "value": ""}
    ]
    html = str(card(forms, "webhook").headers.forms[0]["value"])
    assert "very-secret" not in html
    assert "saved (blank keeps it)" in html


@pytest.mark.parametrize(
    ("message", "phone", "errors"),
    [
        ("", "+1 555 0100", {"message": ["Enter the message shown on the locked screen."]}),
        (
            "m" * 201,
            "+1 555 0100",
            {"message": ["Ensure this value has at most 200 characters (it has 201)."]},
        ),
        (
            "Line one\nline two",
            "+1 555 0100",
            {"message": ["Keep the message on one line, without control characters."]},
        ),
        ("Return it", "", {"phone": ["Enter the phone number shown on the locked screen."]}),
        (
            "Return it",
            "call IT",
            {"phone": ["Enter a phone number of 5 to 20 digits; spaces, + ( ) . - / are allowed."]},
        ),
        (
            "Return it",
            "+1 23",
            {"phone": ["Enter a phone number of 5 to 20 digits; spaces, + ( ) . - / are allowed."]},
        ),
        (
            "Return it",
            "1" * 41,
            {"phone": ["Ensure this value has at most 40 characters (it has 41)."]},
        ),
    ],
)
def test_mdm_lock_message_and_phone_are_validated(message, phone, errors):
    forms = bound(mdm={"message": message, "phone": phone})

    assert not forms.valid
    assert dict(card(forms, "mdm_lock").errors) == errors


@pytest.mark.parametrize("phone", ["+1 (555) 010-0100", "030 1234567", "+44.20.7946.0958"])
def test_mdm_phone_numbers_in_common_formats_are_accepted(phone):
    assert bound(mdm={"message": "Please return this device to IT.", "phone": phone}).valid
