"""An asset's audit trail (issue 7, item 4): a PIN reveal reads as one sentence, and a value
recorded on its own is shown whole, never diffed character by character ("connection: D → e")."""

from __future__ import annotations

import pytest
from django.urls import reverse

from assets.tests.test_mdm_pin_and_panel import locked_asset, make_lock  # noqa: F401
from assetsonar.audit import audit_record
from assetsonar.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_a_pin_reveal_reads_as_one_entry_on_the_asset(
    client,
    mdm_operator,
    locked_asset,  # noqa: F811
):
    command = make_lock(locked_asset)
    client.force_login(mdm_operator)
    client.post(reverse("automations:mdm_command_pin", args=[command.pk]))

    page = client.get(locked_asset.get_absolute_url()).content.decode()

    assert "Unlock PIN viewed" in page
    assert f"Unlock PIN of AT-MDM-1 viewed (MDM command #{command.pk}, Jamf HQ)." in page
    assert "→ e" not in page and "connection:" not in page
    assert "482913" not in page


def test_a_value_recorded_on_its_own_is_shown_whole(
    manager_client,
    locked_asset,  # noqa: F811
):
    # As main recorded PIN reveals: strings, not [before, after] pairs.
    audit_record(
        action=AuditEvent.Action.PIN_VIEWED,
        obj=locked_asset,
        changes={"mdm_command": 7, "connection": "Demo MDM"},
        message="Unlock PIN viewed",
    )
    audit_record(
        action=AuditEvent.Action.CHANGED, obj=locked_asset, changes={"name": ["Old", "New"]}
    )

    page = manager_client.get(locked_asset.get_absolute_url()).content.decode()

    assert "connection: Demo MDM" in page
    assert "mdm_command: 7" in page
    assert "D → e" not in page
    assert "name: Old → New" in page


def test_change_rows_tell_changes_from_values():
    event = AuditEvent(changes={"name": ["a", "b"], "connection": "Demo", "n": 3})

    assert event.change_rows == [
        ("name", "a", "b", True),
        ("connection", "Demo", None, False),
        ("n", 3, None, False),
    ]
