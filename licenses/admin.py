"""Django admin for licenses and entitlements, for support staff.

License writes go through `licenses.services`. Entitlements are history: they are given in the
portal and revoked (never deleted) with the "Revoke" action, which calls license_unentitle.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from assetsonar.admin_mixins import ReadOnlyAdminMixin
from licenses.models import Entitlement, License
from licenses.selectors import licenses_with_seat_use
from licenses.services import EDITABLE_FIELDS, license_create, license_unentitle, license_update


class LicenseAdminForm(forms.ModelForm):
    class Meta:
        model = License
        fields = EDITABLE_FIELDS

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk:
            # license_update enforces both rules under a row lock; checking them here as well puts
            # the message on the field instead of failing the save after validation.
            used = self.instance.entitlements.live().count()
            seats = cleaned.get("seats")
            if seats is not None and seats < used:
                self.add_error(
                    "seats",
                    f"{used} seats are in use; revoke entitlements before going below {used}.",
                )
            if "kind" in self.changed_data and self.instance.entitlements.exists():
                self.add_error("kind", "The kind cannot change once the license has entitlements.")
        return cleaned


@admin.register(License)
class LicenseAdmin(admin.ModelAdmin):
    form = LicenseAdminForm
    list_display = ["name", "vendor", "kind", "seats_used", "seats", "expires_on", "cost"]
    list_filter = ["kind", ("expires_on", admin.DateFieldListFilter), "vendor"]
    search_fields = ["name", "vendor"]
    readonly_fields = ["seats_used", "entitlements_link", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "vendor", "kind", "notes"]}),
        ("Seats", {"fields": ["seats", "seats_used", "entitlements_link"]}),
        ("Contract", {"fields": ["expires_on", "cost"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]

    def get_queryset(self, request: HttpRequest):
        return licenses_with_seat_use(super().get_queryset(request))

    @admin.display(description="seats used", ordering="seats_used")
    def seats_used(self, obj: License) -> int | None:
        # The stored count; None on the add form's unsaved license.
        return obj.seats_used if obj.pk else None

    @admin.display(description="entitlements")
    def entitlements_link(self, obj: License) -> str:
        if obj.pk is None:
            return "-"
        url = reverse("admin:licenses_entitlement_changelist")
        return format_html('<a href="{}?license__id__exact={}">Show entitlements</a>', url, obj.pk)

    def save_model(self, request: HttpRequest, obj: License, form, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in EDITABLE_FIELDS if name in form.fields}
        if change:
            license_update(license=obj, actor=request.user, request=request, **fields)
        else:
            obj.pk = license_create(actor=request.user, request=request, **fields).pk
        obj.refresh_from_db()


class LiveFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "live"

    def lookups(self, request: HttpRequest, model_admin):
        return [("yes", "Live"), ("no", "Revoked")]

    def queryset(self, request: HttpRequest, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(revoked_at__isnull=self.value() == "yes")
        return queryset


@admin.register(Entitlement)
class EntitlementAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Entitlements are history: no add, change or delete here; revoke them with the action."""

    list_display = [
        "license",
        "target_kind",
        "member",
        "asset",
        "assigned_at",
        "revoked_at",
        "revoked_reason",
    ]
    list_select_related = ["license", "member", "asset"]
    list_filter = [LiveFilter, "license", "assigned_at"]
    search_fields = [
        "license__name",
        "member__full_name",
        "member__email",
        "asset__asset_tag",
        "asset__serial_number",
    ]
    show_full_result_count = False
    # Newest first by primary key: the model's -assigned_at has no index, and would sort every
    # entitlement for each page.
    ordering = ["-id"]
    actions = ["revoke_selected"]

    def get_queryset(self, request: HttpRequest):
        return (
            super()
            .get_queryset(request)
            .select_related("license", "member", "asset", "assigned_by", "revoked_by")
        )

    @admin.display(description="given to")
    def target_kind(self, obj: Entitlement) -> str:
        return Entitlement.Target(obj.target).label

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("licenses.change_entitlement")

    @admin.action(permissions=["revoke"], description="Revoke selected entitlements")
    def revoke_selected(self, request: HttpRequest, queryset) -> None:
        revoked = 0
        for pk in queryset.values_list("pk", flat=True):
            _, changed = license_unentitle(
                entitlement=pk,
                actor=request.user,
                reason="Revoked in the Django admin.",
                request=request,
            )
            revoked += changed
        self.message_user(
            request,
            f"Revoked {revoked} entitlement{'s' if revoked != 1 else ''}.",
            messages.SUCCESS if revoked else messages.INFO,
        )
