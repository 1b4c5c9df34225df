"""Outbound connections kept open between requests (assetsonar/net.py, reused_session): real
HTTP/1.1 servers on 127.0.0.1 that keep connections open, record which connection each request
came on, and can set cookies or close a connection behind the client's back."""

from __future__ import annotations

import ipaddress
import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from assets.mdm import get_connector
from assets.mdm.base import token_cache
from assets.models import MDMConnection
from assets.tests.mdm_servers import JamfServer
from assetsonar import net
from automations.actions import webhook


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        server: KeepAliveServer = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with server.lock:
            server.seen.append((self.client_address[1], self.headers.get("Cookie"), body))
            mode = server.modes.pop(0) if server.modes else "answer"
        if mode == "drop":
            self.close_connection = True
            return
        if mode == "longer":  # longer than the excerpt, shorter than what is read on
            body = b"y" * (webhook.RESPONSE_EXCERPT_BYTES + webhook.RESPONSE_DRAIN_BYTES // 2)
        if mode == "big":  # more than is read on: the connection cannot be reused
            body = b"x" * (webhook.RESPONSE_EXCERPT_BYTES + webhook.RESPONSE_DRAIN_BYTES * 4)
        self.send_response(200)
        if mode == "cookie":
            self.send_header("Set-Cookie", "session=abc123; Path=/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)  # the answer echoes the request
        # "close": the server closes an idle connection without having said so in the answer.
        self.close_connection = mode == "close"

    def log_message(self, *args) -> None:
        pass


class KeepAliveServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.seen: list[tuple[int, str | None, bytes]] = []
        self.modes: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def ports(self) -> list[int]:
        return [port for port, _, _ in self.seen]


@pytest.fixture
def server(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.WEBHOOK_ALLOW_HTTP = True
    httpd = KeepAliveServer()
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield httpd
    net.close_idle()
    httpd.shutdown()
    httpd.server_close()


def deliver(url: str, body: bytes = b"{}") -> webhook.SendResult:
    return webhook.send(url=url, method="POST", body=body, headers={})


def test_deliveries_to_one_receiver_share_one_connection(server):
    results = [deliver(server.url, f'{{"n": {n}}}'.encode()) for n in range(3)]

    assert [r.status_code for r in results] == [200, 200, 200]
    assert [r.excerpt for r in results] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    assert len(set(server.ports())) == 1


def test_with_keepalive_0_every_delivery_opens_its_own_connection(server, settings):
    settings.OUTBOUND_KEEPALIVE = 0

    results = [deliver(server.url) for _ in range(3)]

    assert [r.status_code for r in results] == [200, 200, 200]
    assert len(set(server.ports())) == 3
    assert net.close_idle() == 0  # nothing was kept


def test_a_cookie_a_receiver_sets_is_not_sent_back(server):
    server.modes = ["cookie"]

    deliver(server.url)
    deliver(server.url)

    assert len(set(server.ports())) == 1  # the same session and connection
    assert [cookie for _, cookie, _ in server.seen] == [None, None]


def test_an_idle_connection_is_closed_after_the_keepalive_and_not_reused(server, settings):
    settings.OUTBOUND_KEEPALIVE = 1
    deliver(server.url)
    time.sleep(1.2)

    result = deliver(server.url)

    assert result.status_code == 200
    assert len(set(server.ports())) == 2


def test_a_connection_the_receiver_closed_while_idle_is_replaced_without_an_error(server):
    server.modes = ["close"]

    first, second = deliver(server.url), deliver(server.url)

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.error == ""
    assert len(set(server.ports())) == 2


def test_a_failed_request_closes_its_session_instead_of_handing_it_back(server):
    server.modes = ["drop"]

    failed = deliver(server.url)

    assert failed.status_code is None and failed.retryable
    assert failed.error == "The endpoint closed the connection without answering."
    assert len(server.seen) == 1  # a new connection that fails is not tried again
    assert net.close_idle() == 0
    assert deliver(server.url).status_code == 200


def test_a_kept_connection_closed_unanswered_is_tried_once_more_on_a_new_one(server):
    """The server's keep-alive timeout closing the connection as the request arrives: the
    request is sent again on a new connection, and the delivery succeeds."""
    server.modes = ["answer", "drop"]

    first, second = deliver(server.url, b'{"n": 1}'), deliver(server.url, b'{"n": 2}')

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.excerpt == '{"n": 2}' and second.error == ""
    ports = server.ports()
    assert len(ports) == 3 and ports[0] == ports[1] != ports[2]


def test_a_kept_connection_is_tried_once_more_only_once(server):
    server.modes = ["answer", "drop", "drop"]

    deliver(server.url)
    failed = deliver(server.url)

    assert failed.status_code is None and failed.retryable
    assert len(server.seen) == 3


def test_an_answer_bigger_than_the_excerpt_leaves_no_bytes_for_the_next_request(server):
    server.modes = ["big"]

    big, after = deliver(server.url), deliver(server.url, b'{"after": true}')

    assert big.status_code == 200 and len(big.excerpt) == webhook.RESPONSE_EXCERPT_BYTES
    assert after.status_code == 200 and after.excerpt == '{"after": true}'
    assert len(set(server.ports())) == 2  # the unread rest closed the first connection


def test_an_answer_longer_than_the_excerpt_is_read_to_its_end_and_its_connection_kept(server):
    server.modes = ["longer"]

    longer, after = deliver(server.url), deliver(server.url, b'{"after": true}')

    assert longer.status_code == 200 and longer.excerpt == "y" * webhook.RESPONSE_EXCERPT_BYTES
    assert after.status_code == 200 and after.excerpt == '{"after": true}'
    assert len(set(server.ports())) == 1  # the rest was read and dropped: the same connection


def test_an_idle_session_is_closed_without_waiting_for_another_request(server, settings):
    settings.OUTBOUND_KEEPALIVE = 1
    deliver(server.url)

    # Idle 1 s, then the reaper's next round: every half of the keep-alive, but a reaper an
    # earlier test started may be in a longer sleep of the default's (2 s). A reaper that never
    # comes leaves the session there, and the wait ends without it.
    deadline = time.monotonic() + 8
    while net._idle and time.monotonic() < deadline:
        time.sleep(0.1)

    assert net.close_idle() == 0


def test_a_pinned_session_refuses_another_scheme_or_port():
    session = net.pinned_session("https://hooks.example.com/x", ipaddress.ip_address("127.0.0.1"))
    with session:
        for url in ("http://hooks.example.com/x", "https://hooks.example.com:8443/x"):
            with pytest.raises(requests.exceptions.InvalidURL, match="not checked"):
                session.post(url, data=b"{}", timeout=1)


def test_a_session_is_kept_per_checked_address():
    url = "https://hooks.example.com/x"
    one, other = ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("93.184.215.15")
    with net.reused_session(url, one) as first:
        pass
    with net.reused_session(url, other) as second:
        pass
    with net.reused_session(url, one) as again:
        pass
    with net.reused_session("https://hooks.example.com:8443/x", one) as other_port:
        pass

    assert second is not first and again is first and other_port is not first
    assert net.close_idle() == 3


def test_a_session_that_raised_inside_is_closed_not_kept():
    url = "https://hooks.example.com/x"
    with (
        pytest.raises(RuntimeError),
        net.reused_session(url, ipaddress.ip_address("93.184.215.14")),
    ):
        raise RuntimeError("boom")

    assert net.close_idle() == 0


def test_concurrent_deliveries_never_share_a_session_at_the_same_time(server, monkeypatch):
    bodies = [f'{{"n": {n}}}'.encode() for n in range(64)]
    in_use: set[int] = set()
    shared: list[int] = []
    guard = threading.Lock()
    request = requests.Session.request

    def watched(self, *args, **kwargs):
        with guard:
            if id(self) in in_use:
                shared.append(id(self))
            in_use.add(id(self))
        try:
            time.sleep(0.002)  # widen the window two threads would have to share it in
            return request(self, *args, **kwargs)
        finally:
            with guard:
                in_use.discard(id(self))

    monkeypatch.setattr(requests.Session, "request", watched)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda body: deliver(server.url, body), bodies))

    assert shared == []
    assert [r.excerpt.encode() for r in results] == bodies  # each got its own answer
    assert len(set(server.ports())) <= 8 < len(bodies)
    assert net.close_idle() <= net.IDLE_PER_DESTINATION


def _idle_in_child(conn) -> None:
    conn.send(net.close_idle())


def test_a_forked_worker_starts_without_the_parents_kept_connections(server):
    deliver(server.url)
    parent, child = multiprocessing.get_context("fork").Pipe()
    process = multiprocessing.get_context("fork").Process(target=_idle_in_child, args=(child,))
    process.start()
    process.join(10)

    assert parent.recv() == 0
    assert net.close_idle() == 1  # the parent's is still there


class _KeptJamf(JamfServer):
    keep_alive = True


def test_jamf_token_and_locks_go_over_one_kept_connection(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.WEBHOOK_ALLOW_HTTP = True
    token_cache.clear()
    with _KeptJamf() as jamf:
        jamf.devices |= {"mgmt-0", "mgmt-1", "mgmt-2"}
        conn = MDMConnection(name="Jamf prod", provider="jamf", base_url=jamf.url)
        conn.set_credentials({"client_id": jamf.client_id, "client_secret": jamf.client_secret})
        connector = get_connector(conn)
        results = [
            connector.lock_device(
                device_id=f"mgmt-{n}", platform="ios", pin="", message="x", phone=""
            )
            for n in range(3)
        ]
        net.close_idle()
    token_cache.clear()

    assert [r.status for r in results] == ["sent"] * 3
    assert [r.path for r in jamf.requests] == ["/api/oauth/token"] + ["/api/v2/mdm/commands"] * 3
    assert len({r.client for r in jamf.requests}) == 1
