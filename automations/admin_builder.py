"""Admin for automations, conditions and actions: read-only for everyone, superusers included.

Support staff look automations up here; every change goes through the builder, where the MDM
permission and the one-time password are checked and the history is written. So no action can
be added or changed here (the MDM lock above all), header values and signing secrets are never
shown, and a link leads to the builder.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from assetsonar.admin_mixins import ReadOnlyAdminMixin
from automations import selectors, triggers
from automations.models import Action, Automation, AutomationChange, Condition


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False


class ConditionInline(ReadOnlyInline):
    model = Condition
    fields = ["position", "field", "operator", "value"]
    readonly_fields = fields


class ActionInline(ReadOnlyInline):
    model = Action
    fields = ["position", "kind", "settings"]
    readonly_fields = fields

    @admin.display(description="Settings")
    def settings(self, obj: Action) -> str:
        kind = obj.kind_def
        text = kind.admin_text(obj) if kind else f"Unknown kind “{obj.kind}”"
        if not obj.continue_on_error:
            text += " · stops the remaining actions if it fails"
        if obj.is_delayed:
            text += f" · runs {obj.delay_label.removeprefix('after ')} after the trigger"
        return text


class AutomationChangeInline(ReadOnlyInline):
    model = AutomationChange
    fk_name = "automation"
    fields = ["at", "kind", "actor", "otp_verified", "diff"]
    readonly_fields = fields
    ordering = ["-at"]
    verbose_name = "history entry"
    verbose_name_plural = "history"


@admin.register(Automation)
class AutomationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "trigger_event", "enabled", "summary", "created_by", "created_at"]
    list_filter = ["enabled", "trigger_event"]
    search_fields = ["name", "description"]
    list_select_related = ["created_by"]
    readonly_fields = [
        "name",
        "description",
        "enabled",
        "trigger_module",
        "trigger_event",
        "when_it_fires",
        "match",
        "summary",
        "builder_link",
        "created_by",
        "created_at",
        "updated_by",
        "updated_at",
    ]
    fields = readonly_fields
    inlines = [ConditionInline, ActionInline, AutomationChangeInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("conditions", "actions")

    @admin.display(description="When it fires")
    def when_it_fires(self, obj: Automation) -> str:
        """The trigger's own settings ("2 days before their last working day, at 09:00 their
        time"), or when the event happens for a trigger without any."""
        event = triggers.get_event(obj.trigger_module, obj.trigger_event)
        if event is None:
            return obj.trigger_event
        if event.options is None:
            return f"When the member {event.summary}"
        return event.options.text(obj.trigger_options)

    @admin.display(description="What it does")
    def summary(self, obj: Automation) -> str:
        return selectors.summary_of(obj)

    @admin.display(description="Edit")
    def builder_link(self, obj: Automation) -> str:
        return format_html(
            '<a href="{}">Open in the builder</a> (changes are made there, with history, the MDM '
            "permission and the one-time password)",
            reverse("automations:detail", args=[obj.pk]),
        )


@admin.register(AutomationChange)
class AutomationChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["at", "automation_name", "kind", "actor", "otp_verified"]
    list_filter = ["kind", "otp_verified"]
    search_fields = ["automation_name"]
    list_select_related = ["actor"]
    readonly_fields = [
        "automation",
        "automation_name",
        "kind",
        "actor",
        "at",
        "diff",
        "otp_verified",
    ]
    fields = readonly_fields
