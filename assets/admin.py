"""Django admin for assets, custody history and MDM connections, for support staff.

Asset writes go through `assets.services`. Custody (custodian and status) is never edited in the
form: it changes by checking an asset out in the portal or in with the "Check in" action, so every
change has its custody record and audit row.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from assets.admin_mdm import MDMConnectionAdmin
from assets.models import Asset, CustodyRecord, MDMConnection, ReturnMail, ReturnRequest
from assets.services import EDITABLE_FIELDS, asset_check_in, asset_create, asset_update
from assetsonar.admin_mixins import ReadOnlyAdminMixin


class CustodyRecordInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The asset's custody history, newest first. Written by check-out and check-in only."""

    model = CustodyRecord
    fk_name = "asset"
    fields = [
        "member",
        "checked_out_at",
        "checked_out_by",
        "checked_in_at",
        "checked_in_by",
        "note",
    ]
    readonly_fields = fields
    verbose_name_plural = "custody history"
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request: HttpRequest):
        return (
            super()
            .get_queryset(request)
            .select_related("member", "checked_out_by", "checked_in_by")
        )


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = [
        "asset_tag",
        "name",
        "category",
        "platform",
        "status",
        "custodian",
        "mdm_connection",
    ]
    list_select_related = ["custodian", "mdm_connection"]
    list_filter = ["status", "category", "platform", "mdm_connection"]
    search_fields = [
        "asset_tag",
        "name",
        "serial_number",
        "mdm_device_id",
        "custodian__full_name",
        "custodian__email",
    ]
    autocomplete_fields = ["mdm_connection"]
    show_full_result_count = False
    readonly_fields = ["status", "custodian", "lock_state", "locked_at", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["asset_tag", "name", "category", "platform", "notes"]}),
        ("Hardware", {"fields": ["manufacturer", "model", "serial_number"]}),
        (
            "Custody",
            {
                "fields": ["status", "custodian"],
                "description": "Changed by checking the asset out in the portal, or in with the "
                "“Check in” action.",
            },
        ),
        ("MDM", {"fields": ["mdm_connection", "mdm_device_id", "lock_state", "locked_at"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]
    inlines = [CustodyRecordInline]
    actions = ["check_in_selected"]

    def get_queryset(self, request: HttpRequest):
        # The change page shows the custodian and connection; the changelist joins them anyway.
        return super().get_queryset(request).select_related("custodian", "mdm_connection")

    def save_model(self, request: HttpRequest, obj: Asset, form, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in EDITABLE_FIELDS if name in form.fields}
        if change:
            asset_update(asset=obj, actor=request.user, request=request, **fields)
        else:
            obj.pk = asset_create(actor=request.user, request=request, **fields).pk
        obj.refresh_from_db()

    @admin.action(permissions=["change"], description="Check in selected assets")
    def check_in_selected(self, request: HttpRequest, queryset) -> None:
        checked_in, skipped = 0, []
        for pk, asset_tag in queryset.values_list("pk", "asset_tag"):
            try:
                asset_check_in(
                    asset=pk,
                    actor=request.user,
                    note="Checked in from the Django admin.",
                    request=request,
                )
            except ValidationError:
                skipped.append(asset_tag)
            else:
                checked_in += 1
        if checked_in:
            self.message_user(
                request,
                f"Checked in {checked_in} asset{'s' if checked_in != 1 else ''}.",
                messages.SUCCESS,
            )
        if skipped:
            shown = ", ".join(skipped[:10])
            if len(skipped) > 10:
                shown += f" and {len(skipped) - 10} more"
            self.message_user(
                request, f"Not checked out to anyone, left as they were: {shown}.", messages.WARNING
            )


class OpenFilter(admin.SimpleListFilter):
    title = "custody"
    parameter_name = "open"

    def lookups(self, request: HttpRequest, model_admin):
        return [("yes", "Open (not checked in)"), ("no", "Closed")]

    def queryset(self, request: HttpRequest, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(checked_in_at__isnull=self.value() == "yes")
        return queryset


@admin.register(CustodyRecord)
class CustodyRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Custody history: read-only, it is written by check-out and check-in."""

    list_display = ["asset", "member", "checked_out_at", "checked_in_at", "note"]
    list_select_related = ["asset", "member"]
    list_filter = [OpenFilter, "checked_out_at"]
    search_fields = [
        "asset__asset_tag",
        "asset__serial_number",
        "member__full_name",
        "member__email",
    ]
    show_full_result_count = False
    # Newest first by primary key: the model's -checked_out_at has no index, and would sort every
    # record for each page.
    ordering = ["-id"]

    def get_queryset(self, request: HttpRequest):
        return (
            super()
            .get_queryset(request)
            .select_related("asset", "member", "checked_out_by", "checked_in_by")
        )


# Credentials handling lives in its own module (write-only encrypted fields, "Test connection").
admin.site.register(MDMConnection, MDMConnectionAdmin)


class ReturnMailInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The emails about a return request (its notice, reminders, escalation) and what became of
    each. Written by assets.returns only."""

    model = ReturnMail
    fk_name = "request"
    fields = ["kind", "number", "recipient", "to", "status", "attempts", "insight", "sent_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(ReturnRequest)
class ReturnRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Device returns, read-only for support staff: they open and close through the services
    (an automation's action, a check-in, a reactivation)."""

    list_display = [
        "asset",
        "member",
        "requested_at",
        "reminders_sent",
        "next_reminder_at",
        "escalated_at",
        "closed_at",
        "closed_reason",
    ]
    list_select_related = ["asset", "member"]
    list_filter = ["closed_reason", ("closed_at", admin.EmptyFieldListFilter)]
    search_fields = ["asset__asset_tag", "member__full_name", "member__email"]
    show_full_result_count = False
    date_hierarchy = None
    inlines = [ReturnMailInline]
    readonly_fields = [f.name for f in ReturnRequest._meta.fields]
