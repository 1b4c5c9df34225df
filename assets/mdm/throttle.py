"""A cap on simultaneous requests to each MDM connection, across every worker and host.

Jamf asks API clients to keep at most 5 requests in flight (Intune and Kandji throttle bursts
too); a burst of offboardings run by several workers, each sending a few locks at once, would
otherwise exceed that. Each connection has `max_concurrent_requests` slots (default 5). A
request takes a free slot before it is sent and gives it back when the answer is read; when
every slot is taken it waits (up to MDM_THROTTLE_WAIT seconds) and then fails as a retryable
error, so the engine tries the lock again later. A slot given back by a thread of the same
process wakes that process's waiters at once; one given back by another process is seen at the
next poll (every 10-50 ms).

Where the slots live:
- PostgreSQL: session advisory locks, pg_try_advisory_lock(namespace, connection * 64 + slot),
  on one extra database connection per process (autocommit, outside every transaction, so a
  slot is visible to all other processes at once). The database releases the locks of a
  process that dies with its session: no lease to expire, nothing to clean up. Threads of one
  process share that session, where advisory locks are re-entrant, so the process also keeps
  the set of slots its threads hold.
- SQLite (one host by definition): an exclusive flock() on one file per slot, released by the
  kernel when the holder exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import random
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connections

# The first key of every advisory lock taken here ("MDM" in ASCII): other users of advisory
# locks in the same database pick other numbers.
ADVISORY_NAMESPACE = 0x4D444D
MAX_SLOTS = 64  # the model's validator allows at most this many
POLL_SECONDS = (0.01, 0.05)  # a random pause in this range between attempts
DEFAULT_LIMIT = 5


def limit_of(connection) -> int:
    return max(1, min(MAX_SLOTS, getattr(connection, "max_concurrent_requests", DEFAULT_LIMIT)))


class _AdvisorySlots:
    """Slots as PostgreSQL session advisory locks, on this process's own connection."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.pid = None
        self.db = None
        self.held: set[tuple[int, int]] = set()

    def _connection(self):
        # A connection made before a fork belongs to the parent: open a new one in the child.
        if self.db is None or self.pid != os.getpid():
            self.db = connections.create_connection("default")
            self.db.inc_thread_sharing()  # used from every thread, one at a time (the mutex)
            self.pid = os.getpid()
            self.held = set()
        self.db.ensure_connection()
        return self.db

    def _run(self, sql: str, params: list):
        try:
            # On the driver's connection, not through Django's cursor wrapper: two of these run
            # per MDM request, and the wrapper doubles their client CPU (0.35 -> 0.18 ms for a
            # slot taken and given back). Errors are still Django's (wrap_database_errors).
            db = self._connection()
            with db.wrap_database_errors:
                return db.connection.execute(sql, params).fetchone()[0]
        except DatabaseError:
            # The session is gone (server restart, network), and with it every lock it held.
            with contextlib.suppress(Exception):
                self.db.close()
            self.db = None
            raise

    def try_acquire(self, connection_id: int, limit: int) -> int | None:
        with self.mutex:
            for slot in random.sample(range(limit), limit):
                key = (connection_id, slot)
                if key in self.held:
                    continue
                if self._run(
                    "SELECT pg_try_advisory_lock(%s, %s)",
                    [ADVISORY_NAMESPACE, connection_id * MAX_SLOTS + slot],
                ):
                    self.held.add(key)
                    return slot
        return None

    def release(self, connection_id: int, slot: int) -> None:
        with self.mutex:
            if (connection_id, slot) not in self.held:
                return
            self.held.discard((connection_id, slot))
            with contextlib.suppress(DatabaseError):
                self._run(
                    "SELECT pg_advisory_unlock(%s, %s)",
                    [ADVISORY_NAMESPACE, connection_id * MAX_SLOTS + slot],
                )


class _FileSlots:
    """Slots as exclusive flock()s on files named after the database (one host)."""

    def __init__(self) -> None:
        self.files: dict[tuple[int, int], int] = {}
        self.mutex = threading.Lock()

    def _directory(self) -> Path:
        name = str(settings.DATABASES["default"]["NAME"])
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"assetsonar-mdm-slots-{digest}"
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    def try_acquire(self, connection_id: int, limit: int) -> int | None:
        directory = self._directory()
        for slot in random.sample(range(limit), limit):
            fd = os.open(directory / f"{connection_id}-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            with self.mutex:
                self.files[(connection_id, slot)] = fd
            return slot
        return None

    def release(self, connection_id: int, slot: int) -> None:
        with self.mutex:
            fd = self.files.pop((connection_id, slot), None)
        if fd is not None:
            os.close(fd)  # closing the only descriptor releases the flock


_backends: dict[str, object] = {}


def close() -> None:
    """Close this process's slot connection (its slots are freed with it); for test teardown."""
    backend = _backends.get("postgresql")
    if backend is not None and backend.db is not None:
        with backend.mutex:
            backend.db.close()
            backend.db = None
            backend.held = set()


def _backend():
    vendor = connections["default"].vendor
    if vendor not in _backends:
        _backends[vendor] = _AdvisorySlots() if vendor == "postgresql" else _FileSlots()
    return _backends[vendor]


class _Releases:
    """Slots given back in this process, counted per MDM connection, so that its waiting
    threads take a slot the moment another of its threads gives one back. Polling alone left a
    freed slot idle until a waiter's pause (10-50 ms) ran out: as long again as a request to a
    vendor answering in 20 ms."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.counts: dict[int, int] = {}

    def seen(self, connection_id: int) -> int:
        with self.changed:
            return self.counts.get(connection_id, 0)

    def given_back(self, connection_id: int) -> None:
        with self.changed:
            self.counts[connection_id] = self.counts.get(connection_id, 0) + 1
            self.changed.notify_all()

    def wait(self, connection_id: int, seen: int, timeout: float) -> None:
        """Until a slot of the connection is given back here after `seen`, or `timeout`."""
        with self.changed:
            self.changed.wait_for(lambda: self.counts.get(connection_id, 0) != seen, timeout)


_releases = _Releases()


@contextlib.contextmanager
def request_slot(connection) -> Iterator[int]:
    """Hold one of the connection's request slots for the duration of the block."""
    if connection.pk is None:  # an unsaved connection (a form's test) has no shared slots
        yield -1
        return
    backend = _backend()
    limit = limit_of(connection)
    wait = getattr(settings, "MDM_THROTTLE_WAIT", 30)
    deadline = time.monotonic() + wait
    while True:
        seen = _releases.seen(connection.pk)  # before trying: a release meanwhile is not missed
        if (slot := backend.try_acquire(connection.pk, limit)) is not None:
            break
        if time.monotonic() >= deadline:
            from assets.mdm.base import MDMError  # base imports this module

            raise MDMError(
                f"{limit} requests to the MDM connection “{connection.name}” were already in "
                f"flight for {wait} s (its limit of simultaneous requests); the command is "
                "tried again later.",
                kind="retryable",
            )
        pause = random.uniform(*POLL_SECONDS)  # noqa: S311 - jitter, not a secret
        _releases.wait(connection.pk, seen, min(pause, max(0.0, deadline - time.monotonic())))
    try:
        yield slot
    finally:
        backend.release(connection.pk, slot)
        _releases.given_back(connection.pk)
