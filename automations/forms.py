"""Forms of the automation builder: details and trigger, a formset of condition rows, a formset of
action rows (each row a kind from `automations.actions.REGISTRY` with that kind's settings form),
the list filters, and `BuilderForms`, which binds them together and turns valid input into a
service spec."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms import formset_factory

from automations import conditions as cond
from automations import delays, selectors, triggers
from automations.actions import REGISTRY, ActionSpec, get_kind
from automations.actions.webhook import preview_payload
from automations.models import Automation
from automations.services import (
    MAX_ACTIONS,
    MAX_CONDITIONS,
    AutomationSpec,
    ConditionSpec,
    spec_from_automation,
)

DEFAULT_FIELD = "department"
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


# --- Details and trigger -------------------------------------------------------------------


class AutomationDetailsForm(forms.Form):
    name = forms.CharField(
        max_length=150,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Offboard engineers", "autofocus": True}),
    )
    description = forms.CharField(
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "What this automation is for"}),
    )
    enabled = forms.BooleanField(
        required=False,
        initial=True,
        label="Enabled",
        help_text="Only enabled automations run when their trigger fires.",
    )
    trigger_module = forms.ChoiceField(label="Trigger", choices=triggers.module_choices)
    trigger_event = forms.ChoiceField(label="Trigger action")
    match = forms.ChoiceField(
        label="Run when",
        choices=Automation.Match.choices,
        initial=Automation.Match.ALL,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args: Any, automation_pk: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.automation_pk = automation_pk
        module = self.current_module()
        self.fields["trigger_event"].choices = triggers.event_choices(module)

    def current_event(self) -> triggers.TriggerEvent | None:
        """The trigger action chosen (submitted or initial), or the module's first."""
        module = self.current_module()
        if self.is_bound:
            key = self.data.get(self.add_prefix("trigger_event"), "")
        else:
            key = self.initial.get("trigger_event", "")
        event = triggers.get_event(module, key)
        if event is None and (choices := triggers.event_choices(module)):
            event = triggers.get_event(module, choices[0][0])
        return event

    def current_module(self) -> str:
        if self.is_bound:
            module = self.data.get(self.add_prefix("trigger_module"), "")
        else:
            module = self.initial.get("trigger_module", "")
        return module if module in triggers.REGISTRY else next(iter(triggers.REGISTRY), "")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if CONTROL_RE.search(name):
            raise ValidationError("The name cannot contain line breaks or control characters.")
        taken = Automation.objects.filter(name__iexact=name).exclude(pk=self.automation_pk)
        if taken.exists():
            raise ValidationError("An automation with this name already exists.")
        return name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        module, event = cleaned.get("trigger_module"), cleaned.get("trigger_event")
        if module and event and triggers.get_event(module, event) is None:
            self.add_error("trigger_event", "This trigger action does not belong to the trigger.")
        return cleaned


def trigger_options_form(
    details: AutomationDetailsForm, data: Any, stored: dict[str, Any] | None
) -> forms.Form | None:
    """The chosen trigger's own settings form (`TriggerEvent.options.form`, prefix "trigger"),
    or None for a trigger without settings. Bound when the builder is, with the stored settings
    (or the trigger's defaults) as initial values."""
    event = details.current_event()
    if event is None or event.options is None:
        return None
    initial = event.options.initial(stored or event.options.default)
    if data is not None and not any(k.startswith("trigger-") for k in data):
        data = None  # the trigger was just chosen (the htmx re-render): show its defaults
    return event.options.form(data, prefix="trigger", initial=initial)


# --- Conditions ----------------------------------------------------------------------------


def _value_field(field: cond.Field, operator: cond.Operator) -> forms.Field:
    """The value input that fits the field and operator."""
    if not operator.needs_value:
        return forms.CharField(required=False, widget=forms.HiddenInput)
    label = f"Value for {field.label}"
    if field.type == cond.CHOICE:
        # Plain fields with choice widgets: `clean_value` alone judges the choice.
        choices = cond.choice_values(field)
        if operator.many:
            return forms.Field(
                label=label,
                required=False,
                widget=forms.CheckboxSelectMultiple(choices=choices),
            )
        return forms.CharField(
            label=label, required=False, widget=forms.Select(choices=[("", "Choose…"), *choices])
        )
    attrs: dict[str, Any] = {"autocomplete": "off"}
    help_text = field.help
    if operator.many:
        attrs["placeholder"] = "Values, separated by commas"
        help_text = "Separate values with commas."
    elif field.type == cond.NUMBER:
        attrs.update({"inputmode": "numeric", "placeholder": "0"})
    elif field.type == cond.PERSON:
        attrs["placeholder"] = "manager@example.com"
    else:
        attrs["placeholder"] = "Value"
    if field.suggest_values:
        attrs["list"] = f"suggest-{field.key}"
    widget = (
        forms.NumberInput(attrs={**attrs, "min": 0, "step": 1})
        if (field.type == cond.NUMBER and not operator.many)
        else forms.TextInput(attrs=attrs)
    )
    return forms.CharField(
        label=label, required=False, max_length=2000, widget=widget, help_text=help_text
    )


def _value_initial(field: cond.Field, operator: cond.Operator, value: Any) -> Any:
    if value is None or not operator.needs_value:
        return ""
    if operator.many:
        values = value if isinstance(value, list) else [value]
        if field.type == cond.CHOICE:
            return [str(v) for v in values]
        return ", ".join(str(v) for v in values)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


class ConditionForm(forms.Form):
    """One row: field, operator (those fitting the field), value (an input fitting both)."""

    # Free text with a select widget: `conditions.clean_value` judges the pair and says what is
    # wrong ("“greater than” does not apply to Department."), a crafted POST included.
    field = forms.CharField(
        label="Field",
        widget=forms.Select(choices=[(key, f.label) for key, f in cond.FIELDS.items()]),
    )
    operator = forms.CharField(label="Operator", widget=forms.Select)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field_key = self._current("field")
        self.field_def = cond.FIELDS.get(field_key) or cond.FIELDS[DEFAULT_FIELD]
        operators = self.field_def.operators
        self.fields["operator"].widget.choices = [(op.key, op.label) for op in operators]
        op_key = self._current("operator")
        self.operator_def = next((op for op in operators if op.key == op_key), operators[0])
        self.fields["value"] = _value_field(self.field_def, self.operator_def)

    def _current(self, name: str) -> str:
        if self.is_bound:
            return self.data.get(self.add_prefix(name), "") or ""
        return str(self.initial.get(name) or "")

    @property
    def suggest_list(self) -> str:
        return f"suggest-{self.field_def.key}" if self.field_def.suggest_values else ""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        field, operator = cleaned.get("field"), cleaned.get("operator")
        if not field or not operator:
            return cleaned
        try:
            cleaned["value"] = cond.clean_value(field, operator, cleaned.get("value"))
        except ValidationError as exc:
            target = {"field": "field", "operator": "operator"}.get(exc.code, "value")
            self.add_error(target, exc)
        return cleaned


class BaseConditionFormSet(forms.BaseFormSet):
    default_error_messages = {
        **forms.BaseFormSet.default_error_messages,
        "too_many_forms": f"An automation can have at most {MAX_CONDITIONS} conditions.",
    }

    def kept_forms(self) -> list[ConditionForm]:
        """Rows that are not removed and not blank extras, in page order."""
        self.errors  # noqa: B018 - runs full_clean once, which _should_delete_form needs
        kept = []
        for i, form in enumerate(self.forms):
            if self.can_delete and self._should_delete_form(form):
                continue
            if i >= self.initial_form_count() and not form.has_changed():
                continue
            kept.append(form)
        return kept


ConditionFormSet = formset_factory(
    ConditionForm,
    formset=BaseConditionFormSet,
    extra=0,
    can_delete=True,
    max_num=MAX_CONDITIONS,
    validate_max=True,
    absolute_max=MAX_CONDITIONS + 10,
)


def condition_initial(field: str, operator: str, value: Any) -> dict[str, Any]:
    field_def = cond.FIELDS.get(field) or cond.FIELDS[DEFAULT_FIELD]
    op = cond.OPERATORS.get(operator) or field_def.operators[0]
    return {"field": field, "operator": operator, "value": _value_initial(field_def, op, value)}


def condition_row_form(prefix: str, data: Any) -> ConditionForm:
    """A row re-rendered after its field or operator changed: keep the operator if it fits the
    new field, keep the value if it still makes sense, never show errors (nothing was saved)."""
    field_key = data.get(f"{prefix}-field", "")
    field_def = cond.FIELDS.get(field_key) or cond.FIELDS[DEFAULT_FIELD]
    operators = {op.key: op for op in field_def.operators}
    op_key = data.get(f"{prefix}-operator", "")
    operator = operators.get(op_key) or field_def.operators[0]
    values = [v for v in data.getlist(f"{prefix}-value") if v.strip()]
    value: Any = ""
    if operator.needs_value and values:
        if field_def.type == cond.CHOICE:
            allowed = dict(cond.choice_values(field_def))
            kept = [v for v in values if v in allowed]
            value = kept if operator.many else (kept[0] if kept else "")
        elif field_def.type == cond.NUMBER and not operator.many:
            value = values[0] if values[0].strip().isdigit() else ""
        else:
            value = ", ".join(values) if operator.many else values[0]
    return ConditionForm(
        prefix=prefix,
        initial={"field": field_def.key, "operator": operator.key, "value": value},
    )


# --- Actions -------------------------------------------------------------------------------

ON_ERROR_CHOICES = [
    ("continue", "Continue with the remaining actions"),
    ("stop", "Stop the remaining actions of this automation"),
]


class ActionRowForm(forms.Form):
    """One action of the builder: its kind, the stored action it edits, its place, what a
    failure does, when it runs (immediately, or an amount of minutes, hours or days after the
    trigger: a property of every kind, so it lives here and not in a kind's settings), and
    (`self.settings`) its kind's settings form under the same prefix.

    A row just added is `fresh`: its settings form is unbound (the kind's defaults, no
    errors) until the page is posted again."""

    kind = forms.CharField(widget=forms.HiddenInput)
    action_id = forms.IntegerField(required=False, widget=forms.HiddenInput)
    position = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    on_error = forms.ChoiceField(
        label="If it fails",
        choices=ON_ERROR_CHOICES,
        required=False,
        initial="continue",
    )
    delay_unit = forms.ChoiceField(
        label="When it runs",
        choices=delays.UNIT_CHOICES,
        required=False,
        initial=delays.IMMEDIATELY,
    )
    delay_amount = forms.IntegerField(
        label="How many",
        required=False,
        # The service and `clean` judge the range, with a message naming the unit.
        widget=forms.NumberInput(attrs={"min": 1, "step": 1, "inputmode": "numeric"}),
        error_messages={"invalid": "Enter the delay as a whole number, e.g. 7."},
    )

    def __init__(
        self,
        *args: Any,
        stored: dict[int, ActionSpec] | None = None,
        check_network: bool = True,
        fresh: bool = False,
        user: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fresh = fresh
        tail = (self.prefix or "").rpartition("-")[2]
        self.index = int(tail) if tail.isdigit() else 0
        key = self._current("kind")
        self.kind_def = get_kind(key)
        action_id = self._current("action_id")
        self.stored_spec = (stored or {}).get(int(action_id)) if action_id.isdigit() else None
        self.settings: forms.Form | None = None
        self.available, self.problems = (
            self.kind_def.available(user) if self.kind_def and user is not None else (True, [])
        )
        if self.kind_def is None:
            return
        config = (
            self.stored_spec.config
            if self.stored_spec and self.stored_spec.kind == key
            else self.kind_def.default_config()
        )
        extra = self.kind_def.form_kwargs(config=config, options={"check_network": check_network})
        bound = self.is_bound and not fresh
        self.settings = self.kind_def.form_class(
            self.data if bound else None,
            prefix=self.prefix,
            initial=self.kind_def.form_initial(config),
            **extra,
        )

    def _current(self, name: str) -> str:
        if self.is_bound:
            return str(self.data.get(self.add_prefix(name), "") or "")
        value = self.initial.get(name)
        return "" if value is None else str(value)

    @property
    def deleted(self) -> bool:
        return bool(self.is_bound and self.data.get(self.add_prefix("DELETE")))

    @property
    def sort_key(self) -> int:
        value = self._current("position")
        return int(value) if value.isdigit() else 10_000

    @property
    def continue_on_error(self) -> bool:
        return self._current("on_error") != "stop"

    @property
    def delayed(self) -> bool:
        """Whether the row's "When it runs" is a delay (the amount input is shown then)."""
        return self._current("delay_unit") in delays.UNITS

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        unit = cleaned.get("delay_unit") or delays.IMMEDIATELY
        if "delay_amount" in self.errors:
            return cleaned
        problem = delays.problem(cleaned.get("delay_amount"), unit)
        if problem:
            self.add_error("delay_amount", problem)
        return cleaned

    @property
    def delay_phrase(self) -> str:
        """ "after 7 days" (or "after the delay" until the amount is valid)."""
        phrase = delays.label(self.delay)
        return phrase if phrase != delays.IMMEDIATELY else "after the delay"

    @property
    def delay(self):
        """The row's delay (valid rows), or what it holds so far (the live summary)."""
        if self.is_bound and hasattr(self, "cleaned_data") and not self.errors:
            return delays.join(
                self.cleaned_data.get("delay_amount"), self.cleaned_data.get("delay_unit") or ""
            )
        amount = self._current("delay_amount")
        unit = self._current("delay_unit")
        if not amount.isdigit() or delays.problem(int(amount), unit):
            return delays.join(None, "")
        return delays.join(int(amount), unit)

    def settings_valid(self) -> bool:
        if self.settings is None:
            return False
        if self.fresh:
            return False
        return self.settings.is_valid()

    @property
    def settings_have_errors(self) -> bool:
        if self.settings is None or self.fresh or not self.settings.is_bound:
            return False
        has = getattr(self.settings, "has_errors", None)
        return bool(has if has is not None else self.settings.errors)

    def clean_kind(self) -> str:
        kind = self.cleaned_data["kind"]
        if get_kind(kind) is None:
            raise ValidationError("This kind of action does not exist.")
        return kind

    def spec(self) -> ActionSpec:
        return ActionSpec(
            kind=self.kind_def.key,
            config=self.kind_def.config_from_form(self.settings),
            continue_on_error=self.continue_on_error,
            action_id=self.stored_spec.action_id if self.stored_spec else None,
            delay=self.delay,
        )

    def submitted_lock(self) -> tuple[str, dict] | None:
        """(kind, settings) this row asks for, before validation, if its kind locks devices."""
        if self.kind_def is None or not self.kind_def.locks_devices or self.deleted:
            return None
        if self.fresh or self.settings is None or not self.settings.is_bound:
            return (self.kind_def.key, self.kind_def.default_config())
        return (self.kind_def.key, self.kind_def.submitted_config(self.settings))


class BaseActionFormSet(forms.BaseFormSet):
    default_error_messages = {
        **forms.BaseFormSet.default_error_messages,
        "too_many_forms": f"An automation can have at most {MAX_ACTIONS} actions.",
    }

    def __init__(self, *args: Any, fresh: set[int] | None = None, **kwargs: Any) -> None:
        self.fresh = fresh or set()
        super().__init__(*args, **kwargs)

    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        kwargs = super().get_form_kwargs(index)
        return {**kwargs, "fresh": index in self.fresh}

    def rows(self) -> list[ActionRowForm]:
        """The rows not removed, in the order set (positions, then page order)."""
        kept = [form for form in self.forms if not form.deleted]
        return sorted(kept, key=lambda form: form.sort_key)

    def removed(self) -> list[ActionRowForm]:
        return [form for form in self.forms if form.deleted]


ActionFormSet = formset_factory(
    ActionRowForm,
    formset=BaseActionFormSet,
    extra=0,
    can_delete=True,
    max_num=MAX_ACTIONS,
    validate_max=True,
    absolute_max=MAX_ACTIONS + 10,
)


def action_op(data: Any, op: str) -> tuple[Any, set[int]]:
    """The builder's POST with an "add", "remove", "up" or "down" applied to its action rows
    (what the buttons of the Actions section ask for, with htmx or without JavaScript):
    "add:<kind>", "remove:<index>", "up:<index>", "down:<index>". Returns the new data and the
    indexes of fresh rows. TOTAL_FORMS grows by one on add; a removed row stays in the formset,
    marked DELETE (so its stored action is deleted when saved); moves swap positions."""
    data = data.copy()
    verb, _, arg = op.partition(":")
    total = int(data.get("actions-TOTAL_FORMS") or 0)
    if not data.get("actions-INITIAL_FORMS"):
        data["actions-INITIAL_FORMS"] = "0"
    positions = {}
    for i in range(total):
        value = data.get(f"actions-{i}-position", "")
        positions[i] = int(value) if str(value).isdigit() else i
    kept = sorted(
        (i for i in range(total) if not data.get(f"actions-{i}-DELETE")),
        key=lambda i: (positions[i], i),
    )
    for place, i in enumerate(kept):  # positions 0..n-1 in the shown order
        data[f"actions-{i}-position"] = str(place)
    fresh: set[int] = set()
    if verb == "add" and get_kind(arg) is not None and len(kept) < MAX_ACTIONS:
        data["actions-TOTAL_FORMS"] = str(total + 1)
        data[f"actions-{total}-kind"] = arg
        data[f"actions-{total}-position"] = str(len(kept))
        fresh.add(total)
    elif arg.isdigit() and int(arg) in kept:
        index = int(arg)
        place = kept.index(index)
        if verb == "remove":
            data[f"actions-{index}-DELETE"] = "on"
        elif verb in ("up", "down"):
            other = place - 1 if verb == "up" else place + 1
            if 0 <= other < len(kept):
                j = kept[other]
                data[f"actions-{index}-position"], data[f"actions-{j}-position"] = (
                    str(other),
                    str(place),
                )
    return data, fresh


def action_delay_form(prefix: str, data: Any) -> ActionRowForm:
    """An action row's "When it runs" re-rendered after its unit changed (the builder's htmx):
    only the row's own fields, never its settings, and an error only for an amount typed."""
    if str(data.get(f"{prefix}-delay_amount", "")).strip():
        return ActionRowForm(data, prefix=prefix)
    unit = data.get(f"{prefix}-delay_unit", "")
    return ActionRowForm(prefix=prefix, initial={"delay_unit": unit, "delay_amount": None})


def kind_menu(user: Any) -> list[dict[str, Any]]:
    """The "Add action" menu: every registered kind, in registry order, with its one-line
    description and whether the user may add it."""
    out = []
    for kind in REGISTRY.values():
        available, problems = kind.available(user) if user is not None else (True, [])
        out.append(
            {
                "key": kind.key,
                "label": kind.label,
                "description": kind.description,
                "icon": kind.icon,
                "available": available,
                "problems": problems,
            }
        )
    return out


# --- The whole builder ---------------------------------------------------------------------


class BuilderForms:
    """Every form of the builder page, bound to one POST (or unbound from an automation).
    `fresh`: indexes of action rows just added (shown with their kind's defaults)."""

    def __init__(
        self,
        data: Any = None,
        *,
        automation: Automation | None = None,
        check_network: bool = True,
        fresh: set[int] | None = None,
        user: Any = None,
    ) -> None:
        self.automation = automation
        self.stored = spec_from_automation(automation) if automation else None
        stored = self.stored
        self.non_form_errors: list[str] = []
        # Also shown in the Actions section, where the missing choice is made.
        self.actions_errors: list[str] = []
        if stored:
            details = {
                "name": stored.name,
                "description": stored.description,
                "enabled": stored.enabled,
                "trigger_module": stored.trigger_module,
                "trigger_event": stored.trigger_event,
                "match": stored.match,
            }
            trigger_options = stored.trigger_options
            condition_rows = [
                condition_initial(c.field, c.operator, c.value) for c in stored.conditions
            ]
            action_rows = [
                {
                    "kind": a.kind,
                    "action_id": a.action_id,
                    "position": position,
                    "on_error": "continue" if a.continue_on_error else "stop",
                    "delay_amount": delays.split(a.delay)[0],
                    "delay_unit": delays.split(a.delay)[1],
                }
                for position, a in enumerate(stored.actions)
            ]
        else:
            module = next(iter(triggers.REGISTRY), "")
            events = triggers.event_choices(module)
            details = {
                "enabled": True,
                "trigger_module": module,
                "trigger_event": events[0][0] if events else "",
                "match": Automation.Match.ALL,
            }
            trigger_options = {}
            condition_rows = []
            action_rows = []
        self.details = AutomationDetailsForm(
            data, initial=details, automation_pk=automation.pk if automation else None
        )
        self.trigger = trigger_options_form(self.details, data, trigger_options)
        self.conditions = ConditionFormSet(data, initial=condition_rows, prefix="conditions")
        self.actions = ActionFormSet(
            data,
            initial=action_rows,
            prefix="actions",
            fresh=fresh,
            form_kwargs={
                "stored": {a.action_id: a for a in stored.actions} if stored else {},
                "check_network": check_network,
                "user": user,
            },
        )
        self.user = user

    def rows(self) -> list[ActionRowForm]:
        """The action rows shown, in order, each knowing its number and whether it is the first
        of its kind (where a kind shows what its actions share, e.g. the payload preview)."""
        rows = self.actions.rows()
        seen: set[str] = set()
        for number, row in enumerate(rows, start=1):
            row.number = number
            row.is_first = number == 1
            row.is_last = number == len(rows)
            key = row.kind_def.key if row.kind_def else ""
            row.first_of_kind = key not in seen
            seen.add(key)
        return rows

    # Validation

    def is_valid(self) -> bool:
        results = [
            self.details.is_valid(),
            self._trigger_valid(),
            self.conditions.is_valid(),
            self.actions.is_valid(),
        ]
        rows = self.actions.rows()
        for row in rows:
            results.append(row.settings_valid())
        if not rows:
            message = "Choose at least one action: add one from the list below."
            self.non_form_errors.append(message)
            self.actions_errors.append(message)
            results.append(False)
        return all(results)

    def _trigger_valid(self) -> bool:
        if self.trigger is None:
            return True
        if not self.trigger.is_bound:
            # Posted without its settings (the trigger was changed with JavaScript off): the
            # page comes back with them, at their defaults, to be checked.
            self.non_form_errors.append(
                "This trigger has settings of its own: check when it fires, then save again."
            )
            return False
        return self.trigger.is_valid()

    @property
    def has_errors(self) -> bool:
        return bool(
            self.non_form_errors
            or self.details.errors
            or (self.trigger is not None and bool(self.trigger.errors))
            or any(self.conditions.errors)
            or self.conditions.non_form_errors()
            or self.actions.non_form_errors()
            or any(row.errors or row.settings_have_errors for row in self.actions.rows())
        )

    def submitted_locks(self) -> tuple:
        """The device locks the POST asks for, before validation (for the MDM gate)."""
        return tuple(lock for row in self.actions.rows() if (lock := row.submitted_lock()))

    def spec(self) -> AutomationSpec:
        d = self.details.cleaned_data
        rows = self.conditions.kept_forms()
        return AutomationSpec(
            name=d["name"],
            description=d.get("description", ""),
            enabled=d.get("enabled", False),
            trigger_module=d["trigger_module"],
            trigger_event=d["trigger_event"],
            trigger_options=self.trigger.options() if self.trigger is not None else {},
            match=d["match"],
            conditions=tuple(
                ConditionSpec(
                    f.cleaned_data["field"], f.cleaned_data["operator"], f.cleaned_data["value"]
                )
                for f in rows
            ),
            actions=tuple(row.spec() for row in self.actions.rows()),
        )

    def add_service_errors(self, exc: ValidationError) -> None:
        """Put a service's ValidationError beside the field it is about ("action-<i>:<field>"
        is the i-th action's field)."""
        targets = {
            "name": (self.details, "name"),
            "trigger_event": (self.details, "trigger_event"),
            "match": (self.details, "match"),
            "trigger_options": (self.trigger, None),
        }
        if not hasattr(exc, "error_dict"):
            self.non_form_errors.extend(exc.messages)
            return
        rows = self.actions.rows()
        for key, errors in exc.message_dict.items():
            form, field = targets.get(key, (None, None))
            if key.startswith("action-"):
                index, _, name = key[len("action-") :].partition(":")
                row = rows[int(index)] if index.isdigit() and int(index) < len(rows) else None
                if row is not None and name == "delay":
                    form, field = row, "delay_amount"
                elif row is not None and row.settings is not None:
                    form = row.settings
                    field = name if name in row.settings.fields else None
            if key == "actions":
                self.actions_errors.extend(errors)
            if form is None:
                self.non_form_errors.extend(errors)
            else:
                for error in errors:
                    form.add_error(field, error)

    # The live summary and payload preview (lenient: whatever parses so far)

    def preview(self, *, automation_id: int | None = None) -> dict[str, Any]:
        d = self.details.cleaned_data if self.details.is_valid() else {}
        module = self.details.current_module()
        event = (
            d.get("trigger_event")
            or (self.details.data.get("trigger_event") if self.details.is_bound else "")
            or self.details.initial.get("trigger_event", "")
        )
        match = d.get("match") or Automation.Match.ALL
        rows = []
        incomplete = 0
        for form in self.conditions.kept_forms() if self.conditions.is_bound else []:
            if form.is_valid():
                c = form.cleaned_data
                rows.append((c["field"], c["operator"], c["value"]))
            else:
                incomplete += 1
        if not self.conditions.is_bound and self.stored:
            rows = [(c.field, c.operator, c.value) for c in self.stored.conditions]
        actions = []
        for row in self.actions.rows():
            if row.kind_def is None or row.settings is None:
                continue
            if row.settings.is_bound:
                config = row.kind_def.lenient_config(row.settings)
            else:
                config = row.kind_def.form_config(row.settings.initial)
            actions.append((row.kind_def.key, config, row.delay))
        name = (
            self.details.data.get("name", "").strip()
            if self.details.is_bound
            else self.details.initial.get("name", "")
        )
        trigger_options: dict[str, Any] | None = {}
        trigger_incomplete = False
        if self.trigger is not None and self.trigger.is_valid():
            trigger_options = self.trigger.options()
        elif self.trigger is not None and self.trigger.is_bound:
            # Typed but not valid yet ("days before" with no number): the summary says the
            # trigger without its settings rather than settings nobody typed.
            trigger_options, trigger_incomplete = None, True
        elif self.stored:
            trigger_options = self.stored.trigger_options
        summary = selectors.automation_summary(
            trigger_module=module,
            trigger_event=event,
            trigger_options=trigger_options,
            match=match,
            conditions=rows,
            actions=actions,
        )
        payload = preview_payload(
            event_type=event or "member.deactivated",
            automation_id=automation_id or (self.automation.pk if self.automation else None),
            automation_name=name,
        )
        return {
            "summary": summary,
            "incomplete_conditions": incomplete,
            "trigger_incomplete": trigger_incomplete,
            "payload_json": json.dumps(payload, indent=2, ensure_ascii=False),
        }


# --- List filters --------------------------------------------------------------------------


class AutomationFilterForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=100,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Name or description", "autocomplete": "off"}
        ),
    )
    trigger = forms.ChoiceField(label="Trigger", required=False)
    enabled = forms.ChoiceField(
        label="Status",
        required=False,
        choices=[("", "Any status"), ("yes", "Enabled"), ("no", "Disabled")],
    )
    sort = forms.ChoiceField(
        label="Sort by",
        required=False,
        choices=[("name", "Name"), ("-created_at", "Newest first"), ("-last_run", "Last run")],
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["trigger"].choices = [("", "Any trigger"), *selectors.trigger_filter_choices()]

    def filters(self) -> dict[str, Any]:
        if not self.is_valid():
            return {}
        enabled = {"yes": True, "no": False}.get(self.cleaned_data.get("enabled") or "")
        return {
            "q": self.cleaned_data.get("q", "").strip(),
            "trigger_event": self.cleaned_data.get("trigger") or "",
            "enabled": enabled,
            "order": self.cleaned_data.get("sort") or "name",
        }
