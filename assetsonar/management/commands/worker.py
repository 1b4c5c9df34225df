"""`manage.py worker`: the background worker (django-q2's cluster) under its supervisor.

Use it wherever `qcluster` would run: it stops within WORKER_STOP_TIMEOUT seconds on SIGTERM,
SIGINT or SIGHUP sent to its process group, to itself or to any process of the cluster, hands
back the tasks it fetched but did not start, and leaves no process behind (assetsonar/worker.py).
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand

from assetsonar import worker


class Command(BaseCommand):
    help = "Run the background worker (django-q2 cluster) under a supervisor-safe process."

    def add_arguments(self, parser) -> None:
        # Internal: the supervisor starts the cluster itself with this flag.
        parser.add_argument("--cluster", action="store_true", help="(internal) the cluster itself")

    def handle(self, *args, cluster: bool = False, **options) -> None:
        if cluster:
            worker.run_cluster()  # never returns: it exits with the cluster's code
        sys.exit(worker.supervise())
