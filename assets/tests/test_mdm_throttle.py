"""The cap on simultaneous requests per MDM connection (assets/mdm/throttle.py), against a real
HTTP fake of Jamf Pro that counts the requests it is answering at once."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time

import pytest
from django.db import connection as db

from assets.mdm import MDMError, get_connector, throttle
from assets.mdm.base import token_cache
from assets.models import MDMConnection
from assets.tests.mdm_servers import JamfServer

pytestmark = pytest.mark.django_db


class SlowJamf(JamfServer):
    """Jamf that takes `delay` seconds per lock command and records the most in flight."""

    delay = 0.15

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.most_in_flight = 0
        self.gauge = threading.Lock()
        self.devices = {f"mgmt-{n}" for n in range(40)}

    def route(self, request):
        if request.path != "/api/v2/mdm/commands":
            return super().route(request)
        with self.gauge:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            return super().route(request)
        finally:
            with self.gauge:
                self.in_flight -= 1


@pytest.fixture
def jamf():
    token_cache.clear()
    with SlowJamf() as server:
        yield server
    token_cache.clear()


def saved_connection(server: JamfServer, limit: int) -> MDMConnection:
    conn = MDMConnection(
        name=f"Jamf limit {limit}",
        provider="jamf",
        base_url=server.url,
        max_concurrent_requests=limit,
    )
    conn.set_credentials({"client_id": server.client_id, "client_secret": server.client_secret})
    conn.save()
    return conn


def lock_all(conn: MDMConnection, count: int) -> list:
    """`count` lock commands sent at once from as many threads (as several workers would)."""
    results: list = [None] * count

    def send(n: int) -> None:
        try:
            results[n] = get_connector(conn).lock_device(
                device_id=f"mgmt-{n}", pin="123456", message="", phone="", platform="macos"
            )
        except MDMError as exc:
            results[n] = exc

    threads = [threading.Thread(target=send, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.parametrize("limit", [2, 5])
def test_no_more_requests_in_flight_than_the_connection_allows(jamf, limit):
    conn = saved_connection(jamf, limit)
    token_cache.clear()
    get_connector(conn).access_token()  # one token for all, so only lock commands overlap

    results = lock_all(conn, 12)

    assert all(r is not None and not isinstance(r, Exception) for r in results), results
    assert len(jamf.commands) == 12
    assert jamf.most_in_flight == limit  # reached, never exceeded
    assert jamf.problems == []


def test_without_the_cap_the_same_burst_exceeds_it(jamf, monkeypatch):
    """The fake's gauge can see an excess: with the slot bypassed the burst goes over 5."""
    conn = saved_connection(jamf, 5)
    get_connector(conn).access_token()
    monkeypatch.setattr(throttle, "request_slot", lambda connection: contextlib.nullcontext())

    lock_all(conn, 12)

    assert jamf.most_in_flight > 5


def test_slots_held_elsewhere_are_not_handed_out(jamf, settings):
    """Another process's holder (a second backend: its own session or file descriptors) keeps
    its slots; the request waits until MDM_THROTTLE_WAIT and fails as retryable."""
    settings.MDM_THROTTLE_WAIT = 0.3
    conn = saved_connection(jamf, 2)
    other = throttle._AdvisorySlots() if db.vendor == "postgresql" else throttle._FileSlots()
    held = [other.try_acquire(conn.pk, 2), other.try_acquire(conn.pk, 2)]
    assert sorted(held) == [0, 1]
    assert other.try_acquire(conn.pk, 2) is None

    started = time.monotonic()
    with pytest.raises(MDMError) as caught:
        get_connector(conn).lock_device(
            device_id="mgmt-1", pin="", message="", phone="", platform="ios"
        )
    assert caught.value.kind == "retryable"
    assert "2 requests to the MDM connection “Jamf limit 2” were already in flight" in str(
        caught.value
    )
    assert time.monotonic() - started >= 0.3
    assert jamf.requests_to("/api/v2/mdm/commands") == []

    other.release(conn.pk, held[0])
    result = get_connector(conn).lock_device(
        device_id="mgmt-1", pin="", message="", phone="", platform="ios"
    )
    assert result.command_id
    other.release(conn.pk, held[1])
    if isinstance(other, throttle._AdvisorySlots):
        other.db.close()


def test_a_slot_given_back_in_this_process_is_taken_at_once_by_its_waiter(monkeypatch):
    """A thread waiting for a slot another thread of the process holds takes it when that
    thread gives it back, not at its next poll (made 10 s here, so waiting for it would show)."""
    monkeypatch.setattr(throttle, "POLL_SECONDS", (10.0, 10.0))
    conn = MDMConnection.objects.create(
        name="One slot", provider="simulator", max_concurrent_requests=1
    )
    holding, release, got = threading.Event(), threading.Event(), []

    def holder() -> None:
        with throttle.request_slot(conn):
            holding.set()
            release.wait(5)

    def waiter() -> None:
        started = time.monotonic()
        with throttle.request_slot(conn):
            got.append(time.monotonic() - started)

    first = threading.Thread(target=holder)
    first.start()
    assert holding.wait(5)
    second = threading.Thread(target=waiter)
    second.start()
    time.sleep(0.2)  # the waiter has tried, found the slot taken, and waits
    assert got == []
    release.set()
    first.join(5)
    second.join(5)
    assert len(got) == 1 and 0.2 <= got[0] < 2.0, got
    throttle.close()


@pytest.mark.skipif("db.vendor != 'postgresql'")
def test_a_killed_holder_gives_its_slot_back(jamf, settings):
    """A worker killed while holding a slot: its session ends and PostgreSQL frees the lock."""
    settings.MDM_THROTTLE_WAIT = 5
    conn = saved_connection(jamf, 1)
    params = {k: v for k, v in db.get_connection_params().items() if isinstance(v, str | int)}
    script = (
        "import psycopg, sys, time\n"
        f"c = psycopg.connect(**{params!r}, autocommit=True)\n"
        f"c.execute('SELECT pg_advisory_lock(%s, %s)', "
        f"[{throttle.ADVISORY_NAMESPACE}, {conn.pk * throttle.MAX_SLOTS}])\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        other = throttle._AdvisorySlots()  # as another process would see the slot
        assert other.try_acquire(conn.pk, 1) is None
        other.db.close()  # not left to the garbage collector: the test database is dropped
        holder.kill()
        holder.wait()
        result = get_connector(conn).lock_device(
            device_id="mgmt-2", pin="", message="", phone="", platform="ios"
        )
        assert result.command_id
    finally:
        holder.kill()
        holder.wait()
        throttle.close()


def test_the_limit_is_validated_on_the_connection():
    conn = MDMConnection(name="x", provider="simulator", max_concurrent_requests=0)
    with pytest.raises(Exception) as caught:
        conn.full_clean()
    assert "max_concurrent_requests" in str(caught.value)
