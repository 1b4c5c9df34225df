"""The vendors' read APIs the engine reconciles with before sending a lock again (Jamf Pro's MDM
command list, Graph's deviceActionResults, Kandji's device commands and unlock PIN), and the
token rules: a 401 is retried with a fresh token only when the refused token was a cached one.
The vendors are the fake servers of mdm_servers.py (real HTTP on 127.0.0.1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from assets.mdm import MDMError, get_connector
from assets.mdm.base import token_cache
from assets.tests.mdm_servers import IntuneServer, JamfServer, KandjiServer
from assets.tests.test_mdm_connectors import (
    intune_connection,
    jamf_connection,
    kandji_connection,
    lock,
)


@pytest.fixture(autouse=True)
def _fresh_token_cache():
    token_cache.clear()
    yield
    token_cache.clear()


@pytest.fixture
def jamf():
    with JamfServer() as server:
        yield server


@pytest.fixture
def intune(settings):
    with IntuneServer() as server:
        settings.MDM_INTUNE_LOGIN_URL = server.url
        yield server


@pytest.fixture
def kandji():
    with KandjiServer() as server:
        yield server


def a_minute_ago() -> datetime:
    return datetime.now(UTC) - timedelta(minutes=1)


def find(conn, device_id: str, platform: str = "macos", since: datetime | None = None):
    return get_connector(conn).find_lock(
        device_id=device_id, platform=platform, since=since or a_minute_ago()
    )


# --- Jamf Pro ------------------------------------------------------------------------------------


def test_jamf_lists_the_lock_it_accepted_filtered_by_device_command_and_date(jamf):
    conn = jamf_connection(jamf)
    assert find(conn, "mgmt-mac-1") is None  # provably absent
    sent = lock(conn, "mgmt-mac-1")

    found = find(conn, "mgmt-mac-1")

    assert (found.command_id, found.status, found.pin) == (sent.command_id, "sent", None)
    assert found.sent_at >= a_minute_ago()
    query = jamf.requests_to("/api/v2/mdm/commands", "GET")[-1]
    assert query.query["filter"][0].startswith(
        "clientManagementId==mgmt-mac-1;command==DEVICE_LOCK;dateSent=ge="
    )
    assert find(conn, "mgmt-ios-1") is None  # another device's lock is not this one's
    assert find(conn, "mgmt-mac-1", since=datetime.now(UTC) + timedelta(minutes=1)) is None
    assert jamf.problems == []


def test_jamf_command_list_refused_is_an_error_not_an_absence(jamf):
    jamf.fail(403, path="/api/v2/mdm/commands", method="GET")
    with pytest.raises(MDMError) as error:
        find(jamf_connection(jamf), "mgmt-mac-1")
    assert error.value.kind == "auth"


def test_jamf_fresh_token_refused_is_not_fetched_again(jamf):
    conn = jamf_connection(jamf)
    jamf.fail(401, path="/api/v2/mdm/commands", method="POST")

    with pytest.raises(MDMError) as error:
        lock(conn, "mgmt-mac-1")

    assert error.value.kind == "auth"
    assert len(jamf.requests_to("/api/oauth/token")) == 1
    assert len(jamf.requests_to("/api/v2/mdm/commands", "POST")) == 1  # no second lock


def test_jamf_cached_token_refused_is_replaced_once(jamf):
    conn = jamf_connection(jamf)
    lock(conn, "mgmt-ios-1", platform="ios")
    jamf.fail(401, path="/api/v2/mdm/commands", method="POST")

    lock(conn, "mgmt-mac-1")

    assert len(jamf.requests_to("/api/oauth/token")) == 2
    assert len(jamf.requests_to("/api/v2/mdm/commands", "POST")) == 3


# --- Intune --------------------------------------------------------------------------------------


def test_intune_device_action_results_show_the_remote_lock(intune):
    conn = intune_connection(intune)
    assert find(conn, "dev-win-1", "windows") is None
    lock(conn, "dev-win-1", platform="windows")

    found = find(conn, "dev-win-1", "windows")

    assert found.status == "sent" and found.pin is None
    assert found.sent_at >= a_minute_ago()
    read = intune.requests[-1]
    assert (read.method, read.path) == ("GET", "/v1.0/deviceManagement/managedDevices/dev-win-1")
    assert read.query["$select"] == ["id,deviceActionResults"]
    intune.actions["dev-win-1"][0]["actionState"] = "failed"
    assert find(conn, "dev-win-1", "windows") is None  # a failed lock is not on the device
    assert intune.problems == []


def test_intune_fresh_token_refused_is_not_fetched_again(intune):
    conn = intune_connection(intune)
    intune.fail(401, path="/remoteLock")

    with pytest.raises(MDMError):
        lock(conn, "dev-win-1", platform="windows")

    assert len(intune.requests_to(f"/{intune.tenant_id}/oauth2/v2.0/token")) == 1
    assert len(intune.locked) == 0
    assert len([r for r in intune.requests if r.path.endswith("/remoteLock")]) == 1


def test_intune_cached_token_refused_is_replaced_once(intune):
    conn = intune_connection(intune)
    lock(conn, "dev-ios-1", platform="ios")
    intune.fail(401, path="/remoteLock")

    lock(conn, "dev-win-1", platform="windows")

    assert len(intune.requests_to(f"/{intune.tenant_id}/oauth2/v2.0/token")) == 2
    assert intune.locked == ["dev-ios-1", "dev-win-1"]


# --- Kandji --------------------------------------------------------------------------------------


def test_kandji_device_commands_show_the_lock_and_its_pin_is_read_back(kandji):
    conn = kandji_connection(kandji)
    assert find(conn, "k-mac-1") is None
    first = lock(conn, "k-mac-1")

    found = find(conn, "k-mac-1")

    assert found.pin == first.pin == kandji.pins["k-mac-1"]
    assert found.command_id == kandji.commands["k-mac-1"][0]["uuid"]
    assert [r.path for r in kandji.requests[-2:]] == [
        "/api/v1/devices/k-mac-1/commands",
        "/api/v1/devices/k-mac-1/secrets/unlockpin",
    ]
    assert kandji.locks == ["k-mac-1"]


def test_kandji_iphone_lock_found_without_reading_an_unlock_pin(kandji):
    conn = kandji_connection(kandji)
    lock(conn, "k-iphone-1", platform="ios")

    found = find(conn, "k-iphone-1", "ios")

    assert found is not None and found.pin is None
    assert not [r for r in kandji.requests if r.path.endswith("/unlockpin")]
    assert kandji.problems == []


def test_kandji_pending_iphone_lock_reads_no_unlock_pin(kandji):
    conn = kandji_connection(kandji)
    lock(conn, "k-iphone-1", platform="ios")

    again = lock(conn, "k-iphone-1", platform="ios")  # 400 "Command already running"

    assert again.pin is None
    assert not [r for r in kandji.requests if r.path.endswith("/unlockpin")]
    assert kandji.problems == []
