"""Forms for licenses and entitlements: field-level errors here, the seat rules in services."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator

from assets.forms import AssetTagField, MemberField
from licenses.models import License
from licenses.services import EDITABLE_FIELDS


class LicenseForm(forms.ModelForm):
    """Create or edit a license."""

    class Meta:
        model = License
        fields = EDITABLE_FIELDS
        widgets = {
            "expires_on": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args, seats_used: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.seats_used = seats_used
        # One rule, one message: the field's own "greater than or equal to 0" (from the
        # PositiveIntegerField) would otherwise be shown beside it for a negative number.
        self.fields["seats"].validators = [
            v for v in self.fields["seats"].validators if not isinstance(v, MinValueValidator)
        ] + [MinValueValidator(1, "A license needs at least one seat.")]
        self.fields["seats"].widget.attrs["min"] = max(1, seats_used)
        self.fields["cost"].validators.append(
            MinValueValidator(Decimal("0"), "The cost cannot be negative.")
        )
        self.fields["cost"].widget.attrs["min"] = "0"
        if self.instance.pk and seats_used:
            self.fields["seats"].help_text = f"{seats_used} in use; it cannot go below that."
            self.fields["kind"].disabled = True
            self.fields[
                "kind"
            ].help_text = "The kind cannot change once the license has entitlements."

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()

    def clean_vendor(self) -> str:
        return self.cleaned_data["vendor"].strip()

    def clean_seats(self) -> int:
        seats = self.cleaned_data["seats"]
        if seats < self.seats_used:
            raise ValidationError(
                "%(used)s seats are in use; revoke entitlements before going below %(used)s.",
                code="below_used",
                params={"used": self.seats_used},
            )
        return seats

    def clean(self) -> dict:
        cleaned = super().clean()
        name, vendor = cleaned.get("name"), cleaned.get("vendor")
        # Django reports a two-field unique constraint above the form; the name field is where
        # the user will look.
        if name is not None and vendor is not None:
            others = License.objects.filter(name=name, vendor=vendor)
            if self.instance.pk:
                others = others.exclude(pk=self.instance.pk)
            if others.exists():
                self.add_error("name", "A license with this name and vendor already exists.")
        return cleaned


class EntitleForm(forms.Form):
    """Who or what gets a seat. The fields follow the license's kind: a member (and optionally the
    device they use it on) for user-based licenses, a device for device-based ones."""

    prefix = "entitle"
    member = MemberField()
    asset = AssetTagField(
        label="On device",
        required=False,
        help_text="Optional asset tag: give the seat for use on one device (user-machine).",
    )

    def __init__(self, *args, license: License, **kwargs):
        super().__init__(*args, **kwargs)
        self.license = license
        if license.kind == License.Kind.DEVICE:
            del self.fields["member"]
            self.fields["asset"].required = True
            self.fields["asset"].label = "Device"
            self.fields["asset"].help_text = "Asset tag of the device."


class RevokeForm(forms.Form):
    """Why a seat is taken back (kept in the entitlement's history)."""

    prefix = "revoke"
    reason = forms.CharField(
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Kept with the entitlement's history.",
    )
