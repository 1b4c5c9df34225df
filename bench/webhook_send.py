"""CPU time of one webhook delivery (`automations.actions.webhook.send`) by the size of the
receiver's answer, against the excerpt reader it replaced (one byte per read), interleaved.

    .venv/bin/python bench/webhook_send.py                 # answers of 2 B, 256 B, 1 KB, 64 KB
    .venv/bin/python bench/webhook_send.py --rounds 10 --sends 200
    .venv/bin/python bench/webhook_send.py --connections   # kept connection vs one per send

Production settings (DEBUG off), a receiver on 127.0.0.1 in this process (HTTP/1.1, the answer
of the asked size, connection closed), CPU time of the sending thread only. The "before" column
runs the same `send` with the old reader swapped in; rounds alternate between the two.

`--connections`: the receivers keep connections open (as web servers do, with TCP_NODELAY) and
answer 2 bytes; rounds alternate between a connection kept for the next send (the default,
OUTBOUND_KEEPALIVE=4) and a new session and connection per send (OUTBOUND_KEEPALIVE=0, as
before 4 December 2026). Over http and over https (a self-signed RSA 2048 certificate made with
openssl, trusted by the sender), next to the sender and `--rtt-ms` away: a proxy in this process
delays every chunk by half the round trip each way and a new connection's first bytes by one
more round trip (the TCP handshake). CPU time of the sending thread and wall time per send, one
send after the other. Then MDM locks: `--locks` locks from 8 threads through one Jamf Pro
connection capped at 5 requests in flight (the SQLite default's file-lock slots), over https to
the Jamf fake of the test suite behind the same proxy; locks per second, kept against new.
"""

from __future__ import annotations

import argparse
import os
import queue
import secrets
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = (2, 256, 1024, 65536)


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    keep_open = False

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"x" * int(self.path.strip("/"))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if not self.keep_open:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature of the base
        pass


def one_byte_reader(response, deadline: float) -> str:
    """The excerpt reader before 3 December 2026 (the anchor)."""
    import requests

    from automations.actions.webhook import RESPONSE_EXCERPT_BYTES

    data = bytearray()
    try:
        for chunk in response.iter_content(chunk_size=1):
            data += chunk
            if len(data) >= RESPONSE_EXCERPT_BYTES or time.monotonic() > deadline:
                break
    except (requests.RequestException, OSError):
        pass
    return bytes(data[:RESPONSE_EXCERPT_BYTES]).decode("utf-8", errors="replace")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--sends", type=int, default=100, help="sends per size and round")
    parser.add_argument(
        "--connections", action="store_true", help="kept connection against one per send"
    )
    parser.add_argument(
        "--rtt-ms", default="0,40", help="--connections: round trips to the receiver to emulate"
    )
    parser.add_argument("--locks", type=int, default=100, help="--connections: locks per round")
    args = parser.parse_args()
    os.environ.update(
        DJANGO_SETTINGS_MODULE="assetsonar.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="localhost",
        OUTBOUND_ALLOWED_NETWORKS="127.0.0.0/8",
        WEBHOOK_ALLOW_HTTP="true",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    from automations.actions import webhook

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    ours = webhook._read_excerpt

    def per_send(size: int) -> float:
        url = f"{base}/{size}"
        started = time.thread_time()
        for _ in range(args.sends):
            result = webhook.send(url=url, method="POST", body=b"{}", headers={})
            assert result.status_code == 200, result.error
        return (time.thread_time() - started) / args.sends * 1000

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.connections:
        connections(args, httpd, load)
        httpd.shutdown()
        return
    times: dict[tuple[str, int], list[float]] = {}
    for size in SIZES:  # warm both paths
        per_send(size)
    for _ in range(args.rounds):
        for name, reader in (("ours", ours), ("before", one_byte_reader)):
            webhook._read_excerpt = reader
            for size in SIZES:
                times.setdefault((name, size), []).append(per_send(size))
    webhook._read_excerpt = ours
    httpd.shutdown()

    print(
        f"DEBUG={settings.DEBUG}, {args.rounds} rounds x {args.sends} sends, load average at "
        f"start {load}, at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"{'answer':>10}{'ours ms CPU':>14}{'before ms CPU':>16}{'before / ours':>15}")
    for size in SIZES:
        mine = statistics.median(times[("ours", size)])
        old = statistics.median(times[("before", size)])
        print(f"{size:>8} B{mine:>14.3f}{old:>16.3f}{old / mine:>15.2f}")


class DelayProxy:
    """A TCP proxy on 127.0.0.1 that delays every chunk by half of `rtt` seconds each way, and a
    new connection's first bytes by one more round trip (the TCP handshake the client waits for
    before it can send): a receiver `rtt` away, as seen from the sender."""

    def __init__(self, upstream: tuple[str, int], rtt: float) -> None:
        self.upstream, self.rtt = upstream, rtt
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(self.upstream)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._pipe(client, server, handshake=self.rtt)
            self._pipe(server, client, handshake=0.0)

    def _pipe(self, source: socket.socket, sink: socket.socket, *, handshake: float) -> None:
        chunks: queue.Queue = queue.Queue()

        def read() -> None:
            extra = handshake
            while True:
                try:
                    data = source.recv(65536)
                except OSError:
                    data = b""
                chunks.put((time.monotonic() + self.rtt / 2 + extra, data))
                extra = 0.0
                if not data:
                    return

        def write() -> None:
            while True:
                due, data = chunks.get()
                time.sleep(max(0.0, due - time.monotonic()))
                try:
                    if not data:
                        sink.shutdown(socket.SHUT_WR)
                        return
                    sink.sendall(data)
                except OSError:
                    return

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()


def tls_context(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a self-signed certificate for 127.0.0.1 (RSA 2048, as most
    vendors' certificates are), and the certificate for the client to trust."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(  # noqa: S603 - fixed arguments, no input
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, cert


def tls_receiver(context: ssl.SSLContext) -> ThreadingHTTPServer:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Receiver, bind_and_activate=False)
    # The handshake in the request's thread, not in the accept loop (which would take one
    # connection at a time).
    httpd.socket = context.wrap_socket(
        httpd.socket, server_side=True, do_handshake_on_connect=False
    )
    httpd.server_bind()
    httpd.server_activate()
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def mdm_burst(args, context: ssl.SSLContext, rtt: float) -> dict[int, list[float]]:
    """Locks per second through one Jamf Pro connection (its cap: 5 requests in flight) from 8
    threads, over https to a Jamf fake `rtt` seconds away, kept and new connections
    interleaved. The slots are the file locks of the SQLite default (no database needed)."""
    from django.conf import settings

    from assets.mdm import get_connector
    from assets.models import MDMConnection
    from assets.tests.mdm_servers import JamfServer
    from assetsonar import net

    class KeptJamf(JamfServer):
        keep_alive = True

    jamf = KeptJamf()
    jamf.httpd.socket = context.wrap_socket(
        jamf.httpd.socket, server_side=True, do_handshake_on_connect=False
    )
    jamf.__enter__()
    jamf.devices |= {f"dev-{n}" for n in range(args.locks)}
    proxy = DelayProxy(("127.0.0.1", jamf.httpd.server_address[1]), rtt)
    conn = MDMConnection(
        name="Bench Jamf",
        provider="jamf",
        base_url=f"https://127.0.0.1:{proxy.port}",
        max_concurrent_requests=5,
    )
    conn.pk = 10**9  # unsaved, but with the id its request slots are named after
    conn.set_credentials({"client_id": jamf.client_id, "client_secret": jamf.client_secret})

    def lock(n: int) -> None:
        result = get_connector(conn).lock_device(
            device_id=f"dev-{n}", platform="ios", pin="", message="Return it", phone=""
        )
        assert result.status == "sent", result

    def per_second(keep: int) -> float:
        settings.OUTBOUND_KEEPALIVE = keep
        net.close_idle()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lock, range(args.locks)))
        return args.locks / (time.perf_counter() - started)

    lock(0)  # the token
    rates: dict[int, list[float]] = {4: [], 0: []}
    for _ in range(args.rounds):
        for keep in (4, 0):
            rates[keep].append(per_second(keep))
    net.close_idle()
    jamf.__exit__(None, None, None)
    return rates


def connections(args, plain: ThreadingHTTPServer, load: str) -> None:
    """Kept connection against a new one per send, over http and https, with the receiver next
    to the sender and `--rtt-ms` away."""
    from django.conf import settings

    from assetsonar import net
    from automations.actions import webhook

    Receiver.keep_open = True
    directory = tempfile.TemporaryDirectory()
    context, cert = tls_context(Path(directory.name))
    secure = tls_receiver(context)
    pinned = net.pinned_session

    def trusting(url, address):  # the bench's certificate is trusted like a public CA's
        session = pinned(url, address)
        session.verify = str(cert)
        return session

    net.pinned_session = trusting
    rtts = [float(x) for x in args.rtt_ms.split(",") if x]
    targets = []
    for scheme, httpd in (("http", plain), ("https", secure)):
        for rtt in rtts:
            port = httpd.server_address[1]
            if rtt:
                port = DelayProxy(("127.0.0.1", port), rtt / 1000).port
            targets.append((scheme, rtt, f"{scheme}://127.0.0.1:{port}/2"))

    def per_send(url: str, keep: int) -> tuple[float, float]:
        settings.OUTBOUND_KEEPALIVE = keep
        net.close_idle()
        cpu, wall = time.thread_time(), time.perf_counter()
        for _ in range(args.sends):
            result = webhook.send(url=url, method="POST", body=b"{}", headers={})
            assert result.status_code == 200, result.error
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        return cpu / args.sends * 1000, wall / args.sends * 1000

    for _, _, url in targets:  # warm every path
        per_send(url, 4), per_send(url, 0)
    times: dict[tuple[str, float, int], list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for scheme, rtt, url in targets:
            for keep in (4, 0):
                times.setdefault((scheme, rtt, keep), []).append(per_send(url, keep))
    net.close_idle()
    bursts = {rtt: mdm_burst(args, context, rtt / 1000) for rtt in rtts}
    net.pinned_session = pinned
    secure.shutdown()
    directory.cleanup()
    print(
        f"DEBUG={settings.DEBUG}, {args.rounds} rounds x {args.sends} sends of a 2-byte answer, "
        "one after the other, kept (OUTBOUND_KEEPALIVE=4) and new (0) interleaved; load average "
        f"at start {load}, at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"{'receiver':<22}{'kept ms CPU':>12}{'new ms CPU':>12}{'new/kept':>9}"
        f"{'kept ms wall':>14}{'new ms wall':>13}{'new/kept':>9}"
    )
    for scheme, rtt, _ in targets:
        kept, new = times[(scheme, rtt, 4)], times[(scheme, rtt, 0)]
        kc, nc = (statistics.median(c for c, _ in kept), statistics.median(c for c, _ in new))
        kw, nw = (statistics.median(w for _, w in kept), statistics.median(w for _, w in new))
        where = f"{scheme}, {'same host' if not rtt else f'{rtt:g} ms RTT'}"
        print(
            f"{where:<22}{kc:>12.3f}{nc:>12.3f}{nc / kc:>9.2f}{kw:>14.2f}{nw:>13.2f}{nw / kw:>9.2f}"
        )
    _print_bursts(args, bursts)


def _print_bursts(args, bursts) -> None:
    print(
        f"MDM locks through one Jamf connection (cap 5 in flight), https, {args.locks} locks "
        "from 8 threads per round:"
    )
    print(f"{'Jamf fake':<22}{'kept locks/s':>14}{'new locks/s':>13}{'kept/new':>10}")
    for rtt, rates in bursts.items():
        kept, new = statistics.median(rates[4]), statistics.median(rates[0])
        where = "same host" if not rtt else f"{rtt:g} ms RTT"
        print(f"{where:<22}{kept:>14.1f}{new:>13.1f}{kept / new:>10.2f}")


if __name__ == "__main__":
    main()
