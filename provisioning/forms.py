"""The Provisioning page's form. Saving goes through provisioning.services."""

from __future__ import annotations

from django import forms


class TokenForm(forms.Form):
    """A new SCIM token: its name and its scope."""

    name = forms.CharField(
        max_length=100,
        label="Name",
        help_text="The identity provider it is for, e.g. “Okta production”. Shown in the audit "
        "trail as “SCIM · <name>”.",
        error_messages={"required": "Name the token after the identity provider using it."},
    )
    read_only = forms.BooleanField(
        required=False,
        label="Read-only",
        help_text="May read users but not create, change or deactivate them.",
    )
