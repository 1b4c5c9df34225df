"""Outbound destination checks: loopback, private, link-local and metadata addresses (in all
their spellings) and names resolving to them are refused unless allow-listed, and the connection
goes to the address that was checked, whatever DNS says afterwards."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from django.core.exceptions import ValidationError

from assetsonar import net
from automations.models import ActionLog
from automations.tests.engine_factories import make_engine_automation, use_sync_q
from automations.tests.servers import WebhookReceiver
from conftest import make_member
from members.services import member_deactivate

METADATA_SPELLINGS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/",  # the address as one decimal number
    "http://0xA9FEA9FE/",  # hexadecimal
    "http://0251.0376.0251.0376/",  # octal parts
    "http://169.254.43518/",  # two-part form
    "http://[::ffff:169.254.169.254]/",  # IPv4-mapped IPv6
    "http://[::ffff:a9fe:a9fe]/",
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64
    "http://[::a9fe:a9fe]/",  # IPv4-compatible IPv6
    "http://[fe80::1]/",
]


@pytest.fixture
def no_allow_list(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []


@pytest.fixture
def fake_dns(monkeypatch):
    """Names resolved by a table (this machine has no DNS server to point at private hosts)."""
    table: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in table:
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port),
                )
                for a in table[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


@pytest.mark.parametrize("url", METADATA_SPELLINGS)
def test_metadata_and_link_local_spellings_are_refused(url, no_allow_list):
    with pytest.raises(ValidationError) as refused:
        net.check_destination(url)
    # The link-local address is "private"; every spelling of 169.254.169.254 is "metadata".
    assert refused.value.code == ("private" if "fe80" in url else "metadata")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/",
        "http://localhost/",
        "http://[::1]/",
        "http://10.0.0.5/",
        "http://172.16.3.4/",
        "http://192.168.1.10/",
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://0.0.0.0/",
        "http://224.0.0.1/",  # multicast
        "http://[fd00::1]/",
    ],
)
def test_loopback_private_and_special_addresses_are_refused(url, no_allow_list):
    with pytest.raises(ValidationError):
        net.check_destination(url)


def test_a_name_resolving_to_a_private_address_is_refused(fake_dns, no_allow_list):
    fake_dns["hooks.example.com"] = ["93.184.216.34", "10.0.0.7"]
    with pytest.raises(ValidationError) as refused:
        net.check_destination("https://hooks.example.com/leavers")
    assert "10.0.0.7" in refused.value.messages[0]


def test_a_public_name_passes_and_returns_the_checked_addresses(fake_dns, no_allow_list):
    fake_dns["hooks.example.com"] = ["93.184.216.34"]
    assert net.check_destination("https://hooks.example.com/leavers") == [
        ipaddress.ip_address("93.184.216.34")
    ]


def test_the_allow_list_opens_a_private_network(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    assert net.check_destination("https://10.20.1.2/") == [ipaddress.ip_address("10.20.1.2")]
    with pytest.raises(ValidationError):
        net.check_destination("https://10.21.1.2/")


def test_plain_http_and_credentials_in_the_url_are_refused(settings):
    settings.WEBHOOK_ALLOW_HTTP = False
    with pytest.raises(ValidationError, match="https"):
        net.check_destination("http://93.184.216.34/")
    with pytest.raises(ValidationError, match="credentials"):
        net.check_destination("https://user:pw@93.184.216.34/")


def test_the_connection_goes_to_the_checked_address_not_to_dns():
    """The session is pinned to 127.0.0.1 for a name that resolves nowhere (or, after a
    rebinding, elsewhere): the request still reaches the checked address, with its Host."""
    with WebhookReceiver() as receiver:
        url = f"http://rebind.invalid:{receiver.port}/hook"
        with net.pinned_session(url, ipaddress.ip_address("127.0.0.1")) as session:
            response = session.post(url, data=b"{}", timeout=(1, 1), allow_redirects=False)
        assert response.status_code == 200
        (request,) = receiver.requests
        assert request.headers["host"] == f"rebind.invalid:{receiver.port}"


def test_a_pinned_session_refuses_other_hosts():
    import requests

    with (
        net.pinned_session("http://a.invalid/", ipaddress.ip_address("127.0.0.1")) as session,
        pytest.raises(requests.exceptions.InvalidURL),
    ):
        session.get("http://b.invalid/", timeout=1)


@pytest.mark.django_db
def test_sending_rechecks_the_destination(
    monkeypatch, settings, fake_dns, django_capture_on_commit_callbacks
):
    """Saved while it resolved to a public address, rebound to the metadata address before the
    send: the send refuses it and nothing is retried."""
    use_sync_q(monkeypatch, settings)
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    fake_dns["hooks.example.com"] = ["169.254.169.254"]
    make_engine_automation(webhook_url="https://hooks.example.com/leavers")

    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=make_member(), actor=None, reason="Last day")

    log = ActionLog.objects.get(action_kind="webhook")
    assert log.status == ActionLog.Status.FAILED
    assert "169.254.169.254" in log.insight
    attempt = log.webhook_attempts.get()
    assert attempt.status_code is None
    assert attempt.error.startswith("The URL was refused")


@pytest.mark.django_db
def test_loopback_is_refused_at_send_time_unless_allow_listed(
    monkeypatch, settings, django_capture_on_commit_callbacks
):
    use_sync_q(monkeypatch, settings)
    with WebhookReceiver() as receiver:
        make_engine_automation(webhook_url=receiver.url())
        settings.OUTBOUND_ALLOWED_NETWORKS = []
        with django_capture_on_commit_callbacks(execute=True):
            member_deactivate(member=make_member(), actor=None, reason="Last day")
        assert receiver.requests == []
        assert ActionLog.objects.get().status == ActionLog.Status.FAILED

        settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
        with django_capture_on_commit_callbacks(execute=True):
            member_deactivate(member=make_member(), actor=None, reason="Last day")
        assert len(receiver.requests) == 1
