"""Admin for authenticator apps: staff can see who enrolled and delete a lost authenticator (its
owner then enrols again). The shared secret is never shown, in any form; django-otp's own
TOTPDevice admin, which shows the key and its QR code, is removed because that model is no
longer used (see `AuthenticatorDevice`)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice

from automations.models import AuthenticatorDevice

if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)


@admin.register(AuthenticatorDevice)
class AuthenticatorDeviceAdmin(admin.ModelAdmin):
    list_display = ("user", "name", "confirmed", "created_at", "last_used_at")
    list_filter = ("confirmed", "created_at", "last_used_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "user__email")
    fields = (
        "user",
        "name",
        "confirmed",
        "created_at",
        "last_used_at",
        "throttling_failure_count",
        "throttling_failure_timestamp",
    )
    readonly_fields = fields

    # Only an enrolment, which shows the secret to its owner once, creates a device; a device
    # made or edited here would have a secret nobody can see or a confirmation nobody proved.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
