"""Portal-wide views: dashboard, sign-in, and the permission-refusal handler."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from assetsonar.audit import audit_record
from assetsonar.models import AuditEvent
from assetsonar.selectors import dashboard_stats


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "assetsonar/dashboard.html", dashboard_stats())


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler403: every refusal is written to the audit log, then a friendly page is shown."""
    user = getattr(request, "user", None)
    reason = str(exception) if exception and str(exception) else ""
    audit_record(
        action=AuditEvent.Action.PERMISSION_DENIED,
        actor=user,
        message=f"{request.method} {request.path}" + (f": {reason}" if reason else ""),
        request=request,
    )
    return render(request, "403.html", {"reason": reason}, status=403)
