"""Unlock PINs of MDM lock commands: shown only to users allowed to see them, and every viewing
is written to the audit log."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from assets.models import MDMCommand
from assetsonar.audit import audit_record
from assetsonar.models import AuditEvent


@require_POST
@login_required
@never_cache
def mdm_command_pin(request: HttpRequest, pk: int) -> HttpResponse:
    """Reveal a command's unlock PIN once, in this response only (POST, never cached).

    htmx gets a dialog fragment; a plain POST gets a page. No PIN, no audit row.
    """
    if not request.user.has_perm("assets.view_unlock_pin"):
        raise PermissionDenied("Only MDM operators can see unlock PINs.")
    command = get_object_or_404(MDMCommand.objects.select_related("asset", "connection"), pk=pk)
    # A PIN kept for a lock that failed or was never sent is not on the device: not shown.
    pin = command.get_pin() if command.pin_on_device else ""
    if pin:
        with transaction.atomic():
            audit_record(
                action=AuditEvent.Action.PIN_VIEWED,
                actor=request.user,
                obj=command.asset,
                message=f"Unlock PIN of {command.asset.asset_tag} viewed "
                f"(MDM command #{command.pk}, {command.connection.name}).",
                request=request,
            )
    template = "automations/mdm_command_pin.html"
    if request.htmx:
        template += "#dialog"
    return render(request, template, {"command": command, "asset": command.asset, "pin": pin})
