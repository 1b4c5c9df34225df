"""Fake MDM vendor APIs: real HTTP servers on 127.0.0.1, one thread each.

Each server checks what the vendor checks (method, path, auth header or token, content type and
body shape) and answers like the vendor does; a request it would refuse is answered 400 and the
reason is kept in `problems`, so a test can assert there were none. Every request is recorded in
`requests`. Faults are queued with `fail(status)`, `hang()` and `drop()` and apply to the next
matching requests:

    with JamfServer() as jamf:
        jamf.fail(429, retry_after="7")
        ...
        assert jamf.requests[-1].path == "/api/v2/mdm/commands"

Each server also keeps what it accepted as the vendor would, and serves it on the vendor's
documented read endpoint (Jamf's MDM command list, Graph's deviceActionResults, Kandji's device
commands and unlock PIN), so the engine can reconcile. `on_accept`, when set, is called with the
request after a lock was accepted and recorded and before the answer is sent: a test can kill
the worker at exactly that moment (the vendor has the lock, the portal never hears of it).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    client: tuple = ()  # (address, port) of the connection the request came on
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, payload, **headers: str) -> Reply:
    return Reply(
        status, json.dumps(payload).encode(), {"Content-Type": "application/json", **headers}
    )


@dataclass
class _Fault:
    kind: str  # "status", "hang" or "drop"
    status: int = 0
    retry_after: str | None = None
    path: str | None = None  # only requests whose path contains this
    times: int = 1
    method: str | None = None  # only requests with this method


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeMDM/1.0"

    def handle(self) -> None:
        # A connection whose client was killed (a worker SIGKILLed) is reset, not closed: not a
        # fault of the server's, and no traceback in the test output.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()

    def log_message(self, *args) -> None:
        pass  # keep test output clean

    def _handle(self):
        fake: FakeMDMServer = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            # The client went away mid-body (a worker killed while sending): a server never
            # sees a whole request, so neither answers nor judges it.
            self.close_connection = True
            return
        parts = urlsplit(self.path)
        recorded = Recorded(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            client=self.client_address[:2],
        )
        reply = fake.dispatch(recorded)
        if reply is None:  # dropped: close without a byte
            self.close_connection = True
            return
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


class _KeepAliveHandler(_Handler):
    """HTTP/1.1 with connections kept open between requests, as the vendors' servers do; the
    answer is not held back by Nagle's algorithm (http.server writes headers and body apart)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True


def vendor_now() -> str:
    """Now as the vendors write times: ISO 8601, UTC, milliseconds, "Z"."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class FakeMDMServer:
    """Base: recording, faults, lifecycle. Subclasses implement `route`."""

    hang_seconds = 5.0
    # True: HTTP/1.1 and connections kept open (the default closes each after one answer).
    keep_alive = False

    def __init__(self) -> None:
        self.on_accept: Callable[[Recorded], None] | None = None
        self.requests: list[Recorded] = []
        self.problems: list[str] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        handler = _KeepAliveHandler if self.keep_alive else _Handler
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler, bind_and_activate=False)
        # A listen backlog for bursts from several workers (the default, 5, drops connections
        # once the accept loop falls behind: a fake that fails where the vendor would not).
        self.httpd.request_queue_size = 1024
        self.httpd.server_bind()
        self.httpd.server_activate()
        self.httpd.daemon_threads = True
        self.httpd.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()  # wake hanging handlers
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    # --- Faults ---------------------------------------------------------------------------------

    def fail(
        self,
        status: int,
        *,
        retry_after: str | None = None,
        path: str | None = None,
        times=1,
        method: str | None = None,
    ) -> None:
        self._faults.append(_Fault("status", status, retry_after, path, times, method))

    def hang(self, *, path: str | None = None, times=1, method: str | None = None) -> None:
        self._faults.append(_Fault("hang", path=path, times=times, method=method))

    def drop(self, *, path: str | None = None, times=1, method: str | None = None) -> None:
        self._faults.append(_Fault("drop", path=path, times=times, method=method))

    def _take_fault(self, path: str, method: str = "") -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method and fault.method != method:
                    continue
                if fault.path is None or fault.path in path:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # --- Dispatch -------------------------------------------------------------------------------

    def dispatch(self, request: Recorded) -> Reply | None:
        with self._lock:
            self.requests.append(request)
        fault = self._take_fault(request.path, request.method)
        if fault and fault.kind == "drop":
            return None
        if fault and fault.kind == "hang":
            self._release.wait(self.hang_seconds)
            return json_reply(200, {"late": True})
        if fault:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return json_reply(fault.status, {"error": f"injected {fault.status}"}, **headers)
        return self.route(request)

    def route(self, request: Recorded) -> Reply:
        raise NotImplementedError

    def refuse(self, problem: str) -> Reply:
        """A request the real vendor would refuse: 400, and the reason kept for the test."""
        self.problems.append(problem)
        return json_reply(400, {"error": problem})

    def bearer(self, request: Recorded) -> str | None:
        value = request.headers.get("authorization", "")
        return value[len("Bearer ") :] if value.startswith("Bearer ") else None

    def requests_to(self, path: str, method: str | None = None) -> list[Recorded]:
        return [
            r for r in self.requests if r.path == path and (method is None or r.method == method)
        ]

    def accepted(self, request: Recorded) -> None:
        """A lock was accepted and recorded: the kill hook's moment."""
        if self.on_accept is not None:
            self.on_accept(request)


class _OAuthServer(FakeMDMServer):
    """Issues client-credentials tokens and checks them."""

    expires_in = 1199

    def __init__(self) -> None:
        super().__init__()
        self.tokens: set[str] = set()

    def issue_token(self) -> Reply:
        token = "tok-" + secrets.token_hex(8)
        self.tokens.add(token)
        return json_reply(
            200, {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
        )

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def authorized(self, request: Recorded) -> bool:
        return self.bearer(request) in self.tokens

    def check_form(self, request: Recorded) -> str | None:
        if request.method != "POST":
            return "token request must be a POST"
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return "token request must be form-encoded"
        return None


class JamfServer(_OAuthServer):
    """Jamf Pro: /api/oauth/token, /api/v1/jamf-pro-version, /api/v2/mdm/commands."""

    client_id = "jamf-client-1"
    client_secret = "jamf-secret-Zq81"
    version = "11.14.0"

    def __init__(self) -> None:
        super().__init__()
        self.devices: set[str] = {"mgmt-mac-1", "mgmt-ios-1"}
        self.commands: list[dict] = []  # commandData of every accepted command
        # What GET /api/v2/mdm/commands lists: one MdmCommand per accepted command.
        self.history: list[dict] = []

    def route(self, request: Recorded) -> Reply:
        if request.path == "/api/oauth/token":
            if problem := self.check_form(request):
                return self.refuse(problem)
            form = request.form
            if form.get("grant_type") != "client_credentials":
                return self.refuse("grant_type must be client_credentials")
            if (form.get("client_id"), form.get("client_secret")) != (
                self.client_id,
                self.client_secret,
            ):
                return json_reply(401, {"error": "invalid_client"})
            return self.issue_token()
        if not self.authorized(request):
            return json_reply(401, {"httpStatus": 401, "errors": [{"code": "INVALID_TOKEN"}]})
        if request.path == "/api/v1/jamf-pro-version" and request.method == "GET":
            return json_reply(200, {"version": self.version})
        if request.path == "/api/v2/mdm/commands" and request.method == "POST":
            return self._command(request)
        if request.path == "/api/v2/mdm/commands" and request.method == "GET":
            return self._list(request)
        return json_reply(404, {"httpStatus": 404})

    def _list(self, request: Recorded) -> Reply:
        """GET /api/v2/mdm/commands: `filter` (RSQL, at least one field) is required; `sort`,
        `page` and `page-size` page the results."""
        text = (request.query.get("filter") or [""])[0]
        if not text:
            return json_reply(400, {"httpStatus": 400, "errors": [{"code": "INVALID_FILTER"}]})
        tests = []
        for clause in text.split(";"):
            match = re.fullmatch(r"(\w+)(==|=ge=|=gt=|=le=|=lt=)(.+)", clause)
            fields = {"clientManagementId", "command", "dateSent", "uuid", "status"}
            if not match or match.group(1) not in fields:
                return self.refuse(f"unsupported filter clause {clause!r}")
            name, op, value = match.groups()
            if name == "dateSent" and op == "==":
                return self.refuse("date filters take gt, lt, ge or le")
            tests.append((name, op, value))

        def keep(item: dict) -> bool:
            for name, op, value in tests:
                if name == "clientManagementId" and item["client"]["managementId"] != value:
                    return False
                if name == "command" and item["commandType"] != value:
                    return False
                if name == "uuid" and item["uuid"] != value:
                    return False
                if name == "status" and item["commandState"].lower() != value.lower():
                    return False
                if name == "dateSent":
                    sent, bound = parse_time(item["dateSent"]), parse_time(value)
                    if not {"=ge=": sent >= bound, "=gt=": sent > bound,
                            "=le=": sent <= bound, "=lt=": sent < bound}[op]:  # fmt: skip
                        return False
            return True

        with self._lock:
            found = [item for item in self.history if keep(item)]
        sort = (request.query.get("sort") or ["dateSent:asc"])[0]
        found.sort(key=lambda item: item["dateSent"], reverse=sort.endswith(":desc"))
        size = int((request.query.get("page-size") or ["100"])[0])
        page = int((request.query.get("page") or ["0"])[0])
        return json_reply(
            200, {"totalCount": len(found), "results": found[page * size : (page + 1) * size]}
        )

    def _command(self, request: Recorded) -> Reply:
        if request.headers.get("content-type") != "application/json":
            return self.refuse("commands must be JSON")
        body = request.json
        if not isinstance(body, dict) or set(body) != {"clientData", "commandData"}:
            return self.refuse("body must have clientData and commandData only")
        clients, command = body["clientData"], body["commandData"]
        if not (
            isinstance(clients, list)
            and len(clients) == 1
            and isinstance(clients[0], dict)
            and set(clients[0]) == {"managementId"}
        ):
            return self.refuse("clientData must be one {managementId}")
        if command.get("commandType") != "DEVICE_LOCK":
            return self.refuse("commandType must be DEVICE_LOCK")
        if set(command) - {"commandType", "pin", "message", "phoneNumber"}:
            return self.refuse(f"unknown commandData keys {sorted(command)}")
        if "pin" in command and not re.fullmatch(r"\d{6}", command["pin"]):
            return self.refuse("pin must be 6 digits")
        # Jamf's answer for an unknown management id is not documented in what we checked; the
        # fake answers 404 so the connector's not-found path is exercised.
        if clients[0]["managementId"] not in self.devices:
            return json_reply(404, {"httpStatus": 404, "errors": [{"code": "NOT_FOUND"}]})
        command_id = str(uuid.uuid4())
        with self._lock:
            self.commands.append(command)
            self.history.append(
                {
                    "uuid": command_id,
                    "dateSent": vendor_now(),
                    "client": {
                        "managementId": clients[0]["managementId"],
                        "clientType": "COMPUTER",
                    },
                    "commandState": "PENDING",
                    "commandType": command["commandType"],
                }
            )
        self.accepted(request)
        return json_reply(
            201, [{"id": command_id, "href": f"{self.url}/api/v2/mdm/commands/{command_id}"}]
        )


class IntuneServer(_OAuthServer):
    """Microsoft Entra ID token endpoint and Microsoft Graph on one server (point both the
    connection's base URL and settings.MDM_INTUNE_LOGIN_URL at `url`)."""

    tenant_id = "0f6c5d1e-tenant"
    client_id = "intune-app-1"
    client_secret = "intune-secret-Kp40"

    def __init__(self) -> None:
        super().__init__()
        self.devices: set[str] = {"dev-win-1", "dev-ios-1"}
        self.locked: list[str] = []
        # deviceActionResults of each device, as Graph keeps them.
        self.actions: dict[str, list[dict]] = {}

    def route(self, request: Recorded) -> Reply:
        token_path = re.fullmatch(r"/([^/]+)/oauth2/v2\.0/token", request.path)
        if token_path:
            if problem := self.check_form(request):
                return self.refuse(problem)
            form = request.form
            if token_path.group(1) != self.tenant_id:
                return json_reply(400, {"error": "invalid_request", "error_codes": [90002]})
            if form.get("grant_type") != "client_credentials":
                return self.refuse("grant_type must be client_credentials")
            if form.get("scope") != f"{self.url}/.default":
                return self.refuse(f"scope must be the Graph resource /.default: {form}")
            if (form.get("client_id"), form.get("client_secret")) != (
                self.client_id,
                self.client_secret,
            ):
                return json_reply(401, {"error": "invalid_client", "error_codes": [7000215]})
            return self.issue_token()
        if not self.authorized(request):
            return json_reply(401, {"error": {"code": "InvalidAuthenticationToken"}})
        if request.path == "/v1.0/deviceManagement/managedDevices" and request.method == "GET":
            return json_reply(200, {"value": [{"id": d} for d in sorted(self.devices)][:1]})
        lock = re.fullmatch(
            r"/v1\.0/deviceManagement/managedDevices/([^/]+)/remoteLock", request.path
        )
        if lock and request.method == "POST":
            if request.body:
                return self.refuse("remoteLock takes no request body")
            if lock.group(1) not in self.devices:
                return json_reply(404, {"error": {"code": "ResourceNotFound"}})
            now = vendor_now()
            with self._lock:
                self.locked.append(lock.group(1))
                self.actions.setdefault(lock.group(1), []).append(
                    {
                        "actionName": "remoteLock",
                        "actionState": "pending",
                        "startDateTime": now,
                        "lastUpdatedDateTime": now,
                    }
                )
            self.accepted(request)
            return Reply(204, b"", {"request-id": str(uuid.uuid4())})
        device = re.fullmatch(r"/v1\.0/deviceManagement/managedDevices/([^/]+)", request.path)
        if device and request.method == "GET":
            if device.group(1) not in self.devices:
                return json_reply(404, {"error": {"code": "ResourceNotFound"}})
            select = (request.query.get("$select") or [""])[0].split(",")
            body: dict = {"id": device.group(1)}
            if "deviceActionResults" in select:
                with self._lock:
                    body["deviceActionResults"] = list(self.actions.get(device.group(1), []))
            return json_reply(200, body)
        return json_reply(404, {"error": {"code": "BadRequest"}})


class KandjiServer(FakeMDMServer):
    """Kandji: Bearer API token, device list, lock action, unlock PIN secret."""

    api_token = "kandji-token-7f3a"

    def __init__(self) -> None:
        super().__init__()
        self.devices: dict[str, str] = {"k-mac-1": "Mac", "k-iphone-1": "iPhone"}
        self.pins: dict[str, str] = {}
        self.pending: set[str] = set()  # devices with a lock already queued
        self.commands: dict[str, list[dict]] = {}  # GET /api/v1/devices/{id}/commands
        self.locks: list[str] = []  # every lock accepted, by device id

    def route(self, request: Recorded) -> Reply:
        if self.bearer(request) != self.api_token:
            return json_reply(401, {"detail": "Invalid token."})
        if request.path == "/api/v1/devices" and request.method == "GET":
            return json_reply(200, [])
        lock = re.fullmatch(r"/api/v1/devices/([^/]+)/action/lock", request.path)
        if lock and request.method == "POST":
            return self._lock_device(request, lock.group(1))
        secret = re.fullmatch(r"/api/v1/devices/([^/]+)/secrets/unlockpin", request.path)
        if secret and request.method == "GET":
            if self.devices.get(secret.group(1)) not in (None, "Mac"):
                return self.refuse("the unlock PIN exists for Macs only")
            if secret.group(1) in self.pins:
                return json_reply(200, {"pin": self.pins[secret.group(1)]})
        commands = re.fullmatch(r"/api/v1/devices/([^/]+)/commands", request.path)
        if commands and request.method == "GET" and commands.group(1) in self.devices:
            with self._lock:
                found = list(self.commands.get(commands.group(1), []))
            return json_reply(
                200,
                {
                    "results": {
                        "count": len(found),
                        "next": None,
                        "previous": None,
                        "results": found,
                    }
                },
            )
        return json_reply(404, {"detail": "Not found."})

    def _lock_device(self, request: Recorded, device_id: str) -> Reply:
        if request.headers.get("content-type") != "application/json":
            return self.refuse("lock body must be JSON")
        body = request.json
        if not isinstance(body, dict) or set(body) - {"Message", "PhoneNumber"}:
            return self.refuse(f"lock body may only have Message and PhoneNumber: {body}")
        if device_id not in self.devices:
            return json_reply(404, {"detail": "Not found."})
        if device_id in self.pending:
            return json_reply(400, {"detail": "Command already running"})
        with self._lock:
            self.pending.add(device_id)
            self.locks.append(device_id)
            self.commands.setdefault(device_id, []).append(
                {
                    "uuid": str(uuid.uuid4()),
                    "command_type": "DeviceLock",
                    "status": 1,
                    "date_requested": vendor_now(),
                    "date_completed": None,
                }
            )
            if self.devices[device_id] == "Mac":
                self.pins[device_id] = f"{secrets.randbelow(10**6):06d}"
        self.accepted(request)
        if self.devices[device_id] == "Mac":
            return json_reply(200, {"PIN": self.pins[device_id]})
        return json_reply(200, {})
