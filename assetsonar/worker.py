"""`manage.py worker`: django-q2's cluster under a small supervisor, safe for every way a
supervisor stops a process.

django-q2's own `qcluster` stops cleanly on SIGTERM or SIGINT to its main process only. A SIGTERM
to the whole process group (systemd's default KillMode=control-group, `kill -TERM -<pgid>`,
supervisord's stopasgroup) kills the sentinel and the workers at once (their SIGTERM is the
default action), and the main process then waits forever in its SIGTERM handler: it sets the
stop event, whose condition variable waits on a semaphore for the dead sentinel to wake
(docs/upstream-django-q2-sigterm.md is the report for its maintainers). Its graceful stop also
runs every task already fetched into the worker queue before it exits (up to `queue_limit`),
which takes 20-30 s in a burst.

Two processes here fix both:

- The supervisor (`manage.py worker`, the process systemd, Docker or `make run` starts) starts
  the cluster in a session of its own. On SIGTERM, SIGINT or SIGHUP it asks the cluster to stop
  (SIGTERM to the cluster's main process alone) and, WORKER_STOP_TIMEOUT seconds later (6 by
  default), SIGKILLs whatever is left of the cluster's process group. When the cluster ends on
  its own it clears the group too (no orphaned workers beside a restarted cluster) and exits
  with the cluster's code, so the service manager restarts it. Should the supervisor itself be
  SIGKILLed, the cluster notices within a fraction of a second and stops.
- The cluster (`manage.py worker --cluster`) is django-q2's Cluster with its signals handled by
  flags instead of blocking handlers. Every process of it (sentinel, workers, pusher, monitor)
  answers SIGTERM, SIGINT and SIGHUP by telling the main process, so a signal to the group, to
  the main process or to any one process becomes one orderly stop: the pusher stops fetching,
  tasks fetched but not started are handed back to the broker at once (the ORM broker's lease is
  cleared; a Redis task is queued again), running tasks get until two seconds before the
  deadline to finish, and a task still running then is killed. That is a crash the engine is
  built for: its logs are leased and a lock whose answer was lost is reconciled with the vendor
  before anything is sent again (automations.actions.mdm_lock).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from django_q import cluster as q_cluster
from django_q.brokers.orm import ORM
from django_q.cluster import Sentinel
from django_q.models import OrmQ
from django_q.signing import SignedPackage
from django_q.status import Stat

logger = logging.getLogger("assetsonar.worker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
DEFAULT_STOP_TIMEOUT = 6.0


class SignalFlag:
    """Set by a signal handler, read by the loop that polls it.

    Not a threading.Event: its set() takes a lock that the interrupted main thread may already
    hold inside Event.wait(), and a stop to the process group delivers several signals in a
    row, so a handler calling Event.set() deadlocks the process for good (seen under load).
    Assigning a bool takes no lock."""

    def __init__(self) -> None:
        self.raised = False

    def raise_(self, signum=None, frame=None) -> None:
        self.raised = True


def stop_timeout() -> float:
    """Seconds from a stop signal to the cluster's last process gone (settings
    WORKER_STOP_TIMEOUT). Kept under 10 s: systemd's and Docker's own kill comes at 10 s."""
    return float(getattr(settings, "WORKER_STOP_TIMEOUT", DEFAULT_STOP_TIMEOUT))


# --- The supervisor -------------------------------------------------------------------------------


def supervise() -> int:
    """Run the cluster until a stop signal or its own end; returns the exit code."""
    stopping = SignalFlag()
    for sig in STOP_SIGNALS:
        signal.signal(sig, stopping.raise_)
    manage = Path(settings.BASE_DIR) / "manage.py"
    child = subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
        [sys.executable, str(manage), "worker", "--cluster"],
        cwd=settings.BASE_DIR,
        start_new_session=True,  # a group of its own: cleared as a whole, signalled on purpose
    )
    logger.info("Worker supervisor %s started cluster %s", os.getpid(), child.pid)
    while child.poll() is None and not stopping.raised:
        time.sleep(0.2)  # a signal cuts the sleep short
    if child.poll() is None:
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=stop_timeout())
        except subprocess.TimeoutExpired:
            logger.error("The cluster did not stop within %.0f s; killing it.", stop_timeout())
        _clear_group(child.pid)
        child.wait()
        logger.info("Cluster stopped in %.1f s.", time.monotonic() - started)
        return 0
    _clear_group(child.pid)
    if child.returncode:
        logger.error("The cluster exited with code %s.", child.returncode)
    return child.returncode if child.returncode and child.returncode > 0 else 0


def _clear_group(pgid: int) -> None:
    """SIGKILL what is left of the cluster's process group (orphaned workers, a hung
    process), then reap any child that was handed to us."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    # As PID 1 in a container, orphans are re-parented to this process: reap them.
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


# --- The cluster ----------------------------------------------------------------------------------

_main_pid = 0
_stop_requested = SignalFlag()


def _tell_main(signum, frame) -> None:
    """In every process of the cluster but the main one: have the main process stop it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(_main_pid, signal.SIGTERM)


def _request_stop(signum, frame) -> None:
    """In the main process: only a flag. django-q2's handler does the whole stop inside the
    handler, which deadlocks when the sentinel died meanwhile or a second signal comes."""
    _stop_requested.raise_()


def run_cluster() -> int:
    """django-q2's Cluster with supervisor-safe signals and a bounded, handing-back stop."""
    global _main_pid
    _main_pid = os.getpid()
    q_cluster.Sentinel = GracefulSentinel  # Cluster.start spawns the sentinel by this name
    cluster = q_cluster.Cluster()
    for sig in STOP_SIGNALS:  # after Cluster() installed its own
        signal.signal(sig, _request_stop)
    supervisor = os.getppid()
    try:
        cluster.start()
        while not _stop_requested.raised and cluster.sentinel.is_alive():
            if os.getppid() != supervisor:
                # The supervisor was killed (SIGKILL): stop rather than run on unsupervised
                # beside the cluster a restarted supervisor starts.
                logger.warning("The worker supervisor is gone; stopping the cluster.")
                break
            time.sleep(0.2)
        deadline = time.monotonic() + stop_timeout() - 1
        if cluster.sentinel.is_alive():
            logger.info("Q Cluster %s stopping.", cluster.name)
            # In a thread: setting a multiprocessing Event can block for good if the sentinel
            # died while waiting on it.
            threading.Thread(target=cluster.stop_event.set, daemon=True).start()
            cluster.sentinel.join(timeout=max(0.1, deadline - time.monotonic()))
            if cluster.sentinel.is_alive():
                logger.error("The sentinel did not stop by the deadline.")
            else:
                logger.info("Q Cluster %s has stopped.", cluster.name)
        code = 0 if not cluster.sentinel.is_alive() else 1
    except Exception:
        logger.exception("The cluster failed")
        code = 1
    logging.shutdown()
    # Not a normal exit: multiprocessing's exit hook would join a hung sentinel. What is left of
    # the group is the supervisor's to clear.
    os._exit(code)


class GracefulSentinel(Sentinel):
    """django-q2's Sentinel, with signals that reach the main process and a stop bounded by the
    deadline that hands fetched-but-unstarted tasks back to the broker."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["start"] = False
        super().__init__(*args, **kwargs)
        # Inherited by the workers, pusher and monitor forked from here.
        for sig in STOP_SIGNALS:
            signal.signal(sig, _tell_main)
        self.start()

    def stop(self) -> None:
        deadline = time.monotonic() + max(1.0, stop_timeout() - 2)
        Stat(self).save()
        self.event_out.set()  # the pusher stops fetching
        fetched = []
        # Emptying the queue also frees a pusher blocked on a full one.
        while self.pusher.is_alive() and time.monotonic() < deadline:
            fetched += _drain(self.task_queue, wait=0.05)
        if self.pusher.is_alive():
            logger.warning("The pusher did not stop by the deadline: killed.")
            self.pusher.kill()
        fetched += _drain(self.task_queue, wait=0.2)
        _hand_back(self.broker, fetched)
        for _ in self.pool:
            self.task_queue.put("STOP")
        while any(p.is_alive() for p in self.pool) and time.monotonic() < deadline:
            time.sleep(0.05)
        for p in self.pool:
            if p.is_alive():
                logger.warning("Worker %s still busy at the deadline: killed.", p.pid)
                p.kill()
        self.pool = []
        self.result_queue.put("STOP")  # after the results: the monitor saves them first
        self.monitor.join(timeout=max(0.5, deadline + 1 - time.monotonic()))
        if self.monitor.is_alive():
            logger.warning("The monitor did not finish saving results by the deadline: killed.")
            self.monitor.kill()
        Stat(self).save()


def _drain(task_queue, *, wait: float) -> list[dict]:
    tasks = []
    while True:
        try:
            task = task_queue.get(timeout=wait)
        except queue.Empty:
            return tasks
        if task != "STOP":
            tasks.append(task)


def _hand_back(broker, tasks: list[dict]) -> None:
    """Return fetched tasks to the broker so the next cluster (or another one) runs them now
    rather than after the broker's retry time."""
    if not tasks:
        return
    if isinstance(broker, ORM):
        OrmQ.objects.filter(pk__in=[t["ack_id"] for t in tasks]).update(
            lock=timezone.now() - timedelta(seconds=1)
        )
    else:
        for task in tasks:
            payload = {k: v for k, v in task.items() if k not in ("ack_id", "cluster")}
            broker.enqueue(SignedPackage.dumps(payload))
    logger.info("Handed %s fetched task(s) back to the broker.", len(tasks))
