"""Outbound destination checks (SSRF guard) for webhooks and MDM base URLs.

`check_destination(url)` is called when a URL is saved and again when it is used: every address
the host resolves to must be global (not loopback, private, link-local, shared, multicast,
reserved, or cloud metadata), unless it is inside OUTBOUND_ALLOWED_NETWORKS. It returns the
checked addresses so the sender can connect to exactly those (no DNS rebinding between check and
connect).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n, strict=False) for n in settings.OUTBOUND_ALLOWED_NETWORKS]


def address_is_allowed(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if any(address in network for network in _allowed_networks()):
        return True
    return address.is_global and not address.is_multicast


def check_destination(url: str, *, allow_http: bool | None = None) -> list[IPAddress]:
    """Validate scheme and host of `url`; return the resolved, allowed addresses."""
    parts = urlsplit(url)
    allow_http = settings.WEBHOOK_ALLOW_HTTP if allow_http is None else allow_http
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not allow_http):
        raise ValidationError("Use an https:// URL.", code="scheme")
    host = parts.hostname
    if not host:
        raise ValidationError("The URL has no host name.", code="host")
    if parts.username or parts.password:
        raise ValidationError("Put credentials in a header, not in the URL.", code="userinfo")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValidationError("The URL's port is not a number.", code="port") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise ValidationError(f"The host name “{host}” does not resolve.", code="dns") from None
    addresses = list(
        dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos)
    )
    refused = [a for a in addresses if not address_is_allowed(a)]
    if refused:
        raise ValidationError(
            f"“{host}” resolves to {refused[0]}, a private, loopback, link-local or metadata "
            "address. Only public addresses are allowed (an administrator can allow a private "
            "network with OUTBOUND_ALLOWED_NETWORKS).",
            code="private",
        )
    return addresses
