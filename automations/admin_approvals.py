"""Django admin for approval requests ("Require approval" steps): read-only, by decision.
Decisions are taken in the portal (the Approvals inbox), where the approver check and the
one-time password for device locks apply."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from assetsonar.admin_mixins import ReadOnlyAdminMixin
from automations.models import Approval


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "member",
        "automation",
        "status",
        "needs_mdm",
        "requested_at",
        "expires_at",
        "decided_by_name",
        "decided_at",
    )
    list_filter = ("status", "needs_mdm", "requested_at")
    list_select_related = ("member", "execution")
    search_fields = ("member__full_name", "execution__automation_name", "decided_by_name")
    date_hierarchy = "requested_at"
    fields = (
        "execution",
        "action",
        "log",
        "member",
        "approvers",
        "note",
        "status",
        "needs_mdm",
        "requested_at",
        "expires_at",
        "decided_by",
        "decided_by_name",
        "decided_at",
        "comment",
        "portal_link",
    )
    readonly_fields = ("portal_link",)

    @admin.display(description="Automation", ordering="execution__automation_name")
    def automation(self, obj: Approval) -> str:
        return obj.execution.automation_name

    @admin.display(description="In the portal")
    def portal_link(self, obj: Approval) -> str:
        return format_html('<a href="{}">Open the approval request</a>', obj.get_absolute_url())
