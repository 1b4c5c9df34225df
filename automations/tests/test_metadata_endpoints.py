"""Cloud metadata endpoints (assetsonar.net.METADATA_ADDRESSES) are refused as a webhook or MDM
destination with one message, when the URL is saved and again when it is used, even where the
allow-list opens every network."""

from __future__ import annotations

import socket

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from assets.mdm import MDMError, get_connector
from assets.models import MDMConnection
from assetsonar import net
from automations.models import ActionLog, Automation
from automations.tests.builder_factories import builder_data
from automations.tests.engine_factories import make_engine_automation, use_sync_q
from conftest import make_member
from members.services import member_deactivate

METADATA = ["168.63.129.16", "169.254.169.254", "100.100.100.200", "fd00:ec2::254"]
# Every network allowed: a metadata endpoint must be refused all the same.
ALLOW_ALL = ["0.0.0.0/0", "::/0"]


def message_for(address: str, host: str = "hooks.example.com") -> str:
    return (
        f"“{host}” resolves to {address}, a cloud metadata endpoint. Webhooks and MDM "
        "connections may never reach it."
    )


@pytest.fixture
def fake_dns(monkeypatch):
    """hooks.example.com and mdm.example.com resolve to what the test puts in the table."""
    table: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in table:
            a = table[host]
            family = socket.AF_INET6 if ":" in a else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (a, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


@pytest.mark.parametrize("address", METADATA)
def test_each_metadata_endpoint_is_refused_with_the_same_message_even_when_allow_listed(
    address, settings, fake_dns
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ALLOW_ALL
    fake_dns["hooks.example.com"] = address
    with pytest.raises(ValidationError) as refused:
        net.check_destination("https://hooks.example.com/leavers")
    assert refused.value.code == "metadata"
    assert refused.value.messages == [message_for(address)]


@pytest.mark.parametrize(
    "url",
    [
        "https://[::ffff:168.63.129.16]/",  # IPv4-mapped
        "https://[64:ff9b::a83f:8110]/",  # NAT64 of 168.63.129.16
        "https://[2002:a83f:8110::1]/",  # 6to4 of 168.63.129.16
        "https://[::a9fe:a9fe]/",  # IPv4-compatible 169.254.169.254
    ],
)
def test_metadata_endpoints_inside_ipv6_addresses_are_refused(url, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ALLOW_ALL
    with pytest.raises(ValidationError) as refused:
        net.check_destination(url)
    assert refused.value.code == "metadata"


def test_a_public_address_beside_the_wireserver_passes(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    assert net.check_destination("https://168.63.129.17/") == [
        net.ipaddress.ip_address("168.63.129.17")
    ]


# --- Webhooks: at save and at send ---------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("address", METADATA)
def test_the_builder_refuses_a_webhook_to_a_metadata_endpoint(
    address, manager_client, settings, fake_dns
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ALLOW_ALL
    fake_dns["hooks.example.com"] = address

    response = manager_client.post(
        reverse("automations:create"),
        builder_data(webhook={"url": "https://hooks.example.com/leavers"}),
    )

    assert response.status_code == 200
    assert message_for(address) in response.content.decode()
    assert not Automation.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("address", METADATA)
def test_a_webhook_rebound_to_a_metadata_endpoint_is_refused_at_send(
    address, monkeypatch, settings, fake_dns, django_capture_on_commit_callbacks
):
    use_sync_q(monkeypatch, settings)
    settings.OUTBOUND_ALLOWED_NETWORKS = ALLOW_ALL
    fake_dns["hooks.example.com"] = "93.184.216.34"
    make_engine_automation(webhook_url="https://hooks.example.com/leavers")
    fake_dns["hooks.example.com"] = address

    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=make_member(), actor=None, reason="Last day")

    log = ActionLog.objects.get(action_kind="webhook")
    assert log.status == ActionLog.Status.FAILED
    attempt = log.webhook_attempts.get()
    assert attempt.status_code is None
    assert attempt.error == "The URL was refused: " + message_for(address)


# --- MDM base URLs: at save and at send ----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("address", METADATA)
def test_the_mdm_connection_form_refuses_a_metadata_base_url(
    address, admin_client, settings, fake_dns
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ALLOW_ALL
    fake_dns["mdm.example.com"] = address

    response = admin_client.post(
        reverse("admin:assets_mdmconnection_add"),
        {
            "name": "Kandji prod",
            "provider": "kandji",
            "base_url": "https://mdm.example.com",
            "is_active": "on",
            "kandji_api_token": "t",
            "_save": "Save",
        },
    )

    errors = response.context["adminform"].form.errors["base_url"]
    assert errors == [message_for(address, host="mdm.example.com")]
    assert not MDMConnection.objects.exists()


@pytest.mark.parametrize("address", METADATA)
def test_an_mdm_base_url_rebound_to_a_metadata_endpoint_is_refused_at_send(
    address, settings, fake_dns
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ALLOW_ALL
    fake_dns["mdm.example.com"] = address
    conn = MDMConnection(name="Kandji prod", provider="kandji", base_url="https://mdm.example.com")
    conn.set_credentials({"api_token": "t"})

    with pytest.raises(MDMError) as error:
        get_connector(conn).lock_device(
            device_id="k-mac-1", platform="macos", pin="482913", message="Return", phone=""
        )

    assert error.value.kind == "permanent"
    assert error.value.message == (
        "The address of connection “Kandji prod” is refused: "
        + message_for(address, host="mdm.example.com")
    )
