"""Cross-cutting models: the audit log and the portal-wide settings an administrator switches."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


class AuditEvent(models.Model):
    """One security- or business-relevant event: who did what to which object, and what changed.

    Written by services in the same transaction as the change they describe, and by the auth
    receivers for sign-in, failed sign-in, sign-in lockouts and permission refusals. Never edited.
    """

    class Action(models.TextChoices):
        SIGN_IN = "auth.sign_in", "Signed in"
        SIGN_IN_FAILED = "auth.sign_in_failed", "Sign-in failed"
        SIGN_OUT = "auth.sign_out", "Signed out"
        SIGN_IN_LOCKED_OUT = "auth.locked_out", "Sign-in locked out"
        PERMISSION_DENIED = "auth.permission_denied", "Permission refused"
        CREATED = "created", "Created"
        CHANGED = "changed", "Changed"
        DELETED = "deleted", "Deleted"
        DEACTIVATED = "member.deactivated", "Member deactivated"
        REACTIVATED = "member.reactivated", "Member reactivated"
        CHECKED_OUT = "asset.checked_out", "Asset checked out"
        CHECKED_IN = "asset.checked_in", "Asset checked in"
        ENTITLED = "license.entitled", "License entitled"
        REVOKED = "license.revoked", "Entitlement revoked"
        ENABLED = "automation.enabled", "Automation enabled"
        DISABLED = "automation.disabled", "Automation disabled"
        OTP_VERIFIED = "otp.verified", "One-time password verified"
        OTP_FAILED = "otp.failed", "One-time password refused"
        OTP_ENROLLED = "otp.enrolled", "Authenticator enrolled"
        PIN_VIEWED = "mdm.pin_viewed", "Unlock PIN viewed"
        MARKED_UNLOCKED = "mdm.marked_unlocked", "Device marked unlocked"
        SETTINGS_CHANGED = "settings.changed", "Settings changed"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(
        max_length=150, blank=True, help_text="Kept if the user is deleted."
    )
    action = models.CharField(max_length=40, choices=Action.choices, db_index=True)
    object_type = models.CharField(max_length=60, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    message = models.CharField(max_length=500, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id", "-at"])]

    def __str__(self) -> str:
        return (
            f"{self.at:%Y-%m-%d %H:%M} {self.actor_name or 'system'}: {self.get_action_display()}"
        )

    @property
    def change_rows(self) -> list[tuple[str, Any, Any, bool]]:
        """`changes` as (field, before, after, is_change) rows for the audit trails. A change is
        a [before, after] pair; any other value (rows written before that rule, e.g. the
        connection name of a PIN reveal) is one value shown whole (is_change False), never
        indexed: indexing a string showed "connection: D → e"."""
        rows = []
        for field, value in (self.changes or {}).items():
            if isinstance(value, list | tuple) and len(value) == 2:
                rows.append((field, value[0], value[1], True))
            else:
                rows.append((field, value, None, False))
        return rows


def default_company_time_zone() -> str:
    return settings.TIME_ZONE


class PortalSettings(models.Model):
    """Singleton row of portal-wide switches an administrator controls in the Django admin."""

    mdm_commands_enabled = models.BooleanField(
        "MDM management commands",
        default=False,
        help_text="Allow automations to send lock commands to devices through a connected MDM.",
    )
    company_time_zone = models.CharField(
        "company time zone",
        max_length=64,
        default=default_company_time_zone,
        help_text="IANA name, e.g. Europe/Berlin. A member without a time zone of their own "
        "ends their last working day at midnight here.",
    )
    deactivate_on_last_day_default = models.BooleanField(
        "deactivate on the last working day, by default",
        default=True,
        help_text="For members added from now on (form, HR import, SCIM): deactivate them "
        "automatically when their last working day ends. Each member can be changed.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "portal settings"
        verbose_name_plural = "portal settings"
        constraints = [
            models.CheckConstraint(condition=models.Q(pk=1), name="portal_settings_singleton")
        ]

    def __str__(self) -> str:
        return "Portal settings"

    def clean(self) -> None:
        from members.models import validate_time_zone

        try:
            validate_time_zone(self.company_time_zone)
        except ValidationError as error:
            raise ValidationError({"company_time_zone": error}) from None
        if not self.company_time_zone:
            raise ValidationError({"company_time_zone": "Enter the company's time zone."})

    @classmethod
    def load(cls) -> PortalSettings:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


class Tally(models.Model):
    """A count of rows kept up to date by the services that add, remove or move them (members
    by status, assets by status), so the dashboard reads a few rows instead of counting a
    million. Keys: "members.<status>", "assets.<status>". See assetsonar/tallies.py;
    `manage.py recount` recomputes them."""

    key = models.CharField(max_length=60, primary_key=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.key} = {self.value}"
