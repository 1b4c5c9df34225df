"""Admin for events, executions, action logs, webhook attempts and MDM commands (read-only).

Support staff use these pages to answer "what happened to this leaver?": everything is filterable
by status, action kind and date and searchable by member and automation. Nothing can be added,
changed or deleted here (the engine owns these rows), and an MDM command's unlock PIN is never
shown: viewing it is a separate, audited permission in the portal.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from assets.models import MDMCommand
from assetsonar.admin_mixins import ReadOnlyAdminMixin
from automations.models import (
    ActionLog,
    Event,
    Execution,
    WebhookAttempt,
    action_order_key,
)

MEMBER_SEARCH = ("member__full_name", "member__email")


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("occurred_at", "kind", "member", "status", "attempts", "processed_at")
    list_filter = ("kind", "status", "occurred_at")
    list_select_related = ("member",)
    search_fields = (*MEMBER_SEARCH, "=id")
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    fields = (
        "id",
        "kind",
        "member",
        "occurred_at",
        "actor",
        "status",
        "attempts",
        "last_dispatched_at",
        "processed_at",
        "last_error",
        "member_snapshot",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("member", "actor")


class ActionLogInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ActionLog
    extra = 0
    can_delete = False
    show_change_link = True
    # Targets are shown by their stored label, not by their foreign keys: no query per row.
    fields = (
        "action_kind",
        "target_type",
        "target_label",
        "status",
        "attempts",
        "next_attempt_at",
        "insight",
        "finished_at",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        # The builder's order of actions (revoke → lock → webhook), as on the execution's page.
        return super().get_queryset(request).order_by(*action_order_key(), "id")


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "automation_name",
        "member",
        "status",
        "created_at",
        "started_at",
        "finished_at",
    )
    list_display_links = ("id", "automation_name")
    list_filter = ("status", ("automation", admin.RelatedOnlyFieldListFilter), "created_at")
    list_select_related = ("member",)
    search_fields = (*MEMBER_SEARCH, "automation_name")
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = (
        "automation",
        "automation_name",
        "event",
        "member",
        "status",
        "insight",
        "created_at",
        "started_at",
        "finished_at",
        "portal_link",
    )
    readonly_fields = ("portal_link",)
    inlines = (ActionLogInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("member", "automation", "event")

    @admin.display(description="In the portal")
    def portal_link(self, obj: Execution) -> str:
        return format_html('<a href="{}">Open the execution log</a>', obj.get_absolute_url())


@admin.register(ActionLog)
class ActionLogAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "execution_link",
        "member",
        "action_kind",
        "target_label",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
    )
    list_filter = ("status", "action_kind", "target_type", "created_at")
    list_select_related = ("execution", "execution__member")
    search_fields = (
        "execution__member__full_name",
        "execution__member__email",
        "execution__automation_name",
        "target_label",
        "=key",
    )
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = (
        "key",
        "execution",
        "action",
        "action_kind",
        "target_type",
        "target_label",
        "entitlement",
        "asset",
        "status",
        "insight",
        "attempts",
        "next_attempt_at",
        "due_at",
        "created_at",
        "finished_at",
        "detail",
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related(
                "execution",
                "execution__member",
                "action",
                "entitlement__license",
                "entitlement__member",
                "entitlement__asset",
                "asset",
            )
        )

    @admin.display(description="Execution", ordering="execution")
    def execution_link(self, obj: ActionLog) -> str:
        url = reverse("admin:automations_execution_change", args=[obj.execution_id])
        return format_html(
            '<a href="{}">#{} {}</a>', url, obj.execution_id, obj.execution.automation_name
        )

    @admin.display(description="Member", ordering="execution__member__full_name")
    def member(self, obj: ActionLog) -> str:
        return str(obj.execution.member)


@admin.register(WebhookAttempt)
class WebhookAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "log", "number", "at", "status_code", "duration_ms", "error")
    list_filter = ("status_code", "at")
    list_select_related = ("log",)
    search_fields = (
        "log__execution__member__full_name",
        "log__execution__member__email",
        "log__execution__automation_name",
        "url",
    )
    date_hierarchy = "at"
    show_full_result_count = False
    fields = (
        "log",
        "number",
        "at",
        "url",
        "status_code",
        "duration_ms",
        "error",
        "request_headers",
        "response_headers",
        "response_excerpt",
    )


@admin.register(MDMCommand)
class MDMCommandAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "asset",
        "connection",
        "kind",
        "status",
        "vendor_command_id",
        "sent_at",
        "created_at",
    )
    list_filter = ("status", "kind", ("connection", admin.RelatedOnlyFieldListFilter), "created_at")
    list_select_related = ("asset", "connection")
    search_fields = (
        "asset__asset_tag",
        "asset__serial_number",
        "asset__custodian__full_name",
        "asset__custodian__email",
        "vendor_command_id",
    )
    date_hierarchy = "created_at"
    show_full_result_count = False
    # `pin_encrypted` is deliberately absent: the PIN is only shown in the portal, to users with
    # the view_unlock_pin permission, and every viewing is audited.
    fields = (
        "asset",
        "connection",
        "log",
        "kind",
        "status",
        "vendor_command_id",
        "message",
        "phone",
        "created_at",
        "sent_at",
        "last_error",
        "response_excerpt",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("asset", "connection", "log")
