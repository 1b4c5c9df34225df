"""MDM connectors against real HTTP fakes of Jamf Pro, Intune (Entra + Graph) and Kandji."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from assets.mdm import LockResult, MDMError, get_connector
from assets.mdm.base import parse_retry_after, token_cache
from assets.models import MDMConnection
from assets.tests.mdm_servers import IntuneServer, JamfServer, KandjiServer


@pytest.fixture(autouse=True)
def _fresh_token_cache():
    token_cache.clear()
    yield
    token_cache.clear()


def connection(provider: str, base_url: str = "", credentials=None, **fields) -> MDMConnection:
    """An unsaved connection: the connectors need no database."""
    conn = MDMConnection(
        name=fields.pop("name", f"{provider.title()} prod"),
        provider=provider,
        base_url=base_url,
        **fields,
    )
    conn.set_credentials(credentials or {})
    return conn


@pytest.fixture
def jamf_server():
    with JamfServer() as server:
        yield server


@pytest.fixture
def intune_server(settings):
    with IntuneServer() as server:
        settings.MDM_INTUNE_LOGIN_URL = server.url
        yield server


@pytest.fixture
def kandji_server():
    with KandjiServer() as server:
        yield server


def jamf_connection(server: JamfServer, **fields) -> MDMConnection:
    return connection(
        "jamf",
        server.url,
        {"client_id": server.client_id, "client_secret": server.client_secret},
        **fields,
    )


def intune_connection(server: IntuneServer, **fields) -> MDMConnection:
    return connection(
        "intune",
        server.url,
        {
            "tenant_id": server.tenant_id,
            "client_id": server.client_id,
            "client_secret": server.client_secret,
        },
        **fields,
    )


def kandji_connection(server: KandjiServer, **fields) -> MDMConnection:
    return connection("kandji", server.url, {"api_token": server.api_token}, **fields)


def lock(conn: MDMConnection, device_id: str, platform: str = "macos", **kwargs) -> LockResult:
    args = {"pin": "482913", "message": "Return this laptop to IT", "phone": "+49 30 1234567"}
    args.update(kwargs)
    return get_connector(conn).lock_device(device_id=device_id, platform=platform, **args)


# --- Jamf Pro ------------------------------------------------------------------------------------


def test_jamf_lock_of_a_mac_gets_a_token_then_queues_device_lock_with_the_pin(jamf_server):
    result = lock(jamf_connection(jamf_server), "mgmt-mac-1")

    token_request, command_request = jamf_server.requests
    assert (token_request.method, token_request.path) == ("POST", "/api/oauth/token")
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert token_request.form == {
        "grant_type": "client_credentials",
        "client_id": "jamf-client-1",
        "client_secret": "jamf-secret-Zq81",
    }
    assert (command_request.method, command_request.path) == ("POST", "/api/v2/mdm/commands")
    assert command_request.headers["authorization"] == f"Bearer {next(iter(jamf_server.tokens))}"
    assert command_request.headers["content-type"] == "application/json"
    assert command_request.json == {
        "clientData": [{"managementId": "mgmt-mac-1"}],
        "commandData": {
            "commandType": "DEVICE_LOCK",
            "pin": "482913",
            "message": "Return this laptop to IT",
            "phoneNumber": "+49 30 1234567",
        },
    }
    assert jamf_server.problems == []
    assert result.status == "sent"
    assert result.pin is None and result.pin_sent is True
    assert result.command_id and result.command_id in result.raw
    assert len(result.raw) <= 1024


def test_jamf_lock_of_an_iphone_sends_no_pin(jamf_server):
    result = lock(jamf_connection(jamf_server), "mgmt-ios-1", platform="ios", phone="")

    assert jamf_server.requests[-1].json["commandData"] == {
        "commandType": "DEVICE_LOCK",
        "message": "Return this laptop to IT",
    }
    assert result.pin_sent is False
    assert jamf_server.problems == []


def test_jamf_token_is_reused_until_shortly_before_it_expires(jamf_server):
    conn = jamf_connection(jamf_server)
    lock(conn, "mgmt-mac-1")
    lock(conn, "mgmt-mac-1")
    assert len(jamf_server.requests_to("/api/oauth/token")) == 1

    token_cache.clear()
    jamf_server.expires_in = 30  # shorter than the safety margin: never cached
    lock(conn, "mgmt-mac-1")
    lock(conn, "mgmt-mac-1")
    assert len(jamf_server.requests_to("/api/oauth/token")) == 3


def test_jamf_revoked_cached_token_is_replaced_once(jamf_server):
    conn = jamf_connection(jamf_server)
    lock(conn, "mgmt-mac-1")
    jamf_server.revoke_tokens()

    result = lock(conn, "mgmt-mac-1")

    assert result.status == "sent"
    assert len(jamf_server.requests_to("/api/oauth/token")) == 2


def test_new_credentials_never_reuse_the_old_token(jamf_server):
    lock(jamf_connection(jamf_server), "mgmt-mac-1")
    rotated = connection(
        "jamf", jamf_server.url, {"client_id": "jamf-client-1", "client_secret": "rotated"}
    )
    with pytest.raises(MDMError) as error:
        lock(rotated, "mgmt-mac-1")
    assert error.value.kind == "auth"


def test_jamf_wrong_client_secret_is_an_auth_error_that_names_the_connection(jamf_server):
    conn = connection(
        "jamf", jamf_server.url, {"client_id": "jamf-client-1", "client_secret": "wrong"}
    )
    with pytest.raises(MDMError) as error:
        lock(conn, "mgmt-mac-1")

    assert error.value.kind == "auth"
    assert error.value.status_code == 401
    assert error.value.message == (
        "Jamf Pro rejected the API client ID or secret (HTTP 401): update the client ID and "
        "client secret of connection “Jamf prod”."
    )
    assert "wrong" not in str(error.value)


def test_jamf_unknown_device_is_not_found(jamf_server):
    with pytest.raises(MDMError) as error:
        lock(jamf_connection(jamf_server), "mgmt-gone")

    assert error.value.kind == "not_found"
    assert error.value.message == (
        "Device mgmt-gone was not found in Jamf Pro: check the asset's MDM device ID."
    )


def test_jamf_test_connection_reports_the_version(jamf_server):
    message = get_connector(jamf_connection(jamf_server)).test_connection()

    assert message == "Connected to Jamf Pro 11.14.0."
    assert [r.path for r in jamf_server.requests] == [
        "/api/oauth/token",
        "/api/v1/jamf-pro-version",
    ]


# --- Microsoft Intune ----------------------------------------------------------------------------


def test_intune_lock_gets_an_entra_token_then_posts_remote_lock_without_a_body(intune_server):
    result = lock(intune_connection(intune_server), "dev-win-1", platform="windows")

    token_request, lock_request = intune_server.requests
    assert token_request.path == f"/{intune_server.tenant_id}/oauth2/v2.0/token"
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert token_request.form == {
        "client_id": "intune-app-1",
        "client_secret": "intune-secret-Kp40",
        "scope": f"{intune_server.url}/.default",
        "grant_type": "client_credentials",
    }
    assert lock_request.method == "POST"
    assert lock_request.path == "/v1.0/deviceManagement/managedDevices/dev-win-1/remoteLock"
    assert lock_request.headers["authorization"].startswith("Bearer tok-")
    assert lock_request.body == b""
    assert intune_server.problems == []
    assert intune_server.locked == ["dev-win-1"]
    # remoteLock takes no PIN: the generated one is not used.
    assert result.pin is None and result.pin_sent is False
    assert result.status == "sent"
    assert result.command_id  # Graph's request-id, the reference for support


def test_intune_default_scope_is_microsoft_graph():
    conn = connection("intune", "", {"tenant_id": "t", "client_id": "c", "client_secret": "s"})
    form = get_connector(conn).token_form(conn.get_credentials())
    assert form["scope"] == "https://graph.microsoft.com/.default"


def test_intune_unknown_tenant_and_wrong_secret_are_auth_errors(intune_server):
    wrong_tenant = intune_connection(intune_server)
    wrong_tenant.set_credentials(
        {"tenant_id": "other", "client_id": "intune-app-1", "client_secret": "intune-secret-Kp40"}
    )
    with pytest.raises(MDMError) as error:
        lock(wrong_tenant, "dev-win-1")
    assert (error.value.kind, error.value.status_code) == ("auth", 400)
    assert "update the tenant ID, client ID and client secret of connection" in str(error.value)

    wrong_secret = intune_connection(intune_server)
    wrong_secret.set_credentials(
        {"tenant_id": intune_server.tenant_id, "client_id": "intune-app-1", "client_secret": "x"}
    )
    with pytest.raises(MDMError) as error:
        lock(wrong_secret, "dev-win-1")
    assert (error.value.kind, error.value.status_code) == ("auth", 401)


def test_intune_test_connection_lists_one_managed_device(intune_server):
    message = get_connector(intune_connection(intune_server)).test_connection()

    assert "Connected to Microsoft Graph" in message
    listing = intune_server.requests[-1]
    assert listing.path == "/v1.0/deviceManagement/managedDevices"
    assert listing.query == {"$top": ["1"], "$select": ["id"]}


# --- Kandji --------------------------------------------------------------------------------------


def test_kandji_lock_of_a_mac_returns_the_pin_kandji_generated(kandji_server):
    result = lock(kandji_connection(kandji_server), "k-mac-1")

    (request,) = kandji_server.requests
    assert (request.method, request.path) == ("POST", "/api/v1/devices/k-mac-1/action/lock")
    assert request.headers["authorization"] == "Bearer kandji-token-7f3a"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {"Message": "Return this laptop to IT", "PhoneNumber": "+49 30 1234567"}
    assert kandji_server.problems == []
    assert result.pin == kandji_server.pins["k-mac-1"]
    assert result.pin_sent is False  # Kandji makes its own PIN
    assert result.pin not in result.raw  # the excerpt is stored in plain text


def test_kandji_lock_of_an_iphone_has_no_pin(kandji_server):
    result = lock(kandji_connection(kandji_server), "k-iphone-1", platform="ios", message="")

    assert kandji_server.requests[-1].json == {"PhoneNumber": "+49 30 1234567"}
    assert result.pin is None


def test_kandji_lock_already_pending_reads_back_its_unlock_pin(kandji_server):
    conn = kandji_connection(kandji_server)
    first = lock(conn, "k-mac-1")

    again = lock(conn, "k-mac-1")

    assert again.pin == first.pin
    assert kandji_server.requests[-1].path == "/api/v1/devices/k-mac-1/secrets/unlockpin"


def test_kandji_rejected_token_says_which_connection_to_fix(kandji_server):
    conn = connection("kandji", kandji_server.url, {"api_token": "revoked"}, name="Kandji prod")
    with pytest.raises(MDMError) as error:
        lock(conn, "k-mac-1")

    assert error.value.kind == "auth"
    assert error.value.message == (
        "Kandji rejected the API token (HTTP 401): update the API token of connection "
        "“Kandji prod”."
    )


def test_kandji_test_connection_lists_devices(kandji_server):
    message = get_connector(kandji_connection(kandji_server)).test_connection()

    assert message == "Connected to Kandji; the token can list devices."
    assert kandji_server.requests[-1].query == {"limit": ["1"]}


# --- Every vendor: error classes -----------------------------------------------------------------

VENDORS = {
    "jamf": (JamfServer, jamf_connection, "mgmt-mac-1", "/api/v2/mdm/commands", "Jamf Pro"),
    "intune": (IntuneServer, intune_connection, "dev-win-1", "/remoteLock", "Microsoft Intune"),
    "kandji": (KandjiServer, kandji_connection, "k-mac-1", "/action/lock", "Kandji"),
}


@pytest.fixture(params=sorted(VENDORS))
def vendor(request, settings):
    server_class, make_connection, device_id, lock_path, label = VENDORS[request.param]
    settings.MDM_READ_TIMEOUT = 0.5
    with server_class() as server:
        settings.MDM_INTUNE_LOGIN_URL = server.url
        yield server, make_connection(server), device_id, lock_path, label


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_auth_errors_not_retried(vendor, status):
    server, conn, device_id, lock_path, label = vendor
    server.fail(status, path=lock_path, times=2)  # a 401 gets one fresh-token retry

    with pytest.raises(MDMError) as error:
        lock(conn, device_id)

    assert error.value.kind == "auth"
    assert error.value.status_code == status
    assert f"connection “{conn.name}”" in error.value.message
    assert label in error.value.message


def test_404_is_not_found_with_the_device_id(vendor):
    server, conn, device_id, lock_path, label = vendor
    server.fail(404, path=lock_path)

    with pytest.raises(MDMError) as error:
        lock(conn, device_id)

    assert error.value.kind == "not_found"
    assert error.value.message == (
        f"Device {device_id} was not found in {label}: check the asset's MDM device ID."
    )


def test_429_is_retryable_after_the_retry_after_delay(vendor):
    server, conn, device_id, lock_path, _label = vendor
    server.fail(429, retry_after="7", path=lock_path)

    with pytest.raises(MDMError) as error:
        lock(conn, device_id)

    assert (error.value.kind, error.value.status_code, error.value.retry_after) == (
        "retryable",
        429,
        7,
    )


def test_500_is_retryable(vendor):
    server, conn, device_id, lock_path, _label = vendor
    server.fail(500, path=lock_path)

    with pytest.raises(MDMError) as error:
        lock(conn, device_id)

    assert (error.value.kind, error.value.status_code) == ("retryable", 500)


def test_other_4xx_is_permanent(vendor):
    server, conn, device_id, lock_path, _label = vendor
    server.fail(422, path=lock_path)

    with pytest.raises(MDMError) as error:
        lock(conn, device_id)

    assert (error.value.kind, error.value.status_code) == ("permanent", 422)


def test_a_redirect_is_not_followed(vendor):
    server, conn, device_id, lock_path, _label = vendor
    server.fail(302, path=lock_path)

    with pytest.raises(MDMError) as error:
        lock(conn, device_id)

    assert error.value.kind == "permanent"
    assert "redirect" in error.value.message
    assert len([r for r in server.requests if lock_path in r.path]) == 1


def test_a_hanging_server_times_out_quickly_and_is_retryable(vendor):
    server, conn, device_id, lock_path, label = vendor
    server.hang(path=lock_path)

    started = time.monotonic()
    with pytest.raises(MDMError) as error:
        lock(conn, device_id)

    assert time.monotonic() - started < 3
    assert error.value.kind == "retryable"
    assert error.value.message == f"{label} did not answer within 0.5 s."


def test_a_dropped_connection_is_retryable(vendor):
    server, conn, device_id, lock_path, label = vendor
    server.drop(path=lock_path)

    with pytest.raises(MDMError) as error:
        lock(conn, device_id)

    assert error.value.kind == "retryable"
    assert error.value.message.startswith(f"The connection to {label} failed")


def test_a_server_that_is_down_is_retryable(vendor):
    server, conn, device_id, _lock_path, _label = vendor
    server.__exit__(None, None, None)

    with pytest.raises(MDMError) as error:
        lock(conn, device_id)

    assert error.value.kind == "retryable"


def test_token_endpoint_errors_are_classified_too(settings):
    with JamfServer() as server:
        server.fail(503, path="/api/oauth/token")
        with pytest.raises(MDMError) as error:
            lock(jamf_connection(server), "mgmt-mac-1")
    assert (error.value.kind, error.value.status_code) == ("retryable", 503)


# --- Destination checks (SSRF) -------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "http://169.254.169.254",
        "http://[::ffff:169.254.169.254]",
        "http://10.0.0.5",
        "http://192.168.1.20:8443",
    ],
)
def test_metadata_and_private_base_urls_are_refused_before_any_request(base_url):
    conn = connection("kandji", base_url, {"api_token": "t"})
    with pytest.raises(MDMError) as error:
        lock(conn, "k-mac-1")

    assert error.value.kind == "permanent"
    assert "is refused" in error.value.message


def test_loopback_is_refused_unless_allow_listed(kandji_server, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    with pytest.raises(MDMError) as error:
        lock(kandji_connection(kandji_server), "k-mac-1")

    assert "127.0.0.1" in error.value.message
    assert kandji_server.requests == []


def test_a_host_name_that_does_not_resolve_is_retryable():
    conn = connection("kandji", "https://mdm.example.invalid", {"api_token": "t"})
    with pytest.raises(MDMError) as error:
        lock(conn, "k-mac-1")

    assert error.value.kind == "retryable"
    assert "does not resolve" in error.value.message


# --- Connection state ----------------------------------------------------------------------------


def test_missing_credentials_are_an_auth_error():
    conn = connection("kandji", "https://acme.api.kandji.io")
    with pytest.raises(MDMError) as error:
        lock(conn, "k-mac-1")
    assert error.value.kind == "auth"
    assert "has no API token" in error.value.message


def test_an_inactive_connection_sends_nothing(kandji_server):
    with pytest.raises(MDMError) as error:
        lock(kandji_connection(kandji_server, is_active=False), "k-mac-1")
    assert error.value.kind == "permanent"
    assert kandji_server.requests == []


# --- Simulator -----------------------------------------------------------------------------------


def test_simulator_acknowledges_instantly():
    result = lock(connection("simulator"), "sim-1")
    assert result.status == "acknowledged"
    assert result.command_id.startswith("sim-")
    assert result.pin_sent is True


@pytest.mark.parametrize(
    ("device_id", "kind"),
    [
        ("fail-auth", "auth"),
        ("fail-notfound", "not_found"),
        ("fail-retry", "retryable"),
        ("fail-anything", "permanent"),
    ],
)
def test_simulator_fails_on_demand_for_the_demo(device_id, kind):
    with pytest.raises(MDMError) as error:
        lock(connection("simulator"), device_id)
    assert error.value.kind == kind


# --- Retry-After ---------------------------------------------------------------------------------


def test_retry_after_accepts_seconds_and_http_dates_and_is_capped():
    assert parse_retry_after("120") == 120
    assert parse_retry_after("999999") == 3600
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    assert 85 <= parse_retry_after(soon) <= 90
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
