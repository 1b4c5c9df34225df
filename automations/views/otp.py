"""Enrolling an authenticator app for one-time passwords: the password first, then a QR code
(and the key as text), confirmed by a first code, then back to where the user came from (the
builder puts back what they had entered)."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from assetsonar.audit import audit_record
from assetsonar.http import safe_next
from assetsonar.models import AuditEvent
from automations import otp

# How long a password re-entry opens the enrolment page's secret for this session.
REAUTH_MAX_AGE = 10 * 60
REAUTH_KEY = "automations:otp_enroll_reauth"


def _reauthenticated(request: HttpRequest) -> bool:
    mark = request.session.get(REAUTH_KEY) or {}
    return (
        mark.get("user") == request.user.pk
        and 0 <= time.time() - mark.get("at", 0) <= REAUTH_MAX_AGE
    )


@require_http_methods(["GET", "POST"])
@login_required
def otp_enroll(request: HttpRequest) -> HttpResponse:
    """Step 1 asks for the password; only then step 2 shows the pending secret (QR code and key)
    and takes the first code. A borrowed or stolen session alone never sees the secret, so it
    cannot attach an authenticator to an MDM operator's account."""
    next_url = safe_next(
        request,
        request.POST.get("next") or request.GET.get("next"),
        reverse("automations:list"),
    )
    if otp.confirmed_device(request.user) is not None:
        messages.info(request, "Your authenticator app is already set up.")
        return redirect(next_url)
    context = {"next": next_url, "error": "", "issuer": settings.OTP_TOTP_ISSUER}
    if request.method == "POST" and "password" in request.POST:
        if not request.user.check_password(request.POST.get("password", "")):
            audit_record(
                action=AuditEvent.Action.OTP_FAILED,
                actor=request.user,
                message="Authenticator set-up refused: wrong password.",
                request=request,
            )
            context["reauth_error"] = (
                "Your password is not right. Enter the password you sign in with."
            )
            return render(request, "automations/otp_enroll.html", context)
        request.session[REAUTH_KEY] = {"user": request.user.pk, "at": time.time()}
        if "otp_token" not in request.POST:
            # Post/redirect/get: reloading the page with the secret does not resend the password.
            return redirect(f"{reverse('automations:otp_enroll')}?{urlencode({'next': next_url})}")
    if not _reauthenticated(request):
        if request.method == "POST":
            context["reauth_error"] = "Enter your password again to see the key."
        return render(request, "automations/otp_enroll.html", context)
    device = otp.pending_device(request.user)
    if request.method == "POST":
        result = otp.verify(
            user=request.user,
            token=request.POST.get("otp_token", ""),
            purpose="setting up an authenticator app",
            request=request,
            device=device,
        )
        if result.ok:
            otp.confirm_enrolment(user=request.user, device=result.device, request=request)
            request.session.pop(REAUTH_KEY, None)
            messages.success(
                request,
                "Authenticator app set up. Enter its next code to confirm the automation.",
            )
            return redirect(next_url)
        context["error"] = result.message
    context.update({"qr": otp.qr_data_uri(device), "secret": otp.secret_text(device)})
    return render(request, "automations/otp_enroll.html", context)
