"""Portal-wide views: dashboard, sign-in, and the permission-refusal handler."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from assetsonar.audit import audit_record
from assetsonar.models import AuditEvent
from assetsonar.roles import has_portal_access, visible_sections
from assetsonar.selectors import dashboard_stats

# How many administrators the "no access yet" page names.
CONTACTS_SHOWN = 3


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    sections = visible_sections(request.user)
    if not sections:
        raise PermissionDenied("You have no role in the portal yet.")
    return render(request, "assetsonar/dashboard.html", dashboard_stats(sections=sections))


def access_contacts() -> list:
    """Whom a user without a role asks: the active superusers (they grant roles in the admin)."""
    return list(
        get_user_model()
        .objects.filter(is_active=True, is_superuser=True)
        .order_by("last_name", "first_name", "username")
        .only("username", "first_name", "last_name", "email")[:CONTACTS_SHOWN]
    )


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler403: every refusal is written to the audit log, then a friendly page is shown. A
    signed-in user with no role gets one page wherever they go: no access yet, and whom to ask."""
    user = getattr(request, "user", None)
    reason = str(exception) if exception and str(exception) else ""
    audit_record(
        action=AuditEvent.Action.PERMISSION_DENIED,
        actor=user,
        message=f"{request.method} {request.path}" + (f": {reason}" if reason else ""),
        request=request,
    )
    if user is not None and user.is_authenticated and not has_portal_access(user):
        return render(request, "no_access.html", {"contacts": access_contacts()}, status=403)
    return render(request, "403.html", {"reason": reason}, status=403)
