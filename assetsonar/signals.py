"""Audit receivers for authentication events. Every receiver of the portal app is listed here."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from assetsonar.audit import audit_record
from assetsonar.models import AuditEvent


@receiver(user_logged_in, dispatch_uid="audit_sign_in")
def _audit_sign_in(sender, request, user, **kwargs) -> None:
    audit_record(action=AuditEvent.Action.SIGN_IN, actor=user, request=request)


@receiver(user_logged_out, dispatch_uid="audit_sign_out")
def _audit_sign_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit_record(action=AuditEvent.Action.SIGN_OUT, actor=user, request=request)


@receiver(user_login_failed, dispatch_uid="audit_sign_in_failed")
def _audit_sign_in_failed(sender, credentials, request=None, **kwargs) -> None:
    # The password is never stored: only the user name that was tried.
    username = str(credentials.get("username", ""))[:150]
    audit_record(
        action=AuditEvent.Action.SIGN_IN_FAILED,
        actor_name=username,
        message=f"Failed sign-in for user name “{username}”.",
        request=request,
    )
