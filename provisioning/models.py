"""SCIM provisioning: the tokens identity providers authenticate with, and their request log."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ScimToken(models.Model):
    """A bearer token an identity provider (Okta, Entra ID) sends to /scim/v2/.

    Only a SHA-256 of the token is stored: the token is 256 random bits, so a fast hash is as safe
    as a slow one and lets each request find its token with one indexed lookup. The first
    characters are kept in clear (`prefix`) so a person can tell tokens apart.
    """

    name = models.CharField(
        max_length=100, unique=True, help_text="Shown in the audit trail, e.g. “Okta production”."
    )
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    read_only = models.BooleanField(
        default=False, help_text="A read-only token may read users but not create or change them."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_from = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "SCIM token"
        permissions = [("manage_provisioning", "Can manage SCIM provisioning tokens")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def scope(self) -> str:
        return "Read-only" if self.read_only else "Read and write"

    @property
    def audit_name(self) -> str:
        """How the audit trail and the member page name this token's writes."""
        return f"SCIM · {self.name}"


class ScimRequest(models.Model):
    """One request to the SCIM endpoint, kept so IT can see why the identity provider reports an
    error. Written after the request's own transaction, so a failed request is logged too."""

    token = models.ForeignKey(
        ScimToken, null=True, blank=True, on_delete=models.CASCADE, related_name="requests"
    )
    request_id = models.CharField(max_length=32)
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=300)
    status = models.PositiveSmallIntegerField()
    scim_type = models.CharField(max_length=40, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    member = models.ForeignKey(
        "members.Member", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "SCIM request"
        indexes = [
            models.Index(fields=["token", "-at"], name="scim_request_token_at"),
            # The Provisioning page's failures, found without reading the successes between.
            models.Index(
                fields=["token", "-at"],
                name="scim_request_token_failed",
                condition=models.Q(status__gte=400),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} → {self.status}"

    @property
    def failed(self) -> bool:
        return self.status >= 400
