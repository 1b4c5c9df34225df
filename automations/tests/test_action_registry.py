"""The action-kind registry (automations/actions): every registered kind provides every part the
registry requires, a half-made kind is refused at startup by the system check, and the builder's
first three choices are the seed's."""

from __future__ import annotations

import pytest
from django import forms
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.template.loader import get_template

from automations.actions import REGISTRY, ActionKind, kind_choices
from automations.actions.base import check_kinds


@pytest.mark.parametrize("key", list(REGISTRY))
def test_every_registered_kind_provides_every_part(key):
    kind = REGISTRY[key]

    assert kind.key == key
    for attribute in ActionKind.REQUIRED_ATTRIBUTES:
        assert getattr(kind, attribute), attribute
    for method in ActionKind.REQUIRED_METHODS:
        assert getattr(type(kind), method) is not getattr(ActionKind, method), method
    assert issubclass(kind.form_class, forms.Form)
    for template in (kind.builder_template, kind.detail_template, kind.log_template):
        if template:
            get_template(template)
    # Its defaults make a card, and valid settings give a sentence and history lines.
    config = kind.default_config()
    assert kind.form_class(initial=kind.form_initial(config), prefix="actions-0")
    assert isinstance(kind.snapshot(config), dict)
    assert isinstance(kind.summary(config), str)
    if kind.retry_setting:
        assert type(kind).resume is not ActionKind.resume
    assert check_kinds() == []


def test_the_builders_first_three_choices_are_the_seeds():
    assert [(k.key, k.label) for k in REGISTRY.values()][:3] == [
        ("webhook", "Trigger webhook"),
        ("revoke_licenses", "Revoke licenses in AssetSonar"),
        ("mdm_lock", "Lock devices in custody via MDM"),
    ]
    assert dict(kind_choices())["mdm_lock"] == "Lock devices via MDM"


def test_a_half_made_kind_fails_the_system_check_at_startup():
    class HalfMade(ActionKind):
        key = "half_made"
        label = "Half made"
        description = "Has a label and nothing else."

    REGISTRY["half_made"] = HalfMade()
    try:
        errors = check_kinds()
        assert [e.id for e in errors] == ["automations.E001"]
        assert "form_class" in errors[0].msg and "prepare" in errors[0].msg
        with pytest.raises(SystemCheckError, match="half_made"):
            call_command("check")
    finally:
        del REGISTRY["half_made"]
    call_command("check")


def test_a_kind_without_a_plan_fails_the_system_check():
    """The preview asks every kind for its plan (its targets and skip reasons, from the target
    selection its prepare() uses): a kind that does not say what it would do is half made."""
    from automations.actions.webhook import WebhookKind

    class NoPlan(WebhookKind):
        key = "no_plan"
        plan = ActionKind.plan

    REGISTRY["no_plan"] = NoPlan()
    try:
        errors = check_kinds()
        assert [e.id for e in errors] == ["automations.E001"]
        assert errors[0].msg == "Action kind “no_plan” lacks: plan."
    finally:
        del REGISTRY["no_plan"]
    assert check_kinds() == []


def test_every_kind_has_a_styled_icon_of_its_own():
    from pathlib import Path

    from django.conf import settings

    from automations.actions import REGISTRY

    css = (Path(settings.BASE_DIR) / "static" / "css" / "builder.css").read_text()
    icons = [kind.icon for kind in REGISTRY.values()]
    assert len(set(icons)) == len(icons), icons
    for icon in icons:
        assert f".{icon} {{" in css, f"{icon} has no rule in static/css/builder.css"
