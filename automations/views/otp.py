"""Enrolling an authenticator app for one-time passwords: a QR code (and the key as text),
confirmed by a first code, then back to where the user came from (the builder puts back what
they had entered)."""

from __future__ import annotations

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


@require_http_methods(["GET", "POST"])
@login_required
def otp_enroll(request: HttpRequest) -> HttpResponse:
    next_url = safe_next(
        request,
        request.POST.get("next") or request.GET.get("next"),
        reverse("automations:list"),
    )
    if otp.confirmed_device(request.user) is not None:
        messages.info(request, "Your authenticator app is already set up.")
        return redirect(next_url)
    device = otp.pending_device(request.user)
    error = ""
    if request.method == "POST" and not request.user.check_password(
        request.POST.get("password", "")
    ):
        # Re-authentication: a borrowed or stolen session alone must not be able to attach an
        # attacker's authenticator to an MDM operator's account.
        audit_record(
            action=AuditEvent.Action.OTP_FAILED,
            actor=request.user,
            message="Authenticator set-up refused: wrong password.",
            request=request,
        )
        error = "Your password is not right. Enter the password you sign in with."
    elif request.method == "POST":
        result = otp.verify(
            user=request.user,
            token=request.POST.get("otp_token", ""),
            purpose="setting up an authenticator app",
            request=request,
            device=device,
        )
        if result.ok:
            otp.confirm_enrolment(user=request.user, device=result.device, request=request)
            messages.success(
                request,
                "Authenticator app set up. Enter its next code to confirm the automation.",
            )
            return redirect(next_url)
        error = result.message
    return render(
        request,
        "automations/otp_enroll.html",
        {
            "qr": otp.qr_data_uri(device),
            "secret": otp.secret_text(device),
            "next": next_url,
            "error": error,
            "issuer": settings.OTP_TOTP_ISSUER,
        },
        status=200,
    )
