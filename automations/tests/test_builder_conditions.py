"""Condition rows: every field with every operator, the value each needs, the formset, the
trigger registry, and the plain-language summary."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from automations import conditions as cond
from automations import selectors, triggers
from automations.forms import ConditionForm, ConditionFormSet, condition_row_form
from automations.tests.builder_factories import management

# A valid raw value per field for a single-value operator, and the value stored for it.
SINGLE = {
    "department": ("Engineering", "Engineering"),
    "location": ("Berlin", "Berlin"),
    "title": ("Engineer", "Engineer"),
    "employment_type": ("contractor", "contractor"),
    "email_domain": ("@Example.COM", "example.com"),
    "manager": ("Boss@Example.com", "boss@example.com"),
    "employee_id": ("E00042", "E00042"),
    "assets_in_custody": ("3", 3),
    "live_entitlements": ("0", 0),
}
MANY = {
    "department": ("Engineering, Sales,Engineering", ["Engineering", "Sales"]),
    "location": ("Berlin, London", ["Berlin", "London"]),
    "title": ("Engineer", ["Engineer"]),
    "employment_type": (["contractor", "intern"], ["contractor", "intern"]),
    "email_domain": ("example.com, Example.org", ["example.com", "example.org"]),
    "manager": ("a@example.com, B@example.com", ["a@example.com", "b@example.com"]),
    "employee_id": ("E1, E2", ["E1", "E2"]),
}


def row(field: str, operator: str, value=None) -> ConditionForm:
    data = QueryDict(mutable=True)
    data["c-field"] = field
    data["c-operator"] = operator
    if isinstance(value, list):
        data.setlist("c-value", value)
    elif value is not None:
        data["c-value"] = value
    return ConditionForm(data, prefix="c")


ALL_PAIRS = [(f, o) for f in cond.FIELDS for o in cond.OPERATORS]


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "operator"), ALL_PAIRS)
def test_every_field_accepts_exactly_the_operators_of_its_type(field, operator):
    allowed = operator in cond.OPERATORS_BY_TYPE[cond.FIELDS[field].type]
    op = cond.OPERATORS[operator]
    if not op.needs_value:
        raw, expected = None, None
    elif op.many:
        raw, expected = MANY.get(field, ("x", ["x"]))
    else:
        raw, expected = SINGLE[field]

    form = row(field, operator, raw)

    if allowed:
        assert form.is_valid(), form.errors
        assert form.cleaned_data["value"] == expected
    else:
        assert not form.is_valid()
        assert form.errors["operator"] == [
            f"“{op.label}” does not apply to {cond.FIELDS[field].label}."
        ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "operator"),
    [
        p
        for p in ALL_PAIRS
        if p[1] in cond.OPERATORS_BY_TYPE[cond.FIELDS[p[0]].type]
        and cond.OPERATORS[p[1]].needs_value
    ],
)
def test_every_operator_that_needs_a_value_refuses_a_blank_one(field, operator):
    form = row(field, operator, "  ")

    assert not form.is_valid()
    label = cond.FIELDS[field].label
    wanted = "one or more values" if cond.OPERATORS[operator].many else "a value"
    assert form.errors["value"] == [f"Enter {wanted} for {label}."]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "operator", "value", "message"),
    [
        (
            "assets_in_custody",
            "greater_than",
            "two",
            "Enter a whole number for Number of assets in custody.",
        ),
        ("assets_in_custody", "is", "1.5", "Enter a whole number for Number of assets in custody."),
        (
            "live_entitlements",
            "less_than",
            "-1",
            "Number of live license entitlements cannot be negative.",
        ),
        (
            "employment_type",
            "is",
            "boss",
            "“boss” is not an employment type; choose one of: "
            "Full-time, Part-time, Contractor, Intern, Temporary",
        ),
        (
            "manager",
            "is",
            "not-an-email",
            "Enter the manager's email address (“not-an-email” is not one).",
        ),
        ("email_domain", "is", "localhost", "“localhost” is not a domain; enter e.g. example.com."),
        ("title", "contains", "x" * 201, "Keep values under 200 characters."),
        ("nickname", "is", "Bob", "Choose a field."),
    ],
)
def test_bad_values_are_refused_with_a_message_for_the_row(field, operator, value, message):
    form = row(field, operator, value)

    assert not form.is_valid()
    errors = [e for errors in form.errors.values() for e in errors]
    assert message in errors


@pytest.mark.django_db
@pytest.mark.parametrize("operator", ["is_empty", "is_not_empty"])
def test_empty_operators_store_no_value_even_if_one_was_sent(operator):
    form = row("title", operator, "ignored")

    assert form.is_valid()
    assert form.cleaned_data["value"] is None


@pytest.mark.django_db
def test_value_input_fits_field_and_operator():
    assert row("employment_type", "is").fields["value"].widget.input_type == "select"
    many_choice = row("employment_type", "is_any_of").fields["value"]
    assert many_choice.widget.__class__.__name__ == "CheckboxSelectMultiple"
    department = row("department", "is").fields["value"].widget
    assert department.attrs["list"] == "suggest-department"
    assert row("assets_in_custody", "is").fields["value"].widget.input_type == "number"
    assert "commas" in row("title", "is_any_of").fields["value"].help_text
    assert row("title", "is_empty").fields["value"].widget.input_type == "hidden"
    operators = [k for k, _ in row("assets_in_custody", "is").fields["operator"].widget.choices]
    assert operators == ["is", "is_not", "greater_than", "less_than"]


@pytest.mark.django_db
def test_formset_is_invalid_if_any_row_is_and_skips_removed_rows():
    data = {
        **management("conditions", 3),
        "conditions-0-field": "department",
        "conditions-0-operator": "is",
        "conditions-0-value": "Engineering",
        "conditions-1-field": "assets_in_custody",
        "conditions-1-operator": "greater_than",
        "conditions-1-value": "many",
        "conditions-2-field": "title",
        "conditions-2-operator": "is",
        "conditions-2-value": "",
        "conditions-2-DELETE": "on",
    }
    formset = ConditionFormSet(data, prefix="conditions")

    assert not formset.is_valid()
    assert formset.errors[0] == {}
    assert formset.errors[1]["value"] == ["Enter a whole number for Number of assets in custody."]
    assert [f.prefix for f in formset.kept_forms()] == ["conditions-0", "conditions-1"]

    data["conditions-1-value"] = "2"
    formset = ConditionFormSet(data, prefix="conditions")
    assert formset.is_valid()
    assert [(f.cleaned_data["field"], f.cleaned_data["value"]) for f in formset.kept_forms()] == [
        ("department", "Engineering"),
        ("assets_in_custody", 2),
    ]


@pytest.mark.django_db
def test_formset_refuses_more_than_twenty_conditions():
    data = management("conditions", 21)
    for i in range(21):
        data.update({f"conditions-{i}-field": "title", f"conditions-{i}-operator": "is_empty"})

    formset = ConditionFormSet(data, prefix="conditions")

    assert not formset.is_valid()
    assert formset.non_form_errors() == ["An automation can have at most 20 conditions."]


def test_rerendered_row_keeps_operator_and_value_only_where_they_still_fit():
    data = QueryDict(mutable=True)
    data.update({"conditions-0-field": "assets_in_custody", "conditions-0-operator": "contains"})
    data["conditions-0-value"] = "Engineering"

    form = condition_row_form("conditions-0", data)

    assert form.initial == {"field": "assets_in_custody", "operator": "is", "value": ""}
    data = QueryDict(mutable=True)
    data.update({"conditions-0-field": "location", "conditions-0-operator": "is_any_of"})
    data["conditions-0-value"] = "Berlin"
    assert condition_row_form("conditions-0", data).initial["value"] == "Berlin"


# --- Trigger registry ----------------------------------------------------------------------------


def test_trigger_registry_offers_members_module_and_its_events():
    assert triggers.module_choices() == [("members", "Members")]
    assert triggers.event_choices("members") == [
        ("member.deactivated", "Member is deactivated"),
        ("member.reactivated", "Member is reactivated"),
        ("member.last_working_day", "Member's last working day"),
    ]
    assert triggers.event_choices("nope") == []


@pytest.mark.django_db
def test_a_new_registry_entry_is_offered_by_the_builder_without_new_form_code(client, it_manager):
    from automations.forms import AutomationDetailsForm

    triggers.register(
        "assets",
        "Assets",
        "asset",
        triggers.TriggerEvent("asset.lost", "Asset is marked lost", "is marked lost"),
        triggers.TriggerEvent("asset.hidden", "Hidden", "hidden", available=False),
    )
    try:
        form = AutomationDetailsForm(
            {
                "name": "Lost",
                "trigger_module": "assets",
                "trigger_event": "asset.lost",
                "match": "all",
            }
        )
        assert form.is_valid(), form.errors
        assert ("assets", "Assets") in form.fields["trigger_module"].choices
        client.force_login(it_manager)
        response = client.get("/automations/builder/trigger-events/", {"trigger_module": "assets"})
        assert '<option value="asset.lost" selected>Asset is marked lost</option>' in response.text
        assert "asset.hidden" not in response.text
        mismatched = AutomationDetailsForm(
            {
                "name": "X",
                "trigger_module": "members",
                "trigger_event": "asset.lost",
                "match": "all",
            }
        )
        assert not mismatched.is_valid()
    finally:
        triggers.REGISTRY.pop("assets")


# --- Summary -------------------------------------------------------------------------------------


def test_summary_reads_like_the_issue_example():
    text = selectors.automation_summary(
        trigger_module="members",
        trigger_event="member.deactivated",
        match="all",
        conditions=[("department", "is", "Engineering")],
        actions=[
            ("revoke_licenses", {"user_based": True}),
            ("mdm_lock", {"message": "Return it", "phone": "+1 555 0100"}),
            ("webhook", {"url": "https://hr.example.com/hooks/offboard"}),
        ],
    )

    assert text == (
        "When a member in Engineering is deactivated: revoke user-based licenses, "
        "lock their devices through MDM, call https://hr.example.com/hooks/offboard"
    )


def test_summary_without_conditions_or_actions_and_with_any_match():
    assert (
        selectors.automation_summary(
            trigger_module="members",
            trigger_event="member.reactivated",
            match="any",
            conditions=[],
            actions=[],
        )
        == "When any member is reactivated: nothing yet (choose at least one action)"
    )
    assert (
        selectors.who_phrase(
            [
                ("location", "is_any_of", ["Berlin", "London"]),
                ("assets_in_custody", "greater_than", 0),
            ],
            "any",
        )
        == "a member whose location is Berlin or London "
        "or number of assets in custody is more than 0"
    )
    assert (
        selectors.who_phrase(
            [("department", "is", "Sales"), ("employment_type", "is_not", "contractor")], "all"
        )
        == "a member in Sales whose employment type is not Contractor"
    )
