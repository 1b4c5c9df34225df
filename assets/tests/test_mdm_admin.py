"""MDM connections in the Django admin: write-only encrypted credentials, base URL checks and
the "Test connection" button (against a real fake Kandji / Jamf server)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from assets.forms_mdm import MDMConnectionForm
from assets.mdm.base import token_cache
from assets.models import MDMConnection
from assets.tests.mdm_servers import JamfServer, KandjiServer
from assetsonar.models import AuditEvent
from conftest import make_user

pytestmark = pytest.mark.django_db

SECRET = "kandji-token-7f3a"  # what KandjiServer accepts


@pytest.fixture(autouse=True)
def _fresh_token_cache():
    token_cache.clear()
    yield
    token_cache.clear()


@pytest.fixture
def kandji_server():
    with KandjiServer() as server:
        yield server


def add_url() -> str:
    return reverse("admin:assets_mdmconnection_add")


def change_url(connection: MDMConnection) -> str:
    return reverse("admin:assets_mdmconnection_change", args=[connection.pk])


def connection_test_url(connection: MDMConnection) -> str:
    return reverse("admin:assets_mdmconnection_test", args=[connection.pk])


def post_data(**fields) -> dict:
    data = {
        "name": "Kandji prod",
        "provider": "kandji",
        "base_url": "",
        "is_active": "on",
        "jamf_client_id": "",
        "jamf_client_secret": "",
        "intune_tenant_id": "",
        "intune_client_id": "",
        "intune_client_secret": "",
        "kandji_api_token": "",
        "_save": "Save",
    }
    data.update(fields)
    return data


@pytest.fixture
def kandji_connection(admin_client, kandji_server) -> MDMConnection:
    response = admin_client.post(
        add_url(), post_data(base_url=kandji_server.url + "/", kandji_api_token=SECRET)
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    return MDMConnection.objects.get(name="Kandji prod")


def test_credentials_are_stored_encrypted(kandji_connection):
    raw = MDMConnection.objects.values_list("credentials_encrypted", flat=True).get()

    assert SECRET not in raw
    assert kandji_connection.get_credentials() == {"api_token": SECRET}
    assert not kandji_connection.base_url.endswith("/")


def test_change_page_never_shows_the_credentials(admin_client, kandji_connection):
    response = admin_client.get(change_url(kandji_connection))

    page = response.content.decode()
    assert response.status_code == 200
    assert SECRET not in page
    assert 'name="kandji_api_token"' in page
    assert "Stored (encrypted). Leave blank to keep the current value." in page


def test_refused_form_does_not_echo_the_typed_secret(admin_client, kandji_server):
    response = admin_client.post(
        add_url(), post_data(base_url="http://169.254.169.254", kandji_api_token="typed-secret")
    )

    assert response.status_code == 200
    assert "typed-secret" not in response.content.decode()
    assert not MDMConnection.objects.exists()


def test_blank_keeps_the_stored_value_and_a_new_one_replaces_it(admin_client, kandji_connection):
    data = post_data(base_url=kandji_connection.base_url, name="Kandji HQ")
    assert admin_client.post(change_url(kandji_connection), data).status_code == 302
    kandji_connection.refresh_from_db()
    assert kandji_connection.name == "Kandji HQ"
    assert kandji_connection.get_credentials() == {"api_token": SECRET}

    data["kandji_api_token"] = "rotated-token-2"
    assert admin_client.post(change_url(kandji_connection), data).status_code == 302
    kandji_connection.refresh_from_db()
    assert kandji_connection.get_credentials() == {"api_token": "rotated-token-2"}


def test_credential_changes_are_audited_without_values(admin_client, kandji_connection):
    data = post_data(base_url=kandji_connection.base_url, kandji_api_token="rotated-token-2")
    admin_client.post(change_url(kandji_connection), data)

    created, changed = AuditEvent.objects.filter(object_type="assets.mdmconnection").order_by("id")
    assert created.action == AuditEvent.Action.CREATED
    assert changed.action == AuditEvent.Action.CHANGED
    assert changed.changes == {"credentials": ["(hidden)", "(changed)"]}
    everything = str(list(AuditEvent.objects.values()))
    assert SECRET not in everything and "rotated-token-2" not in everything


def test_switching_provider_asks_for_that_providers_credentials(admin_client, kandji_connection):
    with JamfServer() as jamf:
        data = post_data(provider="jamf", base_url=jamf.url)
        response = admin_client.post(change_url(kandji_connection), data)
        errors = response.context["adminform"].form.errors
        assert set(errors) == {"jamf_client_id", "jamf_client_secret"}

        data.update(jamf_client_id=jamf.client_id, jamf_client_secret=jamf.client_secret)
        assert admin_client.post(change_url(kandji_connection), data).status_code == 302

    kandji_connection.refresh_from_db()
    assert kandji_connection.get_credentials() == {
        "client_id": "jamf-client-1",
        "client_secret": "jamf-secret-Zq81",
    }


@pytest.mark.parametrize(
    "base_url",
    ["http://169.254.169.254", "http://10.0.0.8", "http://[::ffff:a9fe:a9fe]", "ftp://x.example"],
)
def test_private_metadata_and_odd_base_urls_are_refused(admin_client, base_url):
    response = admin_client.post(add_url(), post_data(base_url=base_url, kandji_api_token="t"))

    assert response.status_code == 200
    assert "base_url" in response.context["adminform"].form.errors
    assert not MDMConnection.objects.exists()


def test_loopback_base_url_is_refused_when_not_allow_listed(admin_client, settings, kandji_server):
    settings.OUTBOUND_ALLOWED_NETWORKS = []

    response = admin_client.post(
        add_url(), post_data(base_url=kandji_server.url, kandji_api_token="t")
    )

    errors = response.context["adminform"].form.errors["base_url"]
    assert "private, loopback, link-local or metadata" in errors[0]


def test_base_url_is_required_for_jamf_and_kandji_not_intune():
    form = MDMConnectionForm(data=post_data(kandji_api_token="t"))
    assert form.errors["base_url"] == ["Enter the base URL of your tenant."]

    form = MDMConnectionForm(
        data=post_data(
            provider="intune", intune_tenant_id="t", intune_client_id="c", intune_client_secret="s"
        )
    )
    assert form.is_valid(), form.errors
    assert form.credentials == {"tenant_id": "t", "client_id": "c", "client_secret": "s"}


def test_simulator_needs_no_credentials_or_base_url():
    form = MDMConnectionForm(data=post_data(provider="simulator", name="Demo MDM"))
    assert form.is_valid(), form.errors
    assert form.credentials == {}


# --- Test connection ------------------------------------------------------------------------------


def test_change_page_has_the_test_connection_button(admin_client, kandji_connection):
    page = admin_client.get(change_url(kandji_connection)).content.decode()

    assert f'action="{connection_test_url(kandji_connection)}"' in page
    assert "Test connection" in page


def test_test_connection_records_success(admin_client, kandji_connection, kandji_server):
    response = admin_client.post(connection_test_url(kandji_connection), follow=True)

    kandji_connection.refresh_from_db()
    assert kandji_connection.last_test_ok is True
    assert kandji_connection.last_tested_at is not None
    assert kandji_connection.last_test_message == "Connected to Kandji; the token can list devices."
    assert "Connection test succeeded" in response.content.decode()
    assert kandji_server.requests[-1].headers["authorization"] == f"Bearer {SECRET}"


def test_test_connection_records_a_failure_with_what_to_fix(
    admin_client, kandji_connection, kandji_server
):
    kandji_server.api_token = "the-token-was-revoked"

    response = admin_client.post(connection_test_url(kandji_connection), follow=True)

    kandji_connection.refresh_from_db()
    assert kandji_connection.last_test_ok is False
    assert kandji_connection.last_test_message == (
        "Kandji rejected the API token (HTTP 401): update the API token of connection "
        "“Kandji prod”."
    )
    assert "Connection test failed" in response.content.decode()
    assert SECRET not in response.content.decode()


def test_changelist_shows_the_last_test(admin_client, kandji_connection):
    admin_client.post(connection_test_url(kandji_connection))

    page = admin_client.get(reverse("admin:assets_mdmconnection_changelist")).content.decode()

    assert "OK: Connected to Kandji" in page
    assert SECRET not in page


def test_test_connection_is_post_only(admin_client, kandji_connection):
    assert admin_client.get(connection_test_url(kandji_connection)).status_code == 405


def test_test_connection_needs_the_change_permission(client, kandji_connection):
    staff = make_user("auditor", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_mdmconnection"))
    client.force_login(staff)

    assert client.get(change_url(kandji_connection)).status_code == 200
    assert (
        connection_test_url(kandji_connection)
        not in client.get(change_url(kandji_connection)).content.decode()
    )
    assert client.post(connection_test_url(kandji_connection)).status_code == 403
    kandji_connection.refresh_from_db()
    assert kandji_connection.last_tested_at is None
