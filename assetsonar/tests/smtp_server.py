"""A real SMTP server for the tests (aiosmtpd on 127.0.0.1, a free port, its own thread).

It records every message it accepts (envelope, headers, text and HTML parts) and every command
it answered, and can be told, per stage of the transaction (MAIL, RCPT, DATA), to answer with a
given reply (421/451 temporary, 550 permanent), to drop the connection (`drop`, a FIN; `reset`,
an RST), or to hang without answering until the test ends. `require_auth` makes it ask for a
user name and password (without TLS, as a test server may).

Use the `smtp_server` fixture: it points Django's EMAIL_* settings at the server (SMTP backend,
no TLS, EMAIL_TIMEOUT of 2 s so a hang ends quickly). Import it into a conftest by name, as
assetsonar/tests/conftest.py does. A worker process started by a test reads its settings from
the environment instead: give it `EMAIL_HOST=127.0.0.1`, `EMAIL_PORT=str(server.port)`,
`EMAIL_USE_TLS=false`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import logging
import socket
import ssl
import struct
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

HOST = "127.0.0.1"
# aiosmtpd logs every command at INFO: only its warnings in the tests' output.
logging.getLogger("mail.log").setLevel(logging.WARNING)
STAGES = ("mail", "rcpt", "data")


@dataclass
class ReceivedMessage:
    """One accepted message: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage = field(repr=False)

    def header(self, name: str) -> str | None:
        value = self.message[name]
        # Django folds a long encoded header right after the colon: the fold is not the value.
        return None if value is None else str(value).strip()

    def part(self, content_type: str) -> str | None:
        for part in self.message.walk():
            if part.get_content_type() == content_type and not part.is_multipart():
                return part.get_content()
        return None

    @property
    def text(self) -> str | None:
        return self.part("text/plain")

    @property
    def html(self) -> str | None:
        return self.part("text/html")


@dataclass
class _Rule:
    action: str  # "reply", "drop", "reset", "hang"
    reply: str = ""
    times: int | None = None  # None: every time


class _Handler:
    def __init__(self, server: SMTPTestServer):
        self.server = server

    async def _apply(self, session_server: SMTP, stage: str, value: str) -> str | None:
        """The reply the rule for `stage` dictates, or None to go on as normal."""
        rule = self.server._take_rule(stage)
        self.server.commands.append((stage, value, rule.action if rule else "accept"))
        if rule is None:
            return None
        if rule.action == "reply":
            return rule.reply
        transport = session_server.transport
        if rule.action in ("drop", "reset") and transport is not None:
            if rule.action == "reset":
                sock = transport.get_extra_info("socket")
                # SO_LINGER 0: close() sends an RST, the client reads "connection reset".
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            return "421 4.4.2 connection gone"  # never reaches the client: the socket is closed
        # hang: answer nothing until the test ends (the client's timeout runs out first).
        while not self.server._release.is_set():  # set from another thread
            await asyncio.sleep(0.05)
        return "421 4.4.2 test over"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # Checked here rather than with aiosmtpd's auth_required, which warns without TLS.
        if self.server._credentials is not None and not session.authenticated:
            self.server.commands.append(("mail", address, "530"))
            return "530 5.7.0 Authentication required"
        reply = await self._apply(server, "mail", address)
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = await self._apply(server, "rcpt", address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = await self._apply(server, "data", ",".join(envelope.rcpt_tos))
        if reply is not None:
            return reply
        raw = envelope.original_content or envelope.content
        self.server.messages.append(
            ReceivedMessage(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                raw=raw,
                # Parts as the recipient's mail program shows them: lines end in \n.
                message=email.message_from_bytes(
                    raw.replace(b"\r\n", b"\n"), policy=email.policy.default
                ),
            )
        )
        return "250 2.0.0 OK: queued"


def _self_signed_context() -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1 (no client trusts
    it: what a mail server with a certificate of its own making looks like)."""
    import datetime
    import ipaddress
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        cert_path, key_path = f"{directory}/cert.pem", f"{directory}/key.pem"
        with open(cert_path, "wb") as out:
            out.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as out:
            out.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        context.load_cert_chain(cert_path, key_path)
    return context


class SMTPTestServer:
    """An SMTP server on 127.0.0.1 and a free port, run in a thread; `start()`, then `stop()`.

    `starttls=True` offers STARTTLS with a self-signed certificate.
    """

    def __init__(self, *, starttls: bool = False):
        self._tls_context = _self_signed_context() if starttls else None
        self.messages: list[ReceivedMessage] = []
        # (stage, address, what the server did) for every MAIL, RCPT and DATA it answered.
        self.commands: list[tuple[str, str, str]] = []
        self.logins: list[tuple[str, str]] = []
        self.port: int = 0
        self._rules: dict[str, _Rule] = {}
        self._credentials: tuple[str, str] | None = None
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None

    # --- What the next transactions meet ---

    def reply(self, stage: str, reply: str, *, times: int | None = None) -> None:
        """Answer `reply` (e.g. "451 4.3.0 Try again later") at `stage`, `times` times or always."""
        self._set(stage, _Rule("reply", reply, times))

    def drop(self, stage: str, *, reset: bool = False, times: int | None = None) -> None:
        """Close the connection at `stage` without answering (an RST with `reset`)."""
        self._set(stage, _Rule("reset" if reset else "drop", times=times))

    def hang(self, stage: str) -> None:
        """Answer nothing at `stage` until the server stops."""
        self._set(stage, _Rule("hang"))

    def accept(self) -> None:
        """Forget every rule: accept everything again."""
        with self._lock:
            self._rules.clear()

    def require_auth(self, username: str, password: str) -> None:
        self._credentials = (username, password)

    def _set(self, stage: str, rule: _Rule) -> None:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")
        with self._lock:
            self._rules[stage] = rule

    def _take_rule(self, stage: str) -> _Rule | None:
        with self._lock:
            rule = self._rules.get(stage)
            if rule is not None and rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    del self._rules[stage]
            return rule

    # --- Authentication (AUTH PLAIN / LOGIN) ---

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = (auth_data.login.decode(), auth_data.password.decode())
        self.logins.append(login)
        return AuthResult(success=login == self._credentials, handled=False)

    # --- Running ---

    def _protocol(self) -> SMTP:
        return SMTP(
            _Handler(self),
            hostname="smtp.test",
            loop=self._loop,
            auth_require_tls=False,
            authenticator=self._authenticate,
            tls_context=self._tls_context,
        )

    def start(self) -> SMTPTestServer:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run():
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                self._loop.create_server(self._protocol, HOST, 0)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="smtp-test-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("The test SMTP server did not start.")
        return self

    def stop(self) -> None:
        self._release.set()
        loop = self._loop
        if loop is None:
            return

        async def shutdown():
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        loop.close()
        self._loop = None


@pytest.fixture
def smtp_server(settings):
    """A running SMTPTestServer, with Django's mail settings pointed at it."""
    server = SMTPTestServer().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = HOST
    settings.EMAIL_PORT = server.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 2
    settings.DEFAULT_FROM_EMAIL = "AssetSonar <assetsonar@example.com>"
    yield server
    server.stop()
