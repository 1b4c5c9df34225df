"""Forms of the members pages. They validate input; saving goes through members.services."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Value
from django.db.models.functions import Lower

from assetsonar.models import PortalSettings
from members.models import Member, time_zone_choices

# The manager chain is short in practice; a guard stops a walk through bad data.
MAX_MANAGER_DEPTH = 100
# One transaction deactivates the whole selection; a page holds 50 rows.
MAX_BULK = 500


def _email_matches(email: str):
    # lower(email) = lower(%s) is answered by the member_email_lower index; `iexact` would compare
    # UPPER() values and scan the table.
    return Member.objects.alias(email_l=Lower("email")).filter(email_l=Lower(Value(email)))


class MemberForm(forms.ModelForm):
    """Create or edit a member's profile.

    The manager is typed as an email address or employee ID and resolved in `clean_manager`: a
    <select> of every member would put 100,000 options on the page, and a search widget needs
    JavaScript the page must work without. Department and location are free text with the existing
    values offered as suggestions (<datalist>), so a new department needs no admin step.
    """

    manager = forms.CharField(
        required=False,
        max_length=254,
        label="Manager",
        help_text="The manager's email address or employee ID. Leave empty for none.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    class Meta:
        model = Member
        fields = [
            "full_name",
            "email",
            "employee_id",
            "department",
            "location",
            "title",
            "manager",
            "employment_type",
            "personal_email",
            "last_working_day",
            "time_zone",
            "deactivate_on_last_day",
        ]
        labels = {
            "last_working_day": "Last working day",
            "time_zone": "Time zone",
            "deactivate_on_last_day": "Deactivate automatically at the end of the last working day",
            "personal_email": "Personal email",
        }
        error_messages = {
            "last_working_day": {"invalid": "Enter the date as YYYY-MM-DD, e.g. 2026-12-13."},
        }
        widgets = {
            "last_working_day": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "department": forms.TextInput(
                attrs={"list": "department-options", "autocomplete": "off"}
            ),
            "location": forms.TextInput(attrs={"list": "location-options", "autocomplete": "off"}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound and self.instance.manager_id:
            self.initial["manager"] = self.instance.manager.email
        portal = PortalSettings.load()
        if self.instance.pk is None and not self.is_bound:
            self.initial["deactivate_on_last_day"] = portal.deactivate_on_last_day_default
        # A select, not free text: one of the IANA names zoneinfo knows, or the company's.
        self.fields["time_zone"].widget = forms.Select(
            choices=[("", f"The company's ({portal.company_time_zone})")]
            + [(name, name) for name in time_zone_choices()]
        )
        self.fields["time_zone"].help_text = (
            "Their last working day ends at midnight in this zone. Leave it on the company's "
            "unless the member works elsewhere."
        )
        self.fields[
            "last_working_day"
        ].help_text = "When the member leaves. Leave empty when no date is known."

    def clean_personal_email(self) -> str:
        personal = self.cleaned_data["personal_email"].strip()
        work = (self.cleaned_data.get("email") or "").strip()
        if personal and work and personal.lower() == work.lower():
            raise ValidationError(
                "This is the work email; enter a private address or leave it empty.",
                code="same_as_work",
            )
        return personal

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        if _email_matches(email).exclude(pk=self.instance.pk).exists():
            raise ValidationError(
                "Another member already has this email address.", code="duplicate"
            )
        return email

    def clean_employee_id(self) -> str:
        employee_id = self.cleaned_data["employee_id"].strip()
        if (
            employee_id
            and Member.objects.filter(employee_id=employee_id).exclude(pk=self.instance.pk).exists()
        ):
            raise ValidationError("Another member already has this employee ID.", code="duplicate")
        return employee_id

    def clean_manager(self) -> Member | None:
        value = self.cleaned_data["manager"].strip()
        if not value:
            return None
        if "@" in value:
            manager = _email_matches(value).first()
        else:
            manager = Member.objects.filter(employee_id__in={value, value.upper()}).first()
        if manager is None:
            raise ValidationError(
                "No member has the email address or employee ID “%(value)s”.",
                code="not_found",
                params={"value": value},
            )
        if self.instance.pk is not None:
            self._refuse_cycle(manager)
        return manager

    def _refuse_cycle(self, manager: Member) -> None:
        if manager.pk == self.instance.pk:
            raise ValidationError("A member cannot be their own manager.", code="cycle")
        seen = {manager.pk}
        next_id = manager.manager_id
        for _ in range(MAX_MANAGER_DEPTH):
            if next_id is None:
                return
            if next_id == self.instance.pk:
                raise ValidationError(
                    "%(manager)s reports to this member (directly or through others), so they "
                    "cannot be this member's manager.",
                    code="cycle",
                    params={"manager": manager},
                )
            if next_id in seen:
                return
            seen.add(next_id)
            next_id = Member.objects.filter(pk=next_id).values_list("manager_id", flat=True).first()

    def service_fields(self) -> dict:
        """The cleaned values, as keyword arguments for member_create/member_update."""
        return {name: self.cleaned_data[name] for name in self.Meta.fields}


class DeactivateForm(forms.Form):
    """The reason asked for when deactivating one member."""

    reason = forms.CharField(
        max_length=500,
        label="Reason",
        help_text="Kept in the audit trail, e.g. “Left the company on 30 June”.",
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": 500}),
        error_messages={"required": "Say why the member is deactivated (for the audit trail)."},
    )


class BulkDeactivateForm(DeactivateForm):
    """The members selected on the list page and the reason for deactivating them."""

    ids = forms.ModelMultipleChoiceField(
        queryset=Member.objects.order_by(),
        widget=forms.MultipleHiddenInput,
        error_messages={"required": "Select at least one member."},
    )

    def clean_ids(self):
        members = self.cleaned_data["ids"]
        if len(members) > MAX_BULK:
            raise ValidationError(
                "Select at most %(max)d members at a time.", params={"max": MAX_BULK}
            )
        return members


class UpcomingFilterForm(forms.Form):
    """The Upcoming offboardings filters: the next N days, or a date range, department, location.
    Invalid input shows its message and the page falls back to the next 30 days."""

    days = forms.IntegerField(
        label="Next days",
        required=False,
        min_value=1,
        max_value=366,
        error_messages={
            "min_value": "Enter a number of days from 1 to 366.",
            "max_value": "Enter a number of days from 1 to 366.",
            "invalid": "Enter a whole number of days, e.g. 30.",
        },
    )
    start = forms.DateField(
        label="From",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter the date as YYYY-MM-DD, e.g. 2026-12-13."},
    )
    end = forms.DateField(
        label="To",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter the date as YYYY-MM-DD, e.g. 2026-12-13."},
    )
    department = forms.ChoiceField(label="Department", required=False)
    location = forms.ChoiceField(label="Location", required=False)

    def __init__(self, *args, departments=(), locations=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["department"].choices = [("", "Any department")] + [(v, v) for v in departments]
        self.fields["location"].choices = [("", "Any location")] + [(v, v) for v in locations]

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and end < start:
            self.add_error("end", "The end date is before the start date.")
        return cleaned

    def window(self, today):
        """(start, end, department, location): what the page lists."""
        from datetime import timedelta

        from members.selectors import UPCOMING_DEFAULT_DAYS

        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        days = data.get("days") or UPCOMING_DEFAULT_DAYS
        start = data.get("start") or today
        end = data.get("end") or start + timedelta(days=days)
        return start, end, data.get("department", ""), data.get("location", "")
