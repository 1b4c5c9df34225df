"""Pieces the apps' Django admin modules share."""

from __future__ import annotations

from django.http import HttpRequest


class ReadOnlyAdminMixin:
    """For rows that only services or the engine write (history, the audit log, executions):
    the admin shows them and never adds, changes or deletes them. Works for ModelAdmin and
    inlines alike (an inline's has_add_permission also gets `obj`)."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
