"""Django admin for members, for support staff.

Every write goes through `members.services`, so the admin behaves exactly like the portal: the
same validation, the same audit rows, and the same deactivation trigger. Status never changes in
the change form; it changes through the deactivate and reactivate actions.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError, RestrictedError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from assets.models import CustodyRecord
from assetsonar.admin_mixins import ReadOnlyAdminMixin
from licenses.models import Entitlement
from members.models import Member
from members.selectors import member_search
from members.services import (
    EDITABLE_FIELDS,
    _check_manager,
    member_bulk_deactivate,
    member_create,
    member_delete,
    member_reactivate,
    member_update,
)

# Selected members listed by name on the confirmation page; the rest are counted.
PREVIEW_LIMIT = 2000
CONFIRMATION_LIST_LIMIT = 50


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    """History shown beside its member or asset; it is written by services only."""

    extra = 0
    can_delete = False
    show_change_link = True


class CustodyRecordInline(ReadOnlyInline):
    model = CustodyRecord
    fk_name = "member"
    fields = ["asset", "checked_out_at", "checked_out_by", "checked_in_at", "checked_in_by", "note"]
    readonly_fields = fields
    verbose_name_plural = "custody history"

    def get_queryset(self, request: HttpRequest):
        return (
            super().get_queryset(request).select_related("asset", "checked_out_by", "checked_in_by")
        )


class EntitlementInline(ReadOnlyInline):
    model = Entitlement
    fk_name = "member"
    fields = ["license", "asset", "assigned_at", "revoked_at", "revoked_reason"]
    readonly_fields = fields
    verbose_name_plural = "license entitlements"

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("license", "asset")


class MemberAdminForm(forms.ModelForm):
    class Meta:
        model = Member
        fields = EDITABLE_FIELDS

    def clean(self):
        cleaned = super().clean()
        manager = cleaned.get("manager")
        if self.instance.pk and manager is not None:
            # The same rule member_update applies, checked here so the form shows it on the field
            # instead of the save failing after validation.
            _check_manager(Member(pk=self.instance.pk, manager=manager))
        return cleaned


class DeactivateForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Kept in the audit log with each deactivation.",
    )


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    form = MemberAdminForm
    list_display = ["full_name", "email", "department", "location", "status", "deactivated_at"]
    list_filter = ["status", "employment_type", "department"]
    search_fields = ["full_name", "email", "=employee_id"]
    autocomplete_fields = ["manager"]
    show_full_result_count = False
    readonly_fields = [
        "status",
        "deactivated_at",
        "deactivated_by",
        "deactivation_reason",
        "deactivated_by_name",
        "external_id",
        "scim_user_name",
        "given_name",
        "family_name",
        "scim_hidden_at",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["full_name", "email", "employee_id", "title"]}),
        ("Organisation", {"fields": ["department", "location", "manager", "employment_type"]}),
        (
            "Offboarding",
            {
                "fields": [
                    "last_working_day",
                    "time_zone",
                    "deactivate_on_last_day",
                    "personal_email",
                ]
            },
        ),
        (
            "Status",
            {
                "fields": [
                    "status",
                    "deactivated_at",
                    "deactivated_by",
                    "deactivated_by_name",
                    "deactivation_reason",
                ],
                "description": "Changed with the “Deactivate” and “Reactivate” actions.",
            },
        ),
        (
            "Identity provider (SCIM)",
            {
                "fields": [
                    "scim_user_name",
                    "external_id",
                    "given_name",
                    "family_name",
                    "scim_hidden_at",
                ],
                "description": "Written by SCIM provisioning (Okta, Entra ID).",
                "classes": ["collapse"],
            },
        ),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]
    inlines = [CustodyRecordInline, EntitlementInline]
    actions = ["deactivate_selected", "reactivate_selected", "delete_selected"]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict:
        # A new member's option comes from the portal setting, as in the portal's form.
        from assetsonar.models import PortalSettings

        initial = super().get_changeform_initial_data(request)
        initial.setdefault(
            "deactivate_on_last_day", PortalSettings.load().deactivate_on_last_day_default
        )
        return initial

    def has_deactivate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("members.deactivate_member")

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        # The portal's search, also behind the manager autocomplete. Django's own would compare
        # UPPER(employee_id) for "=employee_id", which no index answers, so PostgreSQL would scan
        # every row for the whole OR instead of using the trigram indexes (~70 ms a query at 100k).
        # search_fields stays: it is what makes the admin show a search box.
        return member_search(queryset, search_term), False

    # --- Saving and deleting through the services ----------------------------------------------

    def save_model(self, request: HttpRequest, obj: Member, form, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in EDITABLE_FIELDS if name in form.fields}
        if change:
            # `obj` already carries the form's values; the service compares against the stored row.
            member_update(
                member=Member.objects.get(pk=obj.pk), actor=request.user, request=request, **fields
            )
        else:
            obj.pk = member_create(actor=request.user, request=request, **fields).pk
        obj.refresh_from_db()

    def get_deleted_objects(self, objs, request: HttpRequest):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        if protected:
            # Rows that protect a member (devices, custody, licenses) make member_delete refuse,
            # and it says why in words: let the user confirm and read that, rather than refusing
            # up front with a list of rows. Nothing is deleted, so no other permission is needed.
            return deleted, model_count, set(), []
        return deleted, model_count, perms_needed, protected

    def log_deletions(self, request: HttpRequest, queryset):
        # Written in _delete_members, for the members the service really deleted.
        return []

    def delete_model(self, request: HttpRequest, obj: Member) -> None:
        self._delete_members(request, [obj])

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        self._delete_members(request, queryset)

    def _delete_members(self, request: HttpRequest, members) -> int:
        deleted = 0
        for member in members:
            try:
                with transaction.atomic():
                    super().log_deletions(request, [member])
                    member_delete(member=member, actor=request.user, request=request)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
            except (ProtectedError, RestrictedError) as exc:
                # Rows of another app that still refer to the member (member_delete checks ours).
                kinds = sorted({obj._meta.verbose_name_plural for obj in exc.args[1]})
                self.message_user(
                    request,
                    f"{member} cannot be deleted: {', '.join(kinds)} still refer to them. "
                    "Deactivate the member instead.",
                    messages.ERROR,
                )
            else:
                deleted += 1
        return deleted

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id) -> HttpResponse:
        if Member.objects.filter(pk=obj_id).exists():  # refused; the reason is in the messages
            return redirect(reverse("admin:members_member_change", args=[obj_id]))
        return super().response_delete(request, obj_display, obj_id)

    # --- Actions ----------------------------------------------------------------------------------

    @admin.action(permissions=["deactivate"], description="Deactivate selected members")
    def deactivate_selected(self, request: HttpRequest, queryset):
        """Ask for a reason on a confirmation page, then deactivate through the service."""
        form = DeactivateForm(request.POST if request.POST.get("post") else None)
        if form.is_valid():
            selected = list(queryset.values_list("pk", flat=True))
            changed = member_bulk_deactivate(
                member_ids=selected,
                actor=request.user,
                reason=form.cleaned_data["reason"],
                request=request,
            )
            unchanged = len(selected) - changed
            self.message_user(
                request,
                f"Deactivated {changed} member{'s' if changed != 1 else ''}."
                + (f" {unchanged} already deactivated, left as they were." if unchanged else ""),
                messages.SUCCESS if changed else messages.INFO,
            )
            return None
        active = queryset.filter(status=Member.Status.ACTIVE)
        active_count = active.count()
        context = {
            **self.admin_site.each_context(request),
            "title": "Deactivate members",
            "subtitle": None,
            "opts": self.opts,
            "form": form,
            "active_count": active_count,
            "inactive_count": queryset.exclude(status=Member.Status.ACTIVE).count(),
            "listed": active.order_by("full_name", "id")[:CONFIRMATION_LIST_LIMIT],
            "more_count": max(0, active_count - CONFIRMATION_LIST_LIMIT),
            # Which automations will run for them is worked out for this many (3 queries, but
            # their rows are read: a select-across of the whole table is not read whole).
            "preview_ids": list(active.values_list("pk", flat=True)[:PREVIEW_LIMIT]),
            "preview_limit": PREVIEW_LIMIT,
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(
            request, "admin/members/member/deactivate_selected_confirmation.html", context
        )

    @admin.action(permissions=["deactivate"], description="Reactivate selected members")
    def reactivate_selected(self, request: HttpRequest, queryset) -> None:
        changed = 0
        for pk in queryset.values_list("pk", flat=True):
            _, did_change = member_reactivate(member=pk, actor=request.user, request=request)
            changed += did_change
        self.message_user(
            request,
            f"Reactivated {changed} member{'s' if changed != 1 else ''}.",
            messages.SUCCESS if changed else messages.INFO,
        )

    @admin.action(permissions=["delete"], description="Delete selected members")
    def delete_selected(self, request: HttpRequest, queryset):
        """Django's confirmation page, then each member through member_delete (which refuses
        members with devices, licenses or history, and says why)."""
        if not request.POST.get("post"):
            return django_delete_selected(self, request, queryset)
        deleted = self._delete_members(request, list(queryset))
        if deleted:
            self.message_user(
                request,
                f"Deleted {deleted} member{'s' if deleted != 1 else ''}.",
                messages.SUCCESS,
            )
        return None
