"""CPU time of one webhook delivery (`automations.actions.webhook.send`) by the size of the
receiver's answer, against the excerpt reader it replaced (one byte per read), interleaved.

    .venv/bin/python bench/webhook_send.py                 # answers of 2 B, 256 B, 1 KB, 64 KB
    .venv/bin/python bench/webhook_send.py --rounds 10 --sends 200
    .venv/bin/python bench/webhook_send.py --connections   # kept connection vs one per send

Production settings (DEBUG off), a receiver on 127.0.0.1 in this process (HTTP/1.1, the answer
of the asked size, connection closed), CPU time of the sending thread only. The "before" column
runs the same `send` with the old reader swapped in; rounds alternate between the two.

`--connections`: the receiver keeps connections open (as web servers do, with TCP_NODELAY) and
answers 2 bytes; rounds alternate between a connection kept for the next send (the default,
OUTBOUND_KEEPALIVE=4) and a new session and connection per send (OUTBOUND_KEEPALIVE=0, as
before 4 December 2026). CPU time of the sending thread and wall time per send.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import threading
import time
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
        Receiver.keep_open = True
        connections(args, base, load)
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


def connections(args, base: str, load: str) -> None:
    from django.conf import settings

    from assetsonar import net
    from automations.actions import webhook

    url = f"{base}/2"

    def per_send(keep: int) -> tuple[float, float]:
        settings.OUTBOUND_KEEPALIVE = keep
        net.close_idle()
        cpu, wall = time.thread_time(), time.perf_counter()
        for _ in range(args.sends):
            result = webhook.send(url=url, method="POST", body=b"{}", headers={})
            assert result.status_code == 200, result.error
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        return cpu / args.sends * 1000, wall / args.sends * 1000

    per_send(4), per_send(0)  # warm both paths
    times: dict[int, list[tuple[float, float]]] = {4: [], 0: []}
    for _ in range(args.rounds):
        for keep in (4, 0):
            times[keep].append(per_send(keep))
    net.close_idle()
    print(
        f"DEBUG={settings.DEBUG}, {args.rounds} rounds x {args.sends} sends of a 2-byte answer, "
        f"load average at start {load}, at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"{'connection':<28}{'ms CPU':>10}{'ms wall':>10}")
    for keep, name in ((4, "kept (OUTBOUND_KEEPALIVE=4)"), (0, "new per send (0)")):
        cpu = statistics.median(c for c, _ in times[keep])
        wall = statistics.median(w for _, w in times[keep])
        print(f"{name:<28}{cpu:>10.3f}{wall:>10.3f}")
    kept = statistics.median(c for c, _ in times[4])
    new = statistics.median(c for c, _ in times[0])
    print(f"new / kept, CPU: {new / kept:.2f}")


if __name__ == "__main__":
    main()
