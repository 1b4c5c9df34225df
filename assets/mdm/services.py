"""Writes for MDM connections: save (with encrypted credentials and an audit row) and test."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from assets.mdm import MDMError, get_connector
from assets.models import MDMConnection
from assetsonar.audit import audit_record, model_changes
from assetsonar.models import AuditEvent

AUDITED_FIELDS = ["name", "provider", "base_url", "is_active"]


def mdm_connection_save(
    *,
    connection: MDMConnection,
    credentials: dict[str, str] | None,
    actor: Any,
    request: Any = None,
) -> MDMConnection:
    """Save a new or changed connection; `credentials` (None = unchanged) are encrypted.

    The audit row says that the credentials changed, never what they are.
    """
    with transaction.atomic():
        created = connection.pk is None
        before: dict[str, Any] = {}
        old_credentials: dict[str, str] = {}
        if not created:
            stored = MDMConnection.objects.select_for_update().get(pk=connection.pk)
            before = {name: getattr(stored, name) for name in AUDITED_FIELDS}
            try:
                old_credentials = stored.get_credentials()
            except ValueError:
                old_credentials = {}
        credentials_changed = credentials is not None and credentials != old_credentials
        if credentials is not None:
            connection.set_credentials(credentials)
        connection.save()
        changes = {} if created else model_changes(connection, before, AUDITED_FIELDS)
        if credentials_changed:
            changes["credentials"] = ["(hidden)", "(changed)"]
        if created or changes:
            audit_record(
                action=AuditEvent.Action.CREATED if created else AuditEvent.Action.CHANGED,
                actor=actor,
                obj=connection,
                changes=changes,
                request=request,
            )
    return connection


def mdm_connection_test(*, connection: MDMConnection) -> tuple[bool, str]:
    """Call the vendor with the saved credentials and record the outcome on the connection.

    The network call runs outside any transaction; only the result is written.
    """
    try:
        ok, message = True, get_connector(connection).test_connection()
    except MDMError as error:
        ok, message = False, error.message
    connection.last_tested_at = timezone.now()
    connection.last_test_ok = ok
    connection.last_test_message = message[:500]
    connection.save(
        update_fields=["last_tested_at", "last_test_ok", "last_test_message", "updated_at"]
    )
    return ok, message
