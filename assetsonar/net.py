"""Outbound destination checks (SSRF guard) for webhooks and MDM base URLs.

`check_destination(url)` is called when a URL is saved and again when it is used: every address
the host resolves to must be global (not loopback, private, link-local, shared, multicast,
reserved), unless it is inside OUTBOUND_ALLOWED_NETWORKS; a cloud metadata endpoint
(METADATA_ADDRESSES below, the one list of them) is refused always, allow-list or not. It
returns the checked addresses so the sender can connect to exactly those (no DNS rebinding between
check and connect): `pinned_session(url, address)` is a requests session whose connections go
to the checked address while the Host header, TLS SNI and certificate checks keep the URL's host
name (the approach of requests-hardened's IPFilterAdapter, with our allow-list instead of its own).
`reused_session(url, address)` lends such a session for one request and keeps it, and its open
connection, for the next request to the same checked address (OUTBOUND_KEEPALIVE).
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges Python's `is_global` lets through but that lead back to IPv4 space we cannot check
# (NAT64 and 6to4 embed an IPv4 address the gateway connects to) or to carrier-grade NAT.
EXTRA_BLOCKED_NETWORKS = [
    ipaddress.ip_network(net)
    for net in (
        "64:ff9b::/96",  # NAT64 (64:ff9b::a9fe:a9fe is 169.254.169.254 behind a gateway)
        "64:ff9b:1::/48",  # local-use NAT64
        "2002::/16",  # 6to4
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "192.0.0.0/24",  # IETF protocol assignments
    )
]


# Cloud metadata endpoints: they hand out the instance's credentials, so no webhook or MDM base
# URL may reach them, whatever OUTBOUND_ALLOWED_NETWORKS says (an allow-listed 169.254.0.0/16 or
# a public-looking address such as Azure's WireServer must not open them). Also matched when
# embedded in an IPv6 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure IMDS, OpenStack, DigitalOcean, Oracle
        "168.63.129.16",  # Azure WireServer (public address space)
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS IMDS over IPv6
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to (mapped, compatible, NAT64 or 6to4), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address in _NAT64 or int(address) >> 32 == 0:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_metadata_address(address: IPAddress) -> bool:
    return address in METADATA_ADDRESSES or _embedded_ipv4(address) in METADATA_ADDRESSES


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n, strict=False) for n in settings.OUTBOUND_ALLOWED_NETWORKS]


def address_is_allowed(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if any(address in network for network in _allowed_networks()):
        return True
    if any(address in network for network in EXTRA_BLOCKED_NETWORKS):
        return False
    # is_reserved catches the IPv4-compatible IPv6 form (::a9fe:a9fe, inside ::/8), which
    # Python counts as global.
    return address.is_global and not address.is_multicast and not address.is_reserved


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
    metadata = [a for a in addresses if is_metadata_address(a)]
    if metadata:
        raise ValidationError(
            f"“{host}” resolves to {metadata[0]}, a cloud metadata endpoint. Webhooks and MDM "
            "connections may never reach it.",
            code="metadata",
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


class PinnedAddressAdapter(HTTPAdapter):
    """Connects to one already-checked address whatever DNS answers by the time of the connect.

    The URL keeps its host name, so the Host header, TLS SNI and certificate verification use
    the name; only the TCP connection goes to `address`. A request for any other scheme, host
    or port is refused (the adapter is mounted for both schemes), so a session cannot be reused
    for a destination that was not checked.

    A request sent on a kept connection (see reused_session) that the server closes without a
    byte of answer is sent once more on a new connection: the server closed that connection as
    it sat idle (its keep-alive timeout) while the request was on its way, which a new
    connection per request never met. A server that read the request and then died gets it
    twice, as it would from the engine's own retry a little later: webhook deliveries carry
    their webhook-id for the receiver to recognise a repeat, and a device lock is a state, not
    a count.
    """

    def __init__(self, *, url: str, address: IPAddress) -> None:
        super().__init__(max_retries=0)
        parts = urlsplit(url)
        self._destination = (parts.scheme, parts.hostname, parts.port)
        self._host = parts.hostname
        self._address = f"[{address}]" if address.version == 6 else str(address)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        parts = urlsplit(request.url)
        if (parts.scheme, parts.hostname, parts.port) != self._destination:
            raise requests.exceptions.InvalidURL("Request to a destination that was not checked.")
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        # The Host header names the URL's host, not the address connected to.
        request.headers = CaseInsensitiveDict(request.headers)
        request.headers["Host"] = parts.netloc
        if host_params["scheme"] == "https":
            pool_kwargs["assert_hostname"] = self._host
            pool_kwargs["server_hostname"] = self._host
        host_params["host"] = self._address
        return host_params, pool_kwargs

    def send(self, request, *args, **kwargs):
        kept = self._holds_open_connection()
        try:
            return super().send(request, *args, **kwargs)
        except requests.ConnectionError as exc:
            if not kept or isinstance(exc, requests.Timeout) or not _closed_unanswered(exc):
                raise
        self.close()  # every pooled connection: the next send connects anew
        return super().send(request, *args, **kwargs)

    def _holds_open_connection(self) -> bool:
        """Whether the next request goes out on a connection an earlier one left open."""
        pools = self.poolmanager.pools
        for key in list(pools.keys()):
            pool = pools.get(key)
            idle = getattr(getattr(pool, "pool", None), "queue", ())
            if any(getattr(conn, "sock", None) is not None for conn in list(idle)):
                return True
        return False


def _closed_unanswered(exc: BaseException) -> bool:
    """The connection was closed or reset before any answer arrived (not a timeout, a refused
    connect or a TLS failure)."""
    text = repr(exc)
    return any(
        name in text for name in ("RemoteDisconnected", "ConnectionResetError", "BrokenPipeError")
    )


def pinned_session(url: str, address: IPAddress) -> requests.Session:
    """A session for `url` that connects only to `address` (one of `check_destination(url)`)
    and ignores proxy settings from the environment (a proxy would connect somewhere else than
    what was checked). Callers pass allow_redirects=False (a redirect target was never checked)
    and close the session, or lend it with reused_session."""
    session = requests.Session()
    session.trust_env = False
    # No state carried from one request to the next (a session may be reused, see below).
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    adapter = PinnedAddressAdapter(url=url, address=address)
    session.mount("https://", adapter)  # both: the other scheme is refused, not sent unpinned
    session.mount("http://", adapter)
    return session


# --- Connections kept open between requests ------------------------------------------------------
#
# A burst of offboardings sends hundreds of requests to the same webhook receiver and MDM vendor.
# A new session per request pays for the session, its connection pool, a TCP connect and, over
# https, a TLS handshake every time, and waits one round trip for the connect and one for the
# handshake before the request leaves. bench/webhook_send.py --connections, 4 December: over
# https to a receiver 40 ms away, 128 ms and 5.0 ms of CPU per delivery on a new connection
# against 44 ms and 1.8 ms on a kept one; an MDM lock holds one of its connection's request
# slots for that long, so a burst of locks through one Jamf connection capped at 5 went at 98.0
# locks/s against 37.0 (2.65x).
#
# So a session is lent for one request and handed back; the next request to the same scheme,
# host, port and checked address (the destination is still checked before every request, and a
# different answer means a different session) takes it with its open connection. A session idle
# for OUTBOUND_KEEPALIVE seconds is no longer lent, and a reaper thread closes it within half
# that time again. The default, 4 s, is below the idle timeout of Apache, nginx's upstreams and
# Node (5 s), so a server seldom closes a connection we are about to reuse; urllib3 checks that
# a pooled connection is still open before using it, and the adapter above sends a request once
# more when a server closed the connection under it anyway (gunicorn closes after 2 s). A
# request that raised closes its session instead of handing it back (an HTTP error answer is an
# answer: its session is kept). Each session serves one request at a time (requests' sessions
# are not thread-safe); at most IDLE_PER_DESTINATION wait per destination. Not shared across
# fork (a worker process starts with none).

IDLE_PER_DESTINATION = 16
_idle: dict[tuple, list[tuple[float, requests.Session]]] = {}
_idle_lock = threading.Lock()
_reaper: threading.Thread | None = None


def _forget_idle_after_fork() -> None:
    # The parent's sockets are not ours: drop the references without closing (closing would
    # send nothing while the parent holds the descriptor, but reusing would interleave). Its
    # reaper thread did not come along either.
    global _idle_lock, _reaper
    _idle.clear()
    _idle_lock = threading.Lock()
    _reaper = None


os.register_at_fork(after_in_child=_forget_idle_after_fork)


def _keepalive() -> float:
    return getattr(settings, "OUTBOUND_KEEPALIVE", 4)


@contextlib.contextmanager
def reused_session(url: str, address: IPAddress) -> Iterator[requests.Session]:
    """A `pinned_session(url, address)` for one request: an idle one kept from an earlier
    request to the same scheme, host, port and address, or a new one. Handed back afterwards
    when OUTBOUND_KEEPALIVE is above 0 and the request raised nothing; closed otherwise."""
    keep = _keepalive()
    parts = urlsplit(url)
    key = (parts.scheme, parts.hostname, parts.port, str(address))
    session = _take(key, keep) if keep > 0 else None
    if session is None:
        session = pinned_session(url, address)
    try:
        yield session
    except BaseException:
        session.close()
        raise
    if keep > 0:
        _hand_back(key, session)
    else:
        session.close()


def _expired(now: float, keep: float) -> list[requests.Session]:
    """Take the sessions idle for `keep` seconds or more out of the pool (under _idle_lock);
    the caller closes them outside the lock."""
    expired: list[requests.Session] = []
    for key in list(_idle):
        fresh = [(at, s) for at, s in _idle[key] if now - at < keep]
        expired += [s for at, s in _idle[key] if now - at >= keep]
        if fresh:
            _idle[key] = fresh
        else:
            del _idle[key]
    return expired


def _take(key: tuple, keep: float) -> requests.Session | None:
    found = None
    with _idle_lock:
        expired = _expired(time.monotonic(), keep)
        if _idle.get(key):
            found = _idle[key].pop()[1]  # the most recently used: likeliest still open
    for session in expired:
        session.close()
    return found


def _hand_back(key: tuple, session: requests.Session) -> None:
    global _reaper
    with _idle_lock:
        waiting = _idle.setdefault(key, [])
        if len(waiting) < IDLE_PER_DESTINATION:
            waiting.append((time.monotonic(), session))
            session = None
        if _reaper is None or not _reaper.is_alive():
            _reaper = threading.Thread(target=_reap, name="outbound-keepalive", daemon=True)
            _reaper.start()
    if session is not None:
        session.close()


def _reap() -> None:
    """Close idle sessions once they have been idle OUTBOUND_KEEPALIVE seconds, whether or not
    another request comes (a worker between bursts holds no connection open); ends when none
    is left, and the next hand-back starts it again."""
    global _reaper
    while True:
        keep = _keepalive()
        time.sleep(max(keep, 0.5) / 2)
        with _idle_lock:
            expired = _expired(time.monotonic(), keep)
            done = not _idle
            if done:
                _reaper = None  # under the lock: a hand-back from now on starts another
        for session in expired:
            session.close()
        if done:
            return


def close_idle() -> int:
    """Close every idle session (the tests do after each test); returns how many."""
    with _idle_lock:
        sessions = [s for waiting in _idle.values() for _, s in waiting]
        _idle.clear()
    for session in sessions:
        session.close()
    return len(sessions)
