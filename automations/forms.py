"""Forms of the automation builder: details and trigger, a formset of condition rows, the three
action cards (webhook with a formset of header rows, revoke licenses, MDM lock), the list filters,
and `BuilderForms`, which binds them together and turns valid input into a service spec."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms import formset_factory
from django.forms.utils import ErrorDict

from automations import conditions as cond
from automations import net, payloads, selectors, triggers
from automations.models import Action, Automation
from automations.services import (
    MAX_CONDITIONS,
    AutomationSpec,
    ConditionSpec,
    MDMLockSpec,
    RevokeSpec,
    WebhookSpec,
    spec_from_automation,
)

DEFAULT_FIELD = "department"
MAX_HEADERS = 20
# Headers the sender sets itself (Standard Webhooks signature, body framing, routing).
RESERVED_HEADERS = {
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "user-agent",
}
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
PHONE_RE = re.compile(r"^\+?[0-9][0-9 ()./-]*$")
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


class HeaderForm(forms.Form):
    """One custom header. On edit a saved header shows its name only; a blank value keeps the
    saved value (values are often credentials and are never sent back to the browser)."""

    name = forms.CharField(
        label="Header name",
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": "Authorization", "autocomplete": "off"}),
    )
    value = forms.CharField(
        label="Header value",
        required=False,
        max_length=2000,
        strip=False,
        widget=forms.PasswordInput(
            render_value=True, attrs={"autocomplete": "new-password", "placeholder": "Value"}
        ),
    )

    def __init__(self, *args: Any, existing: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.existing = {k.lower(): v for k, v in (existing or {}).items()}
        if self.initial.get("name", "").lower() in self.existing:
            self.fields["value"].widget.attrs["placeholder"] = "•••••• saved (blank keeps it)"
            self.is_saved = True
        else:
            self.is_saved = False

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        name = (cleaned.get("name") or "").strip()
        value = cleaned.get("value") or ""
        cleaned["name"] = name
        if not name and not value:
            return cleaned
        if not name:
            self.add_error("name", "Enter the header name.")
            return cleaned
        if not HEADER_NAME_RE.match(name):
            self.add_error("name", "Use letters, digits and - only (e.g. X-Api-Key).")
        elif name.lower() in RESERVED_HEADERS:
            self.add_error("name", f"{name} is set by AssetSonar; choose another header.")
        if not value.strip():
            saved = self.existing.get(name.lower())
            if saved is None:
                self.add_error("value", "Enter a value (saved values are kept only on edit).")
            else:
                cleaned["value"] = saved
        elif CONTROL_RE.search(value):
            self.add_error("value", "A header value cannot contain line breaks.")
        else:
            cleaned["value"] = value.strip()
        return cleaned


class BaseHeaderFormSet(forms.BaseFormSet):
    default_error_messages = {
        **forms.BaseFormSet.default_error_messages,
        "too_many_forms": f"A webhook can have at most {MAX_HEADERS} custom headers.",
    }

    def clean(self) -> None:
        seen: set[str] = set()
        for form in self.forms:
            if self._should_delete_form(form) or not hasattr(form, "cleaned_data"):
                continue
            name = form.cleaned_data.get("name", "").lower()
            if not name:
                continue
            if name in seen:
                form.add_error("name", "This header is already in the list.")
            seen.add(name)

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for form in self.forms:
            if self._should_delete_form(form) or not getattr(form, "cleaned_data", None):
                continue
            if form.cleaned_data.get("name"):
                out[form.cleaned_data["name"]] = form.cleaned_data["value"]
        return out


HeaderFormSet = formset_factory(
    HeaderForm,
    formset=BaseHeaderFormSet,
    extra=1,
    can_delete=True,
    max_num=MAX_HEADERS,
    validate_max=True,
    absolute_max=MAX_HEADERS + 10,
)


class ActionForm(forms.Form):
    """An action card: its `enabled` switch, and fields validated only when it is on."""

    enabled = forms.BooleanField(required=False)

    @property
    def is_on(self) -> bool:
        if self.is_bound:
            return self.fields["enabled"].widget.value_from_datadict(
                self.data, self.files, self.add_prefix("enabled")
            )
        return bool(self.initial.get("enabled"))

    def full_clean(self) -> None:
        # A switched-off card is ignored whatever its fields hold (nothing of it is saved).
        if self.is_bound and not self.is_on:
            self._errors = ErrorDict()
            self.cleaned_data = {"enabled": False}
            return
        super().full_clean()


class WebhookForm(ActionForm):
    enabled = forms.BooleanField(required=False, label="Trigger webhook")
    url = forms.URLField(
        label="URL",
        required=False,
        max_length=500,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"placeholder": "https://hr.example.com/hooks/offboard"}),
    )
    method = forms.ChoiceField(
        choices=Action.Method.choices, initial=Action.Method.POST, widget=forms.RadioSelect
    )

    def __init__(self, *args: Any, check_network: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.check_network = check_network

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not cleaned.get("enabled"):
            return cleaned
        url = cleaned.get("url")
        if not url:
            if "url" not in self.errors:
                self.add_error("url", "Enter the URL the webhook is sent to.")
            return cleaned
        if self.check_network:
            try:
                net.check_destination(url)
            except ValidationError as exc:
                self.add_error("url", exc)
        return cleaned


class RevokeForm(ActionForm):
    enabled = forms.BooleanField(required=False, label="Revoke licenses")
    user_based = forms.BooleanField(
        required=False,
        label="Un-entitle user-based licenses",
        help_text="Also un-entitles cloud user-based (SaaS) licenses.",
    )
    user_machine = forms.BooleanField(
        required=False,
        label="Un-entitle user-machine entitlements",
        help_text="The member's entitlements on a specific device.",
    )
    device_based = forms.BooleanField(
        required=False,
        label="Remove device-based entitlements from devices in custody",
        help_text="Frees the device-based licenses of the devices the member holds.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("enabled") and not any(
            cleaned.get(k) for k in ("user_based", "user_machine", "device_based")
        ):
            raise ValidationError("Choose at least one kind of license to revoke.")
        return cleaned


class MDMLockForm(ActionForm):
    enabled = forms.BooleanField(required=False, label="Lock devices in custody via MDM")
    message = forms.CharField(
        label="Lock-screen message",
        required=False,
        max_length=200,
        widget=forms.Textarea(
            attrs={
                "rows": 2,
                "placeholder": "This device belongs to Example Ltd. Please return it.",
            }
        ),
        help_text="Shown on the locked screen. Up to 200 characters, one line.",
    )
    phone = forms.CharField(
        label="Phone number",
        required=False,
        max_length=40,
        widget=forms.TextInput(attrs={"placeholder": "+1 555 0100", "inputmode": "tel"}),
        help_text="Shown on the locked screen so the finder can call IT.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not cleaned.get("enabled"):
            return cleaned
        message = (cleaned.get("message") or "").strip()
        phone = (cleaned.get("phone") or "").strip()
        if "message" in self.errors:
            pass
        elif not message:
            self.add_error("message", "Enter the message shown on the locked screen.")
        elif CONTROL_RE.search(message):
            self.add_error("message", "Keep the message on one line, without control characters.")
        if "phone" in self.errors:
            pass
        elif not phone:
            self.add_error("phone", "Enter the phone number shown on the locked screen.")
        elif not PHONE_RE.match(phone) or not 5 <= sum(ch.isdigit() for ch in phone) <= 20:
            self.add_error(
                "phone",
                "Enter a phone number of 5 to 20 digits; spaces, + ( ) . - / are allowed.",
            )
        cleaned["message"], cleaned["phone"] = message, phone
        return cleaned

    def submitted_state(self) -> MDMLockSpec | None:
        """What the POST asks for, before validation (for the permission gate)."""
        if not self.is_on:
            return None
        return MDMLockSpec(
            message=(self.data.get(self.add_prefix("message")) or "").strip(),
            phone=(self.data.get(self.add_prefix("phone")) or "").strip(),
        )


# --- The whole builder ---------------------------------------------------------------------


class BuilderForms:
    """Every form of the builder page, bound to one POST (or unbound from an automation)."""

    def __init__(
        self,
        data: Any = None,
        *,
        automation: Automation | None = None,
        check_network: bool = True,
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
            condition_rows = [
                condition_initial(c.field, c.operator, c.value) for c in stored.conditions
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
            condition_rows = []
        self.details = AutomationDetailsForm(
            data, initial=details, automation_pk=automation.pk if automation else None
        )
        self.conditions = ConditionFormSet(data, initial=condition_rows, prefix="conditions")
        webhook, revoke, mdm = (
            (stored.webhook, stored.revoke, stored.mdm) if stored else (None,) * 3
        )
        existing_headers = webhook.headers if webhook else {}
        self.webhook = WebhookForm(
            data,
            prefix="webhook",
            check_network=check_network,
            initial={"enabled": True, "url": webhook.url, "method": webhook.method}
            if webhook
            else {"method": Action.Method.POST},
        )
        self.headers = HeaderFormSet(
            data,
            prefix="headers",
            initial=[{"name": name, "value": ""} for name in existing_headers],
            form_kwargs={"existing": existing_headers},
        )
        self.revoke = RevokeForm(
            data,
            prefix="revoke",
            initial={"enabled": True, **revoke.as_dict()} if revoke else {"user_based": True},
        )
        self.mdm = MDMLockForm(
            data,
            prefix="mdm",
            initial={"enabled": True, "message": mdm.message, "phone": mdm.phone} if mdm else {},
        )

    # Validation

    def is_valid(self) -> bool:
        results = [
            self.details.is_valid(),
            self.conditions.is_valid(),
            self.webhook.is_valid(),
            self.revoke.is_valid(),
            self.mdm.is_valid(),
        ]
        if self.webhook.is_on:
            results.append(self.headers.is_valid())
        if not (self.webhook.is_on or self.revoke.is_on or self.mdm.is_on):
            message = (
                "Choose at least one action: revoke licenses, lock devices or trigger a webhook."
            )
            self.non_form_errors.append(message)
            self.actions_errors.append(message)
            results.append(False)
        return all(results)

    @property
    def has_errors(self) -> bool:
        return bool(
            self.non_form_errors
            or self.details.errors
            or any(self.conditions.errors)
            or self.conditions.non_form_errors()
            or self.webhook.errors
            or (self.webhook.is_on and (any(self.headers.errors) or self.headers.non_form_errors()))
            or self.revoke.errors
            or self.mdm.errors
        )

    def spec(self) -> AutomationSpec:
        d = self.details.cleaned_data
        rows = self.conditions.kept_forms()
        return AutomationSpec(
            name=d["name"],
            description=d.get("description", ""),
            enabled=d.get("enabled", False),
            trigger_module=d["trigger_module"],
            trigger_event=d["trigger_event"],
            match=d["match"],
            conditions=tuple(
                ConditionSpec(
                    f.cleaned_data["field"], f.cleaned_data["operator"], f.cleaned_data["value"]
                )
                for f in rows
            ),
            webhook=WebhookSpec(
                url=self.webhook.cleaned_data["url"],
                method=self.webhook.cleaned_data["method"],
                headers=self.headers.headers(),
            )
            if self.webhook.is_on
            else None,
            revoke=RevokeSpec(
                user_based=self.revoke.cleaned_data.get("user_based", False),
                user_machine=self.revoke.cleaned_data.get("user_machine", False),
                device_based=self.revoke.cleaned_data.get("device_based", False),
            )
            if self.revoke.is_on
            else None,
            mdm=MDMLockSpec(
                message=self.mdm.cleaned_data["message"], phone=self.mdm.cleaned_data["phone"]
            )
            if self.mdm.is_on
            else None,
        )

    def add_service_errors(self, exc: ValidationError) -> None:
        """Put a service's ValidationError beside the field it is about."""
        targets = {
            "name": (self.details, "name"),
            "trigger_event": (self.details, "trigger_event"),
            "match": (self.details, "match"),
            "webhook_url": (self.webhook, "url"),
            "webhook_method": (self.webhook, "method"),
            "revoke": (self.revoke, None),
            "mdm": (self.mdm, None),
        }
        if not hasattr(exc, "error_dict"):
            self.non_form_errors.extend(exc.messages)
            return
        for key, errors in exc.message_dict.items():
            form, field = targets.get(key, (None, None))
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
        revoke = None
        if self.revoke.is_on:
            revoke = self._flags(self.revoke, ["user_based", "user_machine", "device_based"])
        webhook_url = None
        if self.webhook.is_on:
            webhook_url = (
                self.webhook.data.get("webhook-url", "").strip()
                if self.webhook.is_bound
                else self.webhook.initial.get("url", "")
            )
        name = (
            self.details.data.get("name", "").strip()
            if self.details.is_bound
            else self.details.initial.get("name", "")
        )
        summary = selectors.automation_summary(
            trigger_module=module,
            trigger_event=event,
            match=match,
            conditions=rows,
            revoke=revoke,
            mdm=self.mdm.is_on,
            webhook_url=webhook_url,
        )
        payload = payloads.preview_payload(
            event_type=event or "member.deactivated",
            automation_id=automation_id or (self.automation.pk if self.automation else None),
            automation_name=name,
        )
        return {
            "summary": summary,
            "incomplete_conditions": incomplete,
            "payload_json": json.dumps(payload, indent=2, ensure_ascii=False),
        }

    @staticmethod
    def _flags(form: forms.Form, names: list[str]) -> dict[str, bool]:
        if form.is_bound:
            return {
                n: form.fields[n].widget.value_from_datadict(
                    form.data, form.files, form.add_prefix(n)
                )
                for n in names
            }
        return {n: bool(form.initial.get(n)) for n in names}


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
