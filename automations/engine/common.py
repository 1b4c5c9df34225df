"""What the actions share: the idempotency key, claiming an attempt, backoff and retry scheduling.

An ActionLog moves pending → running → succeeded / failed / skipped, or → retrying → running ...
While running, `next_attempt_at` is a lease: the time after which the worker doing the attempt
is certainly gone (django-q2 kills a task at its timeout), so another run may take it over.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone

from automations.models import ActionLog

# Seconds to wait after attempt 1, 2, ...: 7 attempts over about five hours (now, 30 s, 2 min,
# 10 min, 30 min, 1 h, 3 h). settings.WEBHOOK_RETRY_DELAYS / MDM_RETRY_DELAYS override it
# (the tests shrink it to zeros).
RETRY_DELAYS: tuple[float, ...] = (30, 120, 600, 1800, 3600, 10800)
# A Retry-After header is honoured up to this many seconds.
MAX_RETRY_AFTER = 3600
# Backoff delays are stretched by up to this fraction, so receivers that failed together do not
# get every retry at the same second.
JITTER = 0.2

FINAL_STATUSES = frozenset(
    {
        ActionLog.Status.SUCCEEDED,
        ActionLog.Status.FAILED,
        ActionLog.Status.SKIPPED,
        ActionLog.Status.CANCELLED,
    }
)
# Scheduled (a delayed action waiting for its time, engine/scheduled.py) is open too: its
# execution is not finished, and actions it holds wait for it.
OPEN_STATUSES = frozenset(
    {
        ActionLog.Status.PENDING,
        ActionLog.Status.RUNNING,
        ActionLog.Status.RETRYING,
        ActionLog.Status.SCHEDULED,
    }
)


def retry_delays(kind: str) -> tuple[float, ...]:
    """The kind's retry delays: its setting (ActionKind.retry_setting), else RETRY_DELAYS."""
    from automations.actions import get_kind

    action_kind = get_kind(kind)
    name = action_kind.retry_setting if action_kind is not None else ""
    return tuple(getattr(settings, name, RETRY_DELAYS) if name else RETRY_DELAYS)


def max_attempts(kind: str) -> int:
    return len(retry_delays(kind)) + 1


def attempt_lease() -> timedelta:
    """How long a running attempt may take before another run may assume its worker died: the
    worker timeout, after which django-q2 has killed the task for sure."""
    return timedelta(seconds=int(settings.Q_CLUSTER.get("timeout") or 120) + 10)


def log_key(event_id: Any, automation_id: int | None, action_id: int, target: str) -> str:
    """The idempotency key of one action on one target for one event and automation."""
    return f"{event_id}:{automation_id}:{action_id}:{target}"


def log_is_due(log: ActionLog, now: datetime) -> bool:
    """May an attempt start now? Pending: yes. Waiting to retry: once its time came. Running:
    only once the lease ran out (the worker that started it is gone)."""
    if log.status == ActionLog.Status.PENDING:
        return True
    if log.status in (ActionLog.Status.RETRYING, ActionLog.Status.RUNNING):
        return log.next_attempt_at is None or log.next_attempt_at <= now
    return False


def log_claim_many(specs: list[dict[str, Any]]) -> list[ActionLog]:
    """Claim many keys in one INSERT (conflicts ignored: a key claimed before stays as it is)
    and return every log, new or earlier, locked for the caller's transaction, in spec order."""
    ActionLog.objects.bulk_create([ActionLog(**spec) for spec in specs], ignore_conflicts=True)
    keys = [spec["key"] for spec in specs]
    found = {log.key: log for log in ActionLog.objects.select_for_update().filter(key__in=keys)}
    return [found[key] for key in keys]


def log_begin(logs: list[ActionLog], now: datetime) -> list[tuple[ActionLog, bool]]:
    """Start an attempt on each due log (one UPDATE): counted and leased in the caller's
    transaction, which commits before any side effect, so a worker killed during the attempt
    still leaves the count behind. The logs must be locked by the caller. Returns the started
    logs, each with whether its previous attempt was interrupted (running, lease over)."""
    due = [log for log in logs if log_is_due(log, now)]
    if not due:
        return []
    lease = now + attempt_lease()
    ActionLog.objects.filter(pk__in=[log.pk for log in due]).update(
        status=ActionLog.Status.RUNNING, attempts=F("attempts") + 1, next_attempt_at=lease
    )
    started = []
    for log in due:
        interrupted = log.status == ActionLog.Status.RUNNING
        log.status, log.attempts, log.next_attempt_at = (
            ActionLog.Status.RUNNING,
            log.attempts + 1,
            lease,
        )
        started.append((log, interrupted))
    return started


class Prep(NamedTuple):
    """One action of one execution to prepare, with the execution's event."""

    execution: Any
    action: Any
    event: Any


@dataclass
class Job:
    """One side effect on one target, prepared (claimed, counted) in the run's first
    transaction: `perform` acts and touches no database; `record` stores what it returned,
    in the run's last transaction."""

    log: ActionLog
    perform: Callable[[], Any]
    record: Callable[[Any], None]
    # The MDMCommand a lock job sends: a later automation or event prepared in the same pass
    # leaves the device to it.
    command: Any = None
    # Sent first, in a pool of its own, and recorded before the other side effects are waited
    # for: a device lock must never wait behind a slow webhook receiver.
    urgent: bool = False
    # Its action's place in the automation (set by the runner): the order of one execution's
    # other jobs.
    position: int = 0


@dataclass
class RunContext:
    """What one run reads once and every action shares."""

    now: datetime = field(default_factory=timezone.now)
    _mdm_enabled: bool | None = None

    @property
    def mdm_commands_enabled(self) -> bool:
        if self._mdm_enabled is None:
            from assetsonar.models import PortalSettings

            self._mdm_enabled = PortalSettings.load().mdm_commands_enabled
        return self._mdm_enabled


def log_finish(log: ActionLog, status: str, insight: str, *, unmet: bool = False) -> None:
    """Close a log with its final status and the insight people read. `unmet`: skipped
    without the target being acted on (a webhook switched off, a device not enrolled), which
    keeps the execution from counting as succeeded (see `executions_finish`)."""
    log.status = status
    log.insight = insight[:500]
    log.next_attempt_at = None
    log.finished_at = timezone.now()
    fields = ["status", "insight", "next_attempt_at", "finished_at"]
    if unmet or log.detail.get("unmet"):
        log.detail = {**log.detail, "unmet": unmet}
        fields.append("detail")
    write_save(log, fields)


class DeferredWrites:
    """Row writes of a batch's fast path, done in bulk (a few queries per model) before its
    transaction commits instead of one query per row. The order of writes to one row is kept
    (later values win, field by field); callers flush before reading rows written here."""

    def __init__(self) -> None:
        self.creates: dict[type, list] = {}
        self.saves: dict[type, dict[Any, tuple[Any, set[str]]]] = {}
        self.last: dict[Callable[[list], None], list] = {}

    def flush(self) -> None:
        for model, objs in self.creates.items():
            model.objects.bulk_create(objs)
        for model, rows in self.saves.items():
            by_fields: dict[tuple[str, ...], list] = {}
            for obj, fields in rows.values():
                by_fields.setdefault(tuple(sorted(fields)), []).append(obj)
            for fields, objs in by_fields.items():
                rows_update(model, objs, list(fields))
        self.creates, self.saves = {}, {}

    def flush_last(self) -> None:
        for apply, items in self.last.items():
            apply(items)
        self.last = {}


# Rows per UPDATE ... FROM (VALUES ...): far below PostgreSQL's 65,535 parameters.
ROWS_PER_UPDATE = 1000


def rows_update(model, objs: list, fields: list[str]) -> None:
    """`bulk_update(objs, fields)`, on PostgreSQL as one UPDATE ... FROM (VALUES ...).

    Django's bulk_update builds a CASE WHEN per object and field: for a batch's few hundred rows
    that cost more Python time than everything else the batch does, and PostgreSQL evaluates
    every CASE for every row. The VALUES list is joined on the primary key instead: linear, with
    each value cast to its column's type. Like bulk_update, `pre_save` is not called.
    """
    if connection.vendor != "postgresql" or len(objs) < 2:
        model.objects.bulk_update(objs, fields)
        return
    meta = model._meta
    columns = [meta.pk, *(meta.get_field(name) for name in fields)]
    qn = connection.ops.quote_name
    placeholder = (
        "(" + ", ".join(f"CAST(%s AS {f.cast_db_type(connection)})" for f in columns) + ")"
    )
    names = ", ".join(qn(f.column) for f in columns)
    assignments = ", ".join(f"{qn(f.column)} = v.{qn(f.column)}" for f in columns[1:])
    table, pk = qn(meta.db_table), qn(meta.pk.column)
    with connection.cursor() as cursor:
        for start in range(0, len(objs), ROWS_PER_UPDATE):
            chunk = objs[start : start + ROWS_PER_UPDATE]
            params = [
                f.get_db_prep_save(getattr(obj, f.attname), connection)
                for obj in chunk
                for f in columns
            ]
            # Only quoted table/column names and column types are formatted in; every value
            # is a parameter.
            cursor.execute(
                f"UPDATE {table} SET {assignments} "  # noqa: S608
                f"FROM (VALUES {', '.join([placeholder] * len(chunk))}) AS v ({names}) "
                f"WHERE {table}.{pk} = v.{pk}",
                params,
            )


_deferred: ContextVar[DeferredWrites | None] = ContextVar("deferred_writes", default=None)


@contextmanager
def deferred_writes() -> Iterator[DeferredWrites]:
    """Collect write_create/write_save in the block; flush them at its end."""
    writes = DeferredWrites()
    token = _deferred.set(writes)
    try:
        yield writes
        writes.flush()
        writes.flush_last()
    finally:
        _deferred.reset(token)


def flush_deferred() -> None:
    """Write the deferred rows now (before reading rows written in the block)."""
    writes = _deferred.get()
    if writes is not None:
        writes.flush()


def write_create(obj) -> None:
    """Insert `obj` now, or with the batch's other rows when writes are deferred."""
    writes = _deferred.get()
    if writes is None:
        obj.save(force_insert=True)
    else:
        writes.creates.setdefault(type(obj), []).append(obj)


def write_last(apply: Callable[[list], None], items: list) -> None:
    """Call `apply` with `items`, now, or once for the whole batch with every caller's items
    just before the batch's transaction commits when writes are deferred. For counts kept in
    rows that every batch updates (a license's seats used): their row lock is then held for
    the last milliseconds of the transaction instead of from the first revocation on, so
    workers' batches do not queue behind each other."""
    writes = _deferred.get()
    if writes is None:
        apply(items)
    else:
        writes.last.setdefault(apply, []).extend(items)


def write_save(obj, fields: list[str]) -> None:
    """Update `fields` of the stored `obj`, now or deferred."""
    writes = _deferred.get()
    if writes is None:
        obj.save(update_fields=fields)
        return
    if obj.pk is None:  # its deferred insert gives it a key
        writes.flush()
    rows = writes.saves.setdefault(type(obj), {})
    _, known = rows.get(obj.pk, (obj, set()))
    rows[obj.pk] = (obj, known | set(fields))


def attempts_in_round(log: ActionLog) -> int:
    """Attempts since the last manual retry (each "Retry failed actions" starts a new budget)."""
    return log.attempts - int(log.detail.get("retry_base", 0))


def next_retry_at(log: ActionLog, *, retry_after: int | None = None) -> datetime | None:
    """When to try again after a retryable failure, or None when the attempts are used up."""
    delays = retry_delays(log.action_kind)
    made = attempts_in_round(log)
    if made > len(delays):
        return None
    delay = float(delays[made - 1])
    delay += delay * JITTER * secrets.randbelow(1001) / 1000
    if retry_after is not None:
        delay = max(delay, float(min(retry_after, MAX_RETRY_AFTER)))
    return timezone.now() + timedelta(seconds=delay)


def schedule_retry(log: ActionLog, when: datetime) -> None:
    """Have django-q2's scheduler run the log's next attempt at `when` (a one-off schedule,
    deleted once it ran), so no worker sleeps while waiting. Call inside the transaction that
    sets the log to retrying; the sweeper re-dispatches it should the schedule be lost."""
    from django_q.models import Schedule

    Schedule.objects.create(
        name=f"Retry action log {log.pk} (attempt {log.attempts + 1})"[:100],
        func="automations.tasks.retry_action",
        args=repr((log.pk,)),
        schedule_type=Schedule.ONCE,
        repeats=-1,
        next_run=when,
    )


def human_duration(seconds: float) -> str:
    """'12 seconds', '4 minutes', '5 hours', '2 days' (rounded to the nearest unit)."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size * 0.95:
            count = max(1, round(seconds / size))
            return f"{count} {unit}{'s' if count != 1 else ''}"
    count = round(seconds)
    return f"{count} second{'s' if count != 1 else ''}"
