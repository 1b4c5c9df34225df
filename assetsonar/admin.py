"""Django admin for the audit log (read-only) and the portal settings (a singleton)."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from assetsonar.admin_mixins import ReadOnlyAdminMixin
from assetsonar.audit import audit_record, model_changes
from assetsonar.models import AuditEvent, PortalSettings

admin.site.site_header = "AssetSonar administration"
admin.site.site_title = "AssetSonar admin"
admin.site.index_title = "Support tools"


class ObjectTypeFilter(admin.AllValuesFieldListFilter):
    """The object type filter, with a name for events about no object (sign-ins, settings):
    their empty value was a link with no text."""

    def choices(self, changelist):
        for choice in super().choices(changelist):
            if choice["display"] == "" or str(choice["display"]).startswith(" ("):
                choice = {**choice, "display": f"No object{choice['display']}"}
            yield choice


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit log. Never added to, changed or deleted by hand."""

    list_display = ["at", "who", "action", "object_type", "object_repr", "message", "ip_address"]
    list_filter = ["action", ("at", admin.DateFieldListFilter), ("object_type", ObjectTypeFilter)]
    search_fields = ["actor_name", "object_repr", "object_id", "message"]
    show_full_result_count = False
    fields = [
        "at",
        "actor",
        "actor_name",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "changes",
        "message",
        "ip_address",
    ]

    @admin.display(description="actor", ordering="actor_name")
    def who(self, obj: AuditEvent) -> str:
        return obj.actor_name or "system"

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("actor")


@admin.register(PortalSettings)
class PortalSettingsAdmin(admin.ModelAdmin):
    """The one settings row: the list goes straight to it, and every change is audited."""

    fields = [
        "mdm_commands_enabled",
        "company_time_zone",
        "deactivate_on_last_day_default",
        "updated_at",
    ]
    readonly_fields = ["updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return redirect(
            reverse("admin:assetsonar_portalsettings_change", args=[PortalSettings.load().pk])
        )

    def save_model(self, request: HttpRequest, obj: PortalSettings, form, change: bool) -> None:
        # No service owns this row; the audit row is written here, in the admin's transaction.
        super().save_model(request, obj, form, change)
        changes = model_changes(obj, form.initial, form.changed_data)
        if changes:
            audit_record(
                action=AuditEvent.Action.SETTINGS_CHANGED,
                actor=request.user,
                obj=obj,
                changes=changes,
                request=request,
            )
