"""Django admin for MDM connections: write-only credentials and a "Test connection" button.

Registered by `assets.admin`. Credentials are typed into empty password inputs, encrypted by the
service, and never shown again; the change page only says whether each one is stored.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from assets.forms_mdm import CREDENTIAL_FIELDS, SECRET_FIELD_NAMES, MDMConnectionForm
from assets.mdm.services import mdm_connection_save, mdm_connection_test
from assets.models import MDMConnection

PROVIDER_LABELS = dict(MDMConnection.Provider.choices)


class MDMConnectionAdmin(admin.ModelAdmin):
    """MDM connections. Credentials are write-only; "Test connection" calls the vendor."""

    form = MDMConnectionForm
    list_display = ["name", "provider", "base_url", "is_active", "last_test"]
    list_filter = ["provider", "is_active", "last_test_ok"]
    search_fields = ["name", "base_url"]
    readonly_fields = [
        "last_tested_at",
        "last_test_ok",
        "last_test_message",
        "created_at",
        "updated_at",
    ]

    class Media:
        css = {"all": ["assets/admin_mdm.css"]}
        js = ["assets/admin_mdm.js"]

    def get_fieldsets(self, request: HttpRequest, obj=None):
        fieldsets = [
            (
                None,
                {
                    "fields": [
                        "name",
                        "provider",
                        "base_url",
                        "is_active",
                        "max_concurrent_requests",
                    ]
                },
            )
        ]
        for provider, fields in CREDENTIAL_FIELDS.items():
            if fields:
                fieldsets.append(
                    (
                        f"{PROVIDER_LABELS[provider]} credentials",
                        {
                            "fields": [name for _key, name, _label in fields],
                            "classes": ["mdm-credentials", f"mdm-provider-{provider}"],
                            "description": "Used only when the provider is "
                            f"{PROVIDER_LABELS[provider]}. Values are stored encrypted and "
                            "never shown again; leave a field blank to keep the current value.",
                        },
                    )
                )
        if obj is not None:
            fieldsets.append(
                (
                    "Last connection test",
                    {"fields": ["last_tested_at", "last_test_ok", "last_test_message"]},
                )
            )
            fieldsets.append(("History", {"fields": ["created_at", "updated_at"]}))
        return fieldsets

    @admin.display(description="last test", ordering="last_tested_at")
    def last_test(self, obj: MDMConnection) -> str:
        if obj.last_tested_at is None:
            return "Never tested"
        result = "OK" if obj.last_test_ok else "Failed"
        return format_html(
            "{}: {} <span class='mdm-test-when'>({})</span>",
            result,
            obj.last_test_message,
            timezone.localtime(obj.last_tested_at).strftime("%Y-%m-%d %H:%M"),
        )

    @method_decorator(sensitive_post_parameters(*SECRET_FIELD_NAMES))
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: MDMConnection, form, change: bool) -> None:
        mdm_connection_save(
            connection=obj, credentials=form.credentials, actor=request.user, request=request
        )

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/test/",
                self.admin_site.admin_view(self.test_connection_view),
                name="{}_{}_test".format(*info),
            ),
            *super().get_urls(),
        ]

    @method_decorator(require_POST)
    def test_connection_view(self, request: HttpRequest, object_id: str):
        connection = self.get_object(request, unquote(object_id))
        if connection is None:
            raise Http404("No such MDM connection.")
        if not self.has_change_permission(request, connection):
            raise PermissionDenied
        ok, message = mdm_connection_test(connection=connection)
        self.log_change(request, connection, f"Tested the connection: {'OK' if ok else 'failed'}.")
        self.message_user(
            request,
            f"Connection test {'succeeded' if ok else 'failed'}: {message}",
            messages.SUCCESS if ok else messages.ERROR,
        )
        return HttpResponseRedirect(
            reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
                args=[connection.pk],
                current_app=self.admin_site.name,
            )
        )
