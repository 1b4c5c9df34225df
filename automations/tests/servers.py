"""A webhook receiver for the tests: a real HTTP server on 127.0.0.1 in a thread.

Every request is recorded (method, path, headers, body) before it is answered. By default it
answers 200; `answer(status, ...)` queues other answers for the next requests, `hang()` makes the
next requests wait (past the sender's timeout, or until `release()`), `drop()` closes the
connection without answering:

    with WebhookReceiver() as hook:
        hook.answer(503, times=2)
        hook.answer(429, headers={"Retry-After": "7"})
        ...
        assert hook.requests[0].headers["webhook-id"]
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    """One request as the receiver got it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Behaviour:
    kind: str  # "answer", "hang", "drop"
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    server_version = "TestReceiver/1.0"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass  # keep the test output clean

    def handle(self) -> None:
        # A connection whose client was killed (a worker SIGKILLed) is reset, not closed.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()

    def _handle(self) -> None:
        receiver: WebhookReceiver = self.server.receiver  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        receiver._record(
            Received(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
        )
        behaviour = receiver._next()
        if behaviour.kind == "hang":
            receiver._released.wait(receiver.hang_seconds)
        if behaviour.kind == "drop":
            self.close_connection = True
            return
        try:
            self.send_response(behaviour.status)
            for name, value in behaviour.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(behaviour.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(behaviour.body)
        except OSError:
            pass  # the sender gave up (timeout, killed worker)
        self.close_connection = True

    do_POST = do_PUT = do_GET = _handle


class WebhookReceiver:
    """See the module docstring."""

    hang_seconds = 60.0

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._behaviours: deque[_Behaviour] = deque()
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._arrived = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler, bind_and_activate=False)
        # A listen backlog for bursts from several workers (the default, 5, drops connections
        # once the accept loop falls behind: a receiver that fails where a real one would not).
        self._server.request_queue_size = 1024
        self._server.server_bind()
        self._server.server_activate()
        self._server.daemon_threads = True
        self._server.receiver = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str = "/hooks/offboarding") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # --- What the next requests get ------------------------------------------------------------

    def answer(self, status: int, *, body: bytes = b"", headers=None, times: int = 1) -> None:
        for _ in range(times):
            self._behaviours.append(_Behaviour("answer", status, body, dict(headers or {})))

    def hang(self, *, times: int = 1) -> None:
        """Wait before answering 200: `hang_seconds`, or until `release()`."""
        self._released.clear()
        for _ in range(times):
            self._behaviours.append(_Behaviour("hang"))

    def drop(self, *, times: int = 1) -> None:
        for _ in range(times):
            self._behaviours.append(_Behaviour("drop"))

    def release(self) -> None:
        """Let hanging requests answer now."""
        self._released.set()

    # --- Reading what arrived ------------------------------------------------------------------

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Block until `count` requests arrived (or fail after `timeout` seconds)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"{len(self.requests)} of {count} requests arrived")
            return list(self.requests)

    def _record(self, request: Received) -> None:
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()

    def _next(self) -> _Behaviour:
        with self._lock:
            return self._behaviours.popleft() if self._behaviours else _Behaviour("answer")
