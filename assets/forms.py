"""Forms for assets: they validate input and give field-level errors; services do the writing."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.db.models.functions import Lower

from assets import selectors
from assets.models import Asset
from assets.services import EDITABLE_FIELDS
from members.models import Member

# Custody starts only with a check-out (and a return is requested by its service), so no form
# offers "In custody" or "Return requested" as a status to choose.
STATUS_CHOICES_WITHOUT_CUSTODY = [
    (value, label) for value, label in Asset.Status.choices if value not in Asset.CUSTODY_STATUSES
]


class MemberField(forms.CharField):
    """A member named by email address or employee ID; cleans to a Member."""

    def __init__(self, **kwargs):
        kwargs.setdefault("label", "Member")
        kwargs.setdefault("help_text", "Email address or employee ID.")
        kwargs.setdefault("max_length", 254)
        super().__init__(**kwargs)
        self.widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})

    def clean(self, value: str) -> Member | None:
        value = super().clean(value)
        if not value:
            return None
        member = selectors.member_find(value)
        if member is None:
            raise ValidationError(
                "No member has the email address or employee ID “%(value)s”.",
                code="not_found",
                params={"value": value},
            )
        return member


class AssetTagField(forms.CharField):
    """A device named by its asset tag; cleans to an Asset."""

    def __init__(self, **kwargs):
        kwargs.setdefault("label", "Device")
        kwargs.setdefault("help_text", "Asset tag.")
        kwargs.setdefault("max_length", 40)
        super().__init__(**kwargs)
        self.widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})

    def clean(self, value: str) -> Asset | None:
        value = super().clean(value)
        if not value:
            return None
        asset = selectors.asset_find_by_tag(value)
        if asset is None:
            raise ValidationError(
                "No asset has the tag “%(value)s”.", code="not_found", params={"value": value}
            )
        return asset


class AssetForm(forms.ModelForm):
    """Create or edit an asset's details (not its custody)."""

    class Meta:
        model = Asset
        fields = EDITABLE_FIELDS
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        status = self.fields["status"]
        if self.instance.pk and self.instance.is_held:
            status.disabled = True
            status.help_text = "Check the asset in to change its status."
        else:
            status.choices = STATUS_CHOICES_WITHOUT_CUSTODY
        self.fields["mdm_connection"].empty_label = "Not enrolled"

    def _others(self):
        return Asset.objects.exclude(pk=self.instance.pk) if self.instance.pk else Asset.objects

    def _taken(self, name: str, value: str) -> bool:
        """Another asset has `value` in any letter case (on the constraint's LOWER index)."""
        return self._others().annotate(v=Lower(name)).filter(v=value.lower()).exists()

    # Both are unique in any letter case (LOWER(...) constraints), which Django reports above the
    # form; checking here puts the message on the field.
    def clean_asset_tag(self) -> str:
        tag = self.cleaned_data["asset_tag"].strip()
        if tag and self._taken("asset_tag", tag):
            raise ValidationError("Another asset already has this asset tag.", code="unique")
        return tag

    def clean_serial_number(self) -> str:
        serial = self.cleaned_data["serial_number"].strip()
        if serial and self._taken("serial_number", serial):
            raise ValidationError("Another asset already has this serial number.", code="unique")
        return serial

    def clean_mdm_device_id(self) -> str:
        return self.cleaned_data["mdm_device_id"].strip()

    def clean(self) -> dict:
        cleaned = super().clean()
        device_id = cleaned.get("mdm_device_id")
        connection = cleaned.get("mdm_connection")
        if device_id and not connection and "mdm_connection" not in self.errors:
            self.add_error("mdm_connection", "Choose the MDM connection this device ID belongs to.")
        elif (
            device_id
            and connection
            and self._others().filter(mdm_connection=connection, mdm_device_id=device_id).exists()
        ):
            self.add_error(
                "mdm_device_id", "Another asset is already enrolled with this MDM device ID."
            )
        return cleaned


class CheckOutForm(forms.Form):
    """Who gets the asset. Active-member and availability rules are the service's."""

    prefix = "check_out"
    member = MemberField()
    note = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}))


class CheckInForm(forms.Form):
    """The status the asset returns to, and why."""

    prefix = "check_in"
    status = forms.ChoiceField(
        label="Return to status",
        choices=STATUS_CHOICES_WITHOUT_CUSTODY,
        initial=Asset.Status.AVAILABLE,
    )
    note = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}))


class MarkUnlockedForm(forms.Form):
    """How a locked device was unlocked: the audit trail keeps it."""

    prefix = "unlocked"
    note = forms.CharField(
        label="How was it unlocked?",
        max_length=500,
        help_text="For example: returned to IT and unlocked at the desk with its PIN.",
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "Say how the device was unlocked (for the audit trail)."},
    )
