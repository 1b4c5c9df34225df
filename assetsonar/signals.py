"""Receivers of the portal app, all listed here: audit rows for authentication events, and the
role sync after every migrate."""

from __future__ import annotations

from datetime import timedelta

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_migrate
from django.dispatch import receiver
from django.utils import timezone

from assetsonar.audit import audit_record, client_ip
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


@receiver(user_locked_out, dispatch_uid="audit_sign_in_locked_out")
def _audit_sign_in_locked_out(sender, request, username=None, **kwargs) -> None:
    # django-axes signals the lockout when it starts and again for every attempt while it lasts;
    # the audit log gets one row per lockout (the attempts are already "Sign-in failed" rows).
    username = str(username or "")[:150]
    minutes = int(settings.AXES_COOLOFF_TIME * 60)
    already = AuditEvent.objects.filter(
        action=AuditEvent.Action.SIGN_IN_LOCKED_OUT,
        actor_name=username,
        ip_address=client_ip(request),
        at__gte=timezone.now() - timedelta(minutes=minutes),
    )
    if already.exists():
        return
    audit_record(
        action=AuditEvent.Action.SIGN_IN_LOCKED_OUT,
        actor_name=username,
        message=f"Sign-in for user name “{username}” paused for {minutes} minutes after "
        f"{settings.AXES_FAILURE_LIMIT} failed attempts from this address.",
        request=request,
    )


@receiver(post_migrate, dispatch_uid="sync_roles_after_migrate")
def _sync_roles_after_migrate(sender, apps=None, using="default", **kwargs) -> None:
    # A migration that adds a model adds permissions the roles do not have yet (the authenticator
    # admin's, for Support Staff): every migrate re-syncs the roles. Once per migrate: post_migrate
    # is sent for every app, and sync_roles creates the permissions of all apps itself.
    # A flush (tests) sends it too, without the migration state: then the real models serve.
    from django.apps import apps as installed_apps
    from django.db import connections

    from assetsonar.roles import sync_roles

    if sender.label != "assetsonar":
        return
    tables = connections[using].introspection.table_names()
    if "auth_group" in tables and "auth_permission" in tables:
        sync_roles(apps or installed_apps)
