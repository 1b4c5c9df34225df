"""SCIM tokens in the Django admin: create (the secret is shown once, in the success message),
revoke, and the request log, read-only. Writes go through provisioning.services."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.template.response import TemplateResponse

from assetsonar.admin_mixins import ReadOnlyAdminMixin
from provisioning.models import ScimRequest, ScimToken
from provisioning.services import scim_token_create, scim_token_revoke


class ScimTokenAddForm(forms.ModelForm):
    class Meta:
        model = ScimToken
        fields = ["name", "read_only"]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if ScimToken.objects.filter(name__iexact=name).exists():
            raise forms.ValidationError("Another token already has this name.")
        return name


@admin.register(ScimToken)
class ScimTokenAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "scope",
        "prefix",
        "created_at",
        "last_used_at",
        "last_used_from",
        "revoked_at",
    ]
    list_filter = ["read_only", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    readonly_fields = [
        "name",
        "read_only",
        "prefix",
        "created_at",
        "created_by",
        "last_used_at",
        "last_used_from",
        "revoked_at",
        "revoked_by",
    ]
    actions = ["revoke"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ScimTokenAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        return ["name", "read_only"] if obj is None else self.readonly_fields

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # Nothing of a token changes after creation except through "Revoke".
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if change:
            return
        try:
            token, secret = scim_token_create(
                name=form.cleaned_data["name"],
                read_only=form.cleaned_data["read_only"],
                actor=request.user,
            )
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from exc
        obj.pk = token.pk
        request.scim_new_secret = secret

    def response_add(self, request, obj, post_url_continue=None):
        """Show the new token on this response only. Not as a message: messages are kept in a
        cookie or the session until shown, and the secret must not be stored anywhere."""
        secret = getattr(request, "scim_new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        response = TemplateResponse(
            request,
            "provisioning/admin_token_created.html",
            {
                **self.admin_site.each_context(request),
                "title": f"SCIM token “{obj.name}” created",
                "token": obj,
                "secret": secret,
                "opts": self.model._meta,
            },
            status=201,
        )
        response["Cache-Control"] = "no-store"
        return response

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # revoke instead: the request log stays attached

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke(self, request, queryset):
        for token in queryset:
            scim_token_revoke(token=token, actor=request.user)
        self.message_user(request, f"{queryset.count()} token(s) revoked.", messages.SUCCESS)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("provisioning.manage_provisioning")


@admin.register(ScimRequest)
class ScimRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["at", "token", "method", "path", "status", "scim_type", "member", "detail"]
    list_filter = ["status", "method", "token"]
    list_select_related = ["token", "member"]
    search_fields = ["path", "detail", "request_id"]
    date_hierarchy = "at"
