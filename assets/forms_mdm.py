"""The MDM connection form: provider, base URL and write-only credentials.

Credentials are never rendered back: the inputs are always empty, a blank input keeps the stored
value, and the stored values are only read to merge them with what was typed. They are
encrypted as one JSON object by `MDMConnection.set_credentials` when the service saves.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django import forms
from django.core.exceptions import ValidationError

from assets.models import MDMConnection
from assetsonar.net import check_destination

Provider = MDMConnection.Provider

# provider → [(credential key, form field, label)]
CREDENTIAL_FIELDS: dict[str, list[tuple[str, str, str]]] = {
    Provider.JAMF: [
        ("client_id", "jamf_client_id", "API client ID"),
        ("client_secret", "jamf_client_secret", "API client secret"),
    ],
    Provider.INTUNE: [
        ("tenant_id", "intune_tenant_id", "Directory (tenant) ID"),
        ("client_id", "intune_client_id", "Application (client) ID"),
        ("client_secret", "intune_client_secret", "Client secret"),
    ],
    Provider.KANDJI: [("api_token", "kandji_api_token", "API token")],
    Provider.SIMULATOR: [],
}
SECRET_FIELD_NAMES = [name for fields in CREDENTIAL_FIELDS.values() for _, name, _ in fields]
NEEDS_BASE_URL = {Provider.JAMF, Provider.KANDJI}


def _write_only(label: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        strip=True,
        max_length=4000,
        # render_value=False: the stored value never reaches the page, not even after an error.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )


class MDMConnectionForm(forms.ModelForm):
    """Create or change an MDM connection. After `is_valid()`, `credentials` holds the merged
    credential dict for the chosen provider (what the service stores)."""

    jamf_client_id = _write_only("API client ID")
    jamf_client_secret = _write_only("API client secret")
    intune_tenant_id = _write_only("Directory (tenant) ID")
    intune_client_id = _write_only("Application (client) ID")
    intune_client_secret = _write_only("Client secret")
    kandji_api_token = _write_only("API token")
    # Declared to choose https for a URL typed without a scheme (Django 6's default).
    base_url = forms.URLField(
        label="Base URL",
        required=False,
        max_length=200,
        assume_scheme="https",
        help_text=MDMConnection._meta.get_field("base_url").help_text,
    )

    class Meta:
        model = MDMConnection
        fields = ["name", "provider", "base_url", "is_active", "max_concurrent_requests"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.credentials: dict[str, str] = {}
        # The provider the stored credentials belong to (the form changes the instance later).
        self._stored_provider = self.instance.provider if self.instance.pk else None
        stored = self._stored() if self.instance.pk else {}
        for provider, fields in CREDENTIAL_FIELDS.items():
            for key, name, _label in fields:
                is_set = provider == self._stored_provider and bool(stored.get(key))
                self.fields[name].help_text = (
                    "Stored (encrypted). Leave blank to keep the current value."
                    if is_set
                    else "Not set."
                )
        if "max_concurrent_requests" in self.fields:  # absent from a read-only admin form
            self.fields["max_concurrent_requests"].required = False

    def clean_max_concurrent_requests(self) -> int:
        # Left empty (or absent from an older form): the model's default, Jamf's guidance of 5.
        value = self.cleaned_data.get("max_concurrent_requests")
        if value is None:
            return MDMConnection._meta.get_field("max_concurrent_requests").default
        return value

    def _stored(self) -> dict[str, str]:
        try:
            return self.instance.get_credentials()
        except ValueError:
            # Undecryptable after a key change: treat as unset, the administrator re-enters them.
            return {}

    def clean_base_url(self) -> str:
        url = (self.cleaned_data.get("base_url") or "").strip().rstrip("/")
        if url:
            parts = urlsplit(url)
            if parts.query or parts.fragment:
                raise ValidationError("Enter the base URL without a query or fragment.")
        return url

    def clean(self) -> dict:
        cleaned = super().clean()
        provider = cleaned.get("provider")
        if not provider:
            return cleaned
        base_url = cleaned.get("base_url", "")
        if provider in NEEDS_BASE_URL and not base_url and "base_url" not in self.errors:
            self.add_error("base_url", "Enter the base URL of your tenant.")
        if base_url and provider != Provider.SIMULATOR:
            try:
                check_destination(base_url)
            except ValidationError as error:
                self.add_error("base_url", error)
        stored = self._stored() if provider == self._stored_provider else {}
        credentials = {}
        for key, name, label in CREDENTIAL_FIELDS[provider]:
            value = cleaned.get(name) or stored.get(key, "")
            if not value:
                self.add_error(name, f"Enter the {label} (required for this provider).")
            credentials[key] = value
        self.credentials = credentials
        return cleaned
