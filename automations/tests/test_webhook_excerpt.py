"""What a delivery keeps of the receiver's answer (`webhook.send`): up to 1 KB, decoded as the
receiver encoded it, whatever the framing, and no longer than the delivery's deadline. Against
a real HTTP server on 127.0.0.1 that frames its answers in each way."""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from automations.actions import webhook


class _Answers(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        getattr(self, "_" + self.path.strip("/"))()

    def _head(self, **headers: str) -> None:
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()

    def _chunked(self) -> None:
        self._head(Transfer_Encoding="chunked", Connection="close")
        for part in (b"hello ", b"chunked ", b"world"):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _gzip(self) -> None:
        body = gzip.compress(b'{"received": true}' * 100)
        self._head(Content_Encoding="gzip", Content_Length=str(len(body)), Connection="close")
        self.wfile.write(body)

    def _large(self) -> None:
        body = b"y" * 300_000
        self._head(Content_Length=str(len(body)), Connection="close")
        self.wfile.write(body)

    def _drip(self) -> None:
        self._head(Content_Length="100", Connection="close")
        for _ in range(100):
            try:
                self.wfile.write(b"d")
                self.wfile.flush()
            except OSError:
                return  # the sender gave up: what this test wants
            time.sleep(0.2)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _send(url: str) -> webhook.SendResult:
    return webhook.send(
        url=url, method="POST", body=b"{}", headers={"Content-Type": "application/json"}
    )


def test_a_chunked_answer_is_kept_whole(server):
    result = _send(server + "/chunked")
    assert (result.status_code, result.excerpt, result.error) == (200, "hello chunked world", "")


def test_a_gzipped_answer_is_kept_decoded_up_to_1_kb(server):
    result = _send(server + "/gzip")
    assert result.status_code == 200
    assert result.excerpt == ('{"received": true}' * 100)[:1024]


def test_a_large_answer_is_cut_at_1_kb(server):
    result = _send(server + "/large")
    assert (result.status_code, result.excerpt) == (200, "y" * 1024)


def test_an_answer_that_drips_stops_at_the_deadline(server, settings):
    settings.WEBHOOK_TOTAL_TIMEOUT = 1
    started = time.monotonic()

    result = _send(server + "/drip")

    assert time.monotonic() - started < 3  # 100 bytes at 5 a second would take 20 s
    assert result.status_code == 200
    assert 1 <= len(result.excerpt) <= 10
    assert set(result.excerpt) == {"d"}
