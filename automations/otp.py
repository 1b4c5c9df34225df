"""One-time passwords (django-otp TOTP): verification for saves that add or change an MDM lock,
enrolment of an authenticator app, the form stash that survives enrolment, and the Django admin
sign-in form that asks staff with an authenticator for its code.

A code is verified with the device's `verify_token` in the request that needs it; a session that
was verified earlier is never enough. The window is at most one 30 s step either side of the
server's clock (tolerance 1, drift ignored), `last_t` refuses a code that was already used, and
django-otp's ThrottlingMixin doubles the wait after every wrong code. Devices are
`automations.models.AuthenticatorDevice`: django-otp's TOTP behaviour with the secret encrypted
at rest.
"""

from __future__ import annotations

import json
import math
import time
from base64 import b32encode
from dataclasses import dataclass
from typing import Any

import segno
from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.db import transaction
from django.http import QueryDict
from django.utils import timezone
from django_otp.oath import TOTP

from assetsonar import crypto
from assetsonar.audit import audit_record
from assetsonar.models import AuditEvent
from automations.models import AuthenticatorDevice

MAX_TOLERANCE = 1
STASH_KEY = "automations:otp_stash"
STASH_MAX_AGE = 15 * 60  # seconds a stashed form waits for its owner to finish enrolling
DEVICE_NAME = "Authenticator app"


def confirmed_device(user: Any) -> AuthenticatorDevice | None:
    """The user's confirmed TOTP device, if they have enrolled one."""
    if not getattr(user, "is_authenticated", False):
        return None
    return AuthenticatorDevice.objects.filter(user=user, confirmed=True).order_by("id").first()


def _wait_text(seconds: float) -> str:
    seconds = max(1, math.ceil(seconds))
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minutes"


@dataclass(frozen=True)
class OTPResult:
    ok: bool
    message: str = ""
    device: AuthenticatorDevice | None = None


def _was_already_used(device: AuthenticatorDevice, token: int) -> bool:
    """The code is right for the current window but its step was used before (last_t)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, 0)
    return totp.verify(token, MAX_TOLERANCE)


def verify(
    *,
    user: Any,
    token: str,
    purpose: str,
    request: Any = None,
    device: AuthenticatorDevice | None = None,
) -> OTPResult:
    """Check `token` against the user's confirmed device (or `device`, for enrolment) now.
    Writes OTP_VERIFIED or OTP_FAILED to the audit log; a failure is committed even though the
    caller saves nothing, so the throttle cannot be reset by a rollback."""
    token = (token or "").replace(" ", "").strip()
    if not token:
        return OTPResult(False, "Enter the 6-digit code from your authenticator app.")
    if not token.isdigit() or len(token) not in (6, 8):
        return OTPResult(False, "The code is the 6 digits your authenticator app shows.")
    with transaction.atomic():
        query = AuthenticatorDevice.objects.select_for_update()
        if device is not None:
            device = query.filter(pk=device.pk, user=user).first()
        else:
            device = query.filter(user=user, confirmed=True).order_by("id").first()
        if device is None:
            return OTPResult(False, "Set up an authenticator app first.")
        allowed, info = device.verify_is_allowed()
        if not allowed:
            message = "Too many wrong codes."
            locked_until = (info or {}).get("locked_until")
            if locked_until:
                wait = (locked_until - timezone.now()).total_seconds()
                message += f" Try again in {_wait_text(wait)}."
            else:
                message += " Try again later."
            failure = "throttled"
            ok = False
        else:
            # At most one step either side of our clock, whatever drift was learned before.
            device.tolerance = min(device.tolerance, MAX_TOLERANCE)
            device.drift = 0
            ok = device.verify_token(token)
            failure = ""
            message = ""
            if not ok:
                if _was_already_used(device, int(token)):
                    failure = "already used"
                    message = "That code was already used. Wait for your app to show the next one."
                else:
                    failure = "wrong code"
                    message = "That code is not right. Check your authenticator app and retry."
    audit_record(
        action=AuditEvent.Action.OTP_VERIFIED if ok else AuditEvent.Action.OTP_FAILED,
        actor=user,
        message=f"One-time password for {purpose}" + (f": {failure}." if failure else "."),
        request=request,
    )
    return OTPResult(ok, message, device if ok else None)


# --- Enrolment -----------------------------------------------------------------------------


def pending_device(user: Any) -> AuthenticatorDevice:
    """The unconfirmed device the enrolment page shows; the same one until it is confirmed,
    so reloading the page does not invalidate a QR code already scanned."""
    device = AuthenticatorDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    if device is None:
        device = AuthenticatorDevice.objects.create(
            user=user, name=DEVICE_NAME, confirmed=False, tolerance=MAX_TOLERANCE
        )
    return device


def qr_data_uri(device: AuthenticatorDevice) -> str:
    """The otpauth:// URL as an SVG QR code in a data: URI (the CSP allows data: images)."""
    return segno.make(device.config_url, error="m").svg_data_uri(scale=5, border=2)


def secret_text(device: AuthenticatorDevice) -> str:
    """The key in base32, in groups of four, for typing into an app by hand."""
    raw = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


@transaction.atomic
def confirm_enrolment(
    *, user: Any, device: AuthenticatorDevice, request: Any = None
) -> AuthenticatorDevice:
    """Mark a verified pending device confirmed; drop the user's other unconfirmed ones."""
    device.confirmed = True
    device.tolerance = min(device.tolerance, MAX_TOLERANCE)
    device.save()
    AuthenticatorDevice.objects.filter(user=user, confirmed=False).exclude(pk=device.pk).delete()
    audit_record(
        action=AuditEvent.Action.OTP_ENROLLED,
        actor=user,
        message="Authenticator app set up for one-time passwords.",
        request=request,
    )
    return device


# --- The form stash --------------------------------------------------------------------------

# What a user typed into the builder waits in their session (encrypted: header values can be
# secrets) while they enrol an authenticator, and is put back into the form afterwards.
_NOT_STASHED = {"csrfmiddlewaretoken", "otp_token"}


def stash_form(request: Any, data: QueryDict, *, path: str) -> None:
    payload = {
        "path": path,
        "at": time.time(),
        "data": [[k, v] for k, values in data.lists() if k not in _NOT_STASHED for v in values],
    }
    request.session[STASH_KEY] = crypto.encrypt(json.dumps(payload))


def pop_stash(request: Any, *, path: str) -> QueryDict | None:
    """The stashed form data for `path`, removed from the session; None if none or stale."""
    token = request.session.pop(STASH_KEY, None)
    if not token:
        return None
    try:
        payload = json.loads(crypto.decrypt(token))
    except (ValueError, TypeError):
        return None
    if payload.get("path") != path or time.time() - payload.get("at", 0) > STASH_MAX_AGE:
        return None
    data = QueryDict(mutable=True)
    for key, value in payload["data"]:
        data.appendlist(key, value)
    data._mutable = False
    return data


# --- Django admin sign-in ------------------------------------------------------------------


class OTPAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's sign-in form plus an authenticator code, required of staff who have set up
    an authenticator. On success the device is stored on the user, and django-otp's
    user_logged_in receiver marks the session verified (see `admin_has_permission`)."""

    otp_token = forms.CharField(
        label="Authenticator code",
        required=False,
        max_length=10,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "size": 8}
        ),
        help_text="Required if you have set up an authenticator app.",
    )

    def clean(self):
        cleaned = super().clean()
        user = self.get_user()
        if user is not None and confirmed_device(user) is not None:
            result = verify(
                user=user,
                token=cleaned.get("otp_token", ""),
                purpose="the Django admin sign-in",
                request=self.request,
            )
            if not result.ok:
                raise forms.ValidationError(result.message, code="otp")
            user.otp_device = result.device
        return cleaned


def admin_has_permission(site: Any, request: Any) -> bool:
    """The admin's own check, plus: staff with an authenticator must have signed in to the admin
    with its code (the portal's sign-in page does not ask for one)."""
    from django.contrib.admin import AdminSite

    if not AdminSite.has_permission(site, request):
        return False
    user = request.user
    if getattr(user, "is_verified", None) and user.is_verified():
        return True
    return confirmed_device(user) is None
