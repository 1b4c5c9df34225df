"""Serve the portal with waitress, the production WSGI server, configured from settings.

    manage.py serve [--listen 0.0.0.0:8000] [--threads 8]

Behind a TLS-terminating reverse proxy (BEHIND_PROXY=true) waitress must be told which peer is
the proxy, or it drops the proxy's X-Forwarded-Proto and the portal, seeing plain http, redirects
every request to https for ever. This command passes TRUSTED_PROXY and TRUSTED_PROXY_HEADERS to
waitress, so the proxy's headers count and nobody else's do.
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


def _host(listen: str) -> str:
    host = listen.rpartition(":")[0] if ":" in listen else listen
    return host.strip("[]")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def waitress_options(*, listen: str, threads: int) -> dict[str, Any]:
    """The keyword arguments for waitress.serve."""
    options: dict[str, Any] = {"listen": listen, "threads": threads, "ident": "AssetSonar"}
    if settings.BEHIND_PROXY:
        options.update(
            trusted_proxy=settings.TRUSTED_PROXY,
            trusted_proxy_headers=" ".join(settings.TRUSTED_PROXY_HEADERS),
            trusted_proxy_count=1,
            # waitress's default, said out loud: a forwarded header from anyone else is dropped.
            clear_untrusted_proxy_headers=True,
        )
    return options


class Command(BaseCommand):
    help = "Serve the portal with waitress (proxy trust from BEHIND_PROXY / TRUSTED_PROXY)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--listen",
            default="127.0.0.1:8000",
            help="host:port to listen on (default 127.0.0.1:8000; 0.0.0.0:8000 for all).",
        )
        parser.add_argument("--threads", type=int, default=settings.WEB_THREADS)

    def handle(self, *args: Any, **options: Any) -> None:
        from waitress import serve

        from assetsonar.wsgi import application

        listen = options["listen"]
        if settings.LOCAL_DEMO and not _is_loopback(_host(listen)):
            raise CommandError(
                f"LOCAL_DEMO=true serves over plain http, so only on this machine: listen on "
                f"127.0.0.1, not {_host(listen)}."
            )
        kwargs = waitress_options(listen=listen, threads=options["threads"])
        if settings.BEHIND_PROXY:
            self.stdout.write(
                f"Trusting {', '.join(settings.TRUSTED_PROXY_HEADERS)} from the proxy at "
                f"{settings.TRUSTED_PROXY}."
            )
        # Ctrl+C, or `make run` stopping its children: a clean exit, not a traceback.
        with contextlib.suppress(KeyboardInterrupt):
            serve(application, **kwargs)
