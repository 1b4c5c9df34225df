"""The HR CSV import: every row is checked before anything is written, then all of it is written
in one short transaction, or nothing.

Members are matched by email, case-insensitively. A column left out of the file leaves that field
alone; a column present sets it, and a blank cell clears an optional field (department, location,
title, employee_id, manager_email, personal_email, last_working_day as YYYY-MM-DD, time_zone as an
IANA name). A blank employment_type, status or deactivate_on_last_day (yes/no) keeps the current
value (new members get the defaults; the option's is the portal setting).

Two phases, so that a file of many thousand rows holds the database's write lock (SQLite has one
for the whole database) for seconds, not for as long as checking it takes:

1. Check, outside any transaction and with reads only: parse the file, load the members it names
   in a few queries, and validate every row in memory (fields, choices, repeats in the file,
   employee IDs taken in the database, managers, manager cycles). Any problem: a ValidationError
   that names every line, and nothing was written.
2. Write, in one transaction: check that no member the file touches changed since phase 1, then
   bulk-create the new members, bulk-update changed profiles and managers, bulk-insert their audit
   rows. Status changes are not bulk writes: each goes through member_deactivate /
   member_reactivate, a Member.save() that the post_save trigger (automations/signals.py) turns
   into an automation event exactly as for a deactivation in the portal.
"""

from __future__ import annotations

import copy
import csv
import functools
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TextIO

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from assetsonar.audit import audit_build, model_changes
from assetsonar.bulk import rows_update
from assetsonar.models import AuditEvent, PortalSettings
from assetsonar.tallies import tally_move
from members.models import Member
from members.services import member_bulk_deactivate, member_reactivate

REQUIRED_COLUMNS = ["full_name", "email"]
COLUMNS = [
    "full_name",
    "email",
    "employee_id",
    "department",
    "location",
    "title",
    "employment_type",
    "manager_email",
    "status",
    "deactivation_reason",
    "personal_email",
    "last_working_day",
    "time_zone",
    "deactivate_on_last_day",
]
# Profile columns that map one to one onto Member fields (manager_email and status are resolved).
PROFILE_COLUMNS = [
    "full_name",
    "employee_id",
    "department",
    "location",
    "title",
    "employment_type",
    "personal_email",
    "last_working_day",
    "time_zone",
    "deactivate_on_last_day",
]
YES = {"yes", "y", "true", "1", "on"}
NO = {"no", "n", "false", "0", "off"}
DEFAULT_DEACTIVATION_REASON = "Deactivated by HR import"


def _batch() -> int:
    """Values per `IN (...)` when loading the file's members: under SQLite's limit on query
    parameters (999 in some builds), and few round trips for 100,000 rows on PostgreSQL."""
    return 500 if connection.features.max_query_params else 5000


# A file naming more members than this share of the table reads the whole table (see
# _load_by_email).
WHOLE_TABLE_SHARE = 0.2
# How often (rows) progress is reported.
PROGRESS_EVERY = 1000

# progress(stage, done, total): stage is "Checking" or "Writing".
Progress = Callable[[str, int, int], None]


@dataclass
class ImportResult:
    """What an import changed (or, with dry_run, would change)."""

    created: int = 0
    updated: int = 0
    deactivated: int = 0
    reactivated: int = 0
    unchanged: int = 0
    dry_run: bool = False
    # How long the write transaction (and so the write lock) was held, in seconds.
    write_seconds: float = 0.0


@dataclass
class _Row:
    line: int
    # Unsaved for a new member; for an existing one a changed copy, or `existing` while unchanged.
    member: Member
    existing: Member | None
    profile: dict[str, Any]  # the profile fields this row sets
    manager_email: str | None  # None: column absent; "": no manager
    status: str  # "" keeps the current status
    reason: str
    outcome: set[str] = field(default_factory=set)

    @property
    def node(self) -> int | str:
        """This member in the manager graph: its pk, or its email while it is not created."""
        return self.existing.pk if self.existing else self.member.email.lower()


def _choice(value: str, choices: type[Member.EmploymentType] | type[Member.Status]) -> str | None:
    """The stored value for `value` given as a value or a label ("full_time" or "Full-time")."""
    return _choice_map(choices).get(value.strip().casefold())


@functools.cache
def _choice_map(choices: type[Member.EmploymentType] | type[Member.Status]) -> dict[str, str]:
    names = {str(label).casefold(): stored for stored, label in choices.choices}
    return names | {stored.casefold(): stored for stored, _ in choices.choices}


def _messages(line: int, error: ValidationError) -> list[str]:
    if not hasattr(error, "error_dict"):
        return [f"line {line}: {message}" for message in error.messages]
    messages = []
    for name, field_messages in error.message_dict.items():
        prefix = f"line {line}: " if name == NON_FIELD_ERRORS else f"line {line}: {name}: "
        messages += [prefix + message for message in field_messages]
    return messages


def _line_order(message: str) -> int:
    return int(message.split(":")[0][5:])


def _read(file: TextIO) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    reader = csv.DictReader(file)
    try:
        fieldnames = reader.fieldnames
    except csv.Error as error:
        raise ValidationError(f"line 1: {_csv_problem(error)}") from error
    header = [name.strip() for name in (fieldnames or [])]
    if not header:
        raise ValidationError("The file is empty: the first line must name the columns.")
    if any("\x00" in name for name in header):
        raise ValidationError(f"line 1: {_NUL}")
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        raise ValidationError(
            f"Unknown column{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. "
            f"The columns are: {', '.join(COLUMNS)}."
        )
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise ValidationError(
            f"Missing required column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}."
        )
    reader.fieldnames = header
    rows = []
    errors = []
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            # The csv module cannot resynchronise after a malformed field: report what was found
            # up to here and this line.
            # DictReader counts a line only once it is read; its reader counts the failed one.
            errors.append(f"line {reader.reader.line_num}: {_csv_problem(error)}")
            break
        if values.get(None):
            errors.append(f"line {reader.line_num}: more values than columns.")
            continue
        row = {k: (v or "").strip() for k, v in values.items()}
        nul = [name for name, value in row.items() if "\x00" in value]
        if nul:
            errors += [f"line {reader.line_num}: {name}: {_NUL}" for name in nul]
            continue
        rows.append((reader.line_num, row))
    if errors:
        raise ValidationError(errors)
    return header, rows


# A NUL is never part of a name or an address; it means the file is not the text CSV it claims
# to be (a spreadsheet's binary format, UTF-16 saved without telling), and PostgreSQL refuses it.
_NUL = "contains a NUL character (byte 0): save the file as UTF-8 CSV text and try again."


def _csv_problem(error: csv.Error) -> str:
    if "field larger than field limit" in str(error):
        limit = csv.field_size_limit()
        return (
            f"a value is longer than {limit:,} characters (no column takes more than 500); "
            "check the file for a missing closing quote."
        )
    return f"the file is not valid CSV here ({error})."


def _load_by_email(emails: Iterable[str]) -> dict[str, Member]:
    """Members by lower-case email: in batches that the LOWER(email) index answers, or, when the
    file names a good part of all members (a full HR export), in one pass over the table, which
    costs less than tens of thousands of query parameters."""
    emails = set(emails)
    found: dict[str, Member] = {}
    if len(emails) > WHOLE_TABLE_SHARE * max(1, Member.objects.count()):
        for member in Member.objects.iterator(chunk_size=5000):
            if member.email.lower() in emails:
                found[member.email.lower()] = member
        return found
    ordered = sorted(emails)
    batch_size = _batch()
    for start in range(0, len(ordered), batch_size):
        batch = ordered[start : start + batch_size]
        for member in Member.objects.annotate(email_lower=Lower("email")).filter(
            email_lower__in=batch
        ):
            found[member.email.lower()] = member
    return found


def _employee_id_owners(employee_ids: Iterable[str]) -> dict[str, int]:
    ids = sorted(employee_ids)
    owners: dict[str, int] = {}
    batch_size = _batch()
    for start in range(0, len(ids), batch_size):
        owners.update(
            Member.objects.filter(employee_id__in=ids[start : start + batch_size]).values_list(
                "employee_id", "pk"
            )
        )
    return owners


def _profile(header: list[str], values: dict[str, str], errors: dict) -> dict[str, Any]:
    profile: dict[str, Any] = {}
    for name in PROFILE_COLUMNS:
        if name not in header:
            continue
        value = values[name]
        if name == "employment_type":
            if not value:
                continue
            stored = _choice(value, Member.EmploymentType)
            if stored is None:
                labels = ", ".join(stored for stored, _ in Member.EmploymentType.choices)
                errors[name] = [f"Use one of {labels}."]
                continue
            value = stored
        elif name == "last_working_day":
            if value:
                try:
                    if len(value) != 10:
                        raise ValueError
                    value = date.fromisoformat(value)
                except ValueError:
                    errors[name] = [
                        f"Enter the date as YYYY-MM-DD, e.g. 2026-12-13 (not “{value}”)."
                    ]
                    continue
            else:
                value = None
        elif name == "deactivate_on_last_day":
            if not value:
                continue
            if value.casefold() not in YES | NO:
                errors[name] = ["Use yes or no."]
                continue
            value = value.casefold() in YES
        profile[name] = value
    return profile


# Fields a new member's row does not set (the services and the import's second phase do).
_NOT_FROM_THE_FILE = ["manager", "status", "deactivated_at", "deactivated_by"]


class _Checker:
    """Phase 1: every row validated against the file and what the database holds now."""

    def __init__(self, header: list[str], values: list[tuple[int, dict[str, str]]]) -> None:
        self.header = header
        self.values = values
        self.file_emails = {row["email"].lower() for _, row in values if row["email"]}
        managers = {
            row.get("manager_email", "").lower() for _, row in values if row.get("manager_email")
        }
        self.members = _load_by_email(self.file_emails | managers)
        file_ids = {row["employee_id"] for _, row in values if row.get("employee_id")}
        self.employee_ids = _employee_id_owners(file_ids) if "employee_id" in header else {}
        # The manager graph (member → manager) as it will be: the database's, then each row's
        # change in file order, so a cycle is found at the row that would close it.
        self.links: dict[int | str, int | str | None] = {}
        if "manager_email" in header:
            self.links.update(Member.objects.values_list("pk", "manager_id"))

    @functools.cached_property
    def option_default(self) -> bool:
        """A new member's "deactivate on the last working day" when the file does not say
        (read once, and only when the file adds someone)."""
        return PortalSettings.load().deactivate_on_last_day_default

    def check(self, progress: Progress | None) -> list[_Row]:
        rows, errors = [], []
        total = len(self.values)
        for done, (line, values) in enumerate(self.values, start=1):
            try:
                rows.append(self._row(line, values))
            except ValidationError as error:
                errors += _messages(line, error)
            if progress and (done % PROGRESS_EVERY == 0 or done == total):
                progress("Checking", done, total)
        errors += self._check_file(rows)
        if not errors:
            errors += self._check_managers(rows)
        if errors:
            # In file order; sorted() is stable, so a line's own messages keep their order.
            raise ValidationError(sorted(errors, key=_line_order))
        return rows

    def _row(self, line: int, values: dict[str, str]) -> _Row:
        """One row as a validated member, or a ValidationError naming its fields."""
        errors: dict[str, list[str]] = {}
        email = values["email"]
        existing = self.members.get(email.lower()) if email else None
        profile = _profile(self.header, values, errors)

        if existing:
            # Only the fields the row changes are checked (what is stored was valid), on a copy
            # so that `existing` keeps the stored values; most rows change nothing.
            changed = {k for k, v in profile.items() if getattr(existing, k) != v}
            member = copy.copy(existing) if changed else existing
            exclude = [f.name for f in Member._meta.fields if f.name not in changed]
        else:
            member = Member(email=email, deactivate_on_last_day=self.option_default)
            exclude = _NOT_FROM_THE_FILE
        for name, value in profile.items():
            setattr(member, name, value)
        if len(exclude) < len(Member._meta.fields):
            try:
                # Field by field only: the model's constraints would cost queries per row; the
                # uniqueness they stand for is checked below against the file and the database.
                member.clean_fields(exclude=exclude)
                member.clean()
            except ValidationError as error:
                for name, messages in error.message_dict.items():
                    errors.setdefault(name, []).extend(messages)
        owner = self.employee_ids.get(profile.get("employee_id", ""))
        if owner is not None and owner != (existing.pk if existing else None):
            errors.setdefault(NON_FIELD_ERRORS, []).append(
                "Another member already has this employee ID."
            )

        status = ""
        if "status" in self.header and values["status"]:
            status = _choice(values["status"], Member.Status) or ""
            if not status:
                errors["status"] = ["Use active or deactivated."]
        reason = values.get("deactivation_reason", "")
        if len(reason) > 500:
            errors["deactivation_reason"] = ["Keep the reason under 500 characters."]
        manager_email = values["manager_email"] if "manager_email" in self.header else None
        if manager_email and len(manager_email) > 254:
            errors["manager_email"] = ["Keep the email under 254 characters."]
        elif manager_email and email and manager_email.lower() == email.lower():
            errors["manager_email"] = ["A member cannot report to themselves."]
        elif (
            manager_email
            and manager_email.lower() not in self.file_emails
            and manager_email.lower() not in self.members
        ):
            errors["manager_email"] = [f"No member has the email {manager_email}."]
        if errors:
            raise ValidationError(errors)
        return _Row(
            line=line,
            member=member,
            existing=existing,
            profile=profile,
            manager_email=manager_email,
            status=status,
            reason=reason,
        )

    def _check_file(self, rows: list[_Row]) -> list[str]:
        """What only the whole file shows: repeated emails and employee IDs."""
        errors = []
        emails: dict[str, int] = {}
        employee_ids: dict[str, int] = {}
        for row in rows:
            email = row.member.email.lower()
            if email in emails:
                errors.append(f"line {row.line}: email: Also on line {emails[email]}.")
            emails.setdefault(email, row.line)
            employee_id = row.member.employee_id
            if employee_id and employee_id in employee_ids:
                errors.append(
                    f"line {row.line}: employee_id: Also on line {employee_ids[employee_id]}."
                )
            employee_ids.setdefault(employee_id, row.line)
        return errors

    def manager_node(self, email: str) -> int | str:
        """A manager named in the file: the row's member, or the member in the database."""
        email = email.lower()
        member = self.members.get(email)
        return member.pk if member else email

    def _check_managers(self, rows: list[_Row]) -> list[str]:
        errors = []
        links = self.links
        for row in rows:
            links.setdefault(row.node, None)
        for row in rows:
            if row.manager_email is None:
                continue
            manager = self.manager_node(row.manager_email) if row.manager_email else None
            # Walk up from the new manager; reaching this member again closes a cycle. Chains
            # in the graph have no cycle (each change is checked), so the walk ends.
            seen, node = {row.node}, manager
            while node is not None and node not in seen:
                seen.add(node)
                node = links.get(node)
            if node is not None:
                errors.append(
                    f"line {row.line}: manager: "
                    "A member cannot report to themselves, even indirectly."
                )
                continue
            links[row.node] = manager
        return errors


class _Stale(Exception):
    pass


def _check_unchanged(rows: list[_Row], checker: _Checker) -> None:
    """Inside the write transaction: the members this import will write are still as phase 1
    read them, and locked until it commits. Members it leaves unchanged are not locked (on
    PostgreSQL a row lock is a write to the row; a nightly export names every member)."""
    read = {row.existing.pk: row.existing.updated_at for row in rows if _writes(row, checker)}
    pks = sorted(read)
    now: dict[int, Any] = {}
    batch_size = _batch()
    for start in range(0, len(pks), batch_size):
        now.update(
            Member.objects.select_for_update()
            .filter(pk__in=pks[start : start + batch_size])
            .values_list("pk", "updated_at")
        )
    if now != read:
        raise _Stale


def _writes(row: _Row, checker: _Checker) -> bool:
    """Whether the import will write this existing member (profile, manager or status)."""
    if row.existing is None:
        return False
    if row.member is not row.existing or (row.status and row.status != row.existing.status):
        return True
    if row.manager_email is None:
        return False
    manager = checker.manager_node(row.manager_email) if row.manager_email else None
    return manager != row.existing.manager_id


def _write(rows: list[_Row], checker: _Checker, actor: Any, progress: Progress | None) -> None:
    """Phase 2, inside the caller's transaction."""
    total = len(rows)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        before, done = done, done + count
        if progress and (done // PROGRESS_EVERY > before // PROGRESS_EVERY or done == total):
            progress("Writing", done, total)

    _check_unchanged(rows, checker)
    now = timezone.now()
    audits: list[AuditEvent] = []
    new = [row for row in rows if row.existing is None]
    Member.objects.bulk_create([row.member for row in new], batch_size=1000)
    # The dashboard's member tallies, as member_create keeps them (assetsonar/tallies.py).
    created = Counter(row.member.status for row in new)
    tally_move(**{f"members__{status}": count for status, count in created.items()})
    pks: dict[int | str, int] = {m.pk: m.pk for m in checker.members.values()}
    for row in new:
        row.outcome.add("created")
        pks[row.member.email.lower()] = row.member.pk
        audits.append(audit_build(action=AuditEvent.Action.CREATED, actor=actor, obj=row.member))

    fields = [name for name in PROFILE_COLUMNS if name in checker.header]
    with_managers = "manager_email" in checker.header
    names = _manager_names(rows, checker) if with_managers else {}
    changed: list[Member] = []
    for row in rows:
        member = row.member
        if with_managers and row.manager_email is not None:
            node = checker.manager_node(row.manager_email) if row.manager_email else None
            manager_id = pks[node] if node is not None else None
            if manager_id != member.manager_id:
                if member is row.existing:  # unchanged so far, so not copied yet
                    member = row.member = copy.copy(member)
                member.manager_id = manager_id
        if row.existing is None:
            if member.manager_id is not None:
                changed.append(member)
            continue
        before = {name: getattr(row.existing, name) for name in fields}
        changes = model_changes(member, before, fields)
        if with_managers and member.manager_id != row.existing.manager_id:
            # By name, as member_update records it; ids would make the audit trail unreadable.
            changes["manager"] = [names.get(row.existing.manager_id), names.get(member.manager_id)]
        if changes:
            member.updated_at = now
            changed.append(member)
            row.outcome.add("updated")
            audits.append(
                audit_build(
                    action=AuditEvent.Action.CHANGED, actor=actor, obj=member, changes=changes
                )
            )
    # Profile fields and managers only: a status is never written in bulk (no signal would fire).
    written = [*fields, "manager"] if with_managers else fields
    rows_update(Member, changed, [*written, "updated_at"])
    AuditEvent.objects.bulk_create(audits, batch_size=1000)

    status_rows = [row for row in rows if row.status and row.status != _status_now(row)]
    advance(total - len(status_rows))
    # Through the member services, one save per member: each deactivation fires the trigger.
    leaving: dict[str, list[_Row]] = {}
    for row in status_rows:
        if row.status == Member.Status.DEACTIVATED:
            leaving.setdefault(row.reason or DEFAULT_DEACTIVATION_REASON, []).append(row)
    for reason, group in leaving.items():
        for start in range(0, len(group), PROGRESS_EVERY):
            batch = group[start : start + PROGRESS_EVERY]
            ids = [row.member.pk for row in batch]
            if member_bulk_deactivate(member_ids=ids, actor=actor, reason=reason) != len(ids):
                raise _Stale
            for row in batch:
                row.outcome.add("deactivated")
            advance(len(batch))
    for row in status_rows:
        if row.status == Member.Status.ACTIVE:
            _, did = member_reactivate(member=row.member.pk, actor=actor)
            if not did:
                raise _Stale
            row.outcome.add("reactivated")
            advance(1)


def _status_now(row: _Row) -> str:
    """The status as phase 1 read it (still true: the row is locked and unchanged since)."""
    return row.existing.status if row.existing else Member.Status.ACTIVE


def _manager_names(rows: list[_Row], checker: _Checker) -> dict[int | None, str | None]:
    """Names of the managers before and after, for the audit rows (one query per batch)."""
    names: dict[int | None, str | None] = {None: None}
    names.update((m.pk, str(m)) for m in checker.members.values())
    names.update((row.member.pk, str(row.member)) for row in rows)
    missing = sorted(
        {row.existing.manager_id for row in rows if row.existing} - set(names), key=int
    )
    batch_size = _batch()
    for start in range(0, len(missing), batch_size):
        names.update(
            Member.objects.filter(pk__in=missing[start : start + batch_size]).values_list(
                "pk", "full_name"
            )
        )
    return names


def members_import_csv(
    *, file: TextIO, actor: Any, dry_run: bool = False, progress: Progress | None = None
) -> ImportResult:
    """Create, update, deactivate and reactivate members from an HR CSV export.

    Raises ValidationError listing every problem ("line 7: email: Enter a valid email address.")
    and writes nothing if any row is invalid. With dry_run the import runs in full and is rolled
    back, so the counts are exact and no event or audit row is kept. `progress(stage, done,
    total)` is called every PROGRESS_EVERY rows while checking and while writing.
    """
    header, values = _read(file)
    checker = _Checker(header, values)
    rows = checker.check(progress)
    result = ImportResult(dry_run=dry_run)
    started = time.monotonic()
    try:
        with transaction.atomic():
            _write(rows, checker, actor, progress)
            if dry_run:
                transaction.set_rollback(True)
            # The lock ends with the COMMIT that follows (milliseconds); the events are handed to
            # the worker after it, outside the lock.
            written = time.monotonic()
    except _Stale as stale:
        raise ValidationError(
            "Members in the file were changed while it was being checked (in the portal or by "
            "another import). Nothing was imported: run the import again."
        ) from stale
    except IntegrityError as error:
        raise ValidationError(
            "The database refused the import, most likely because a member with an email or "
            "employee ID in the file was saved while it was being checked. Nothing was imported: "
            f"run the import again. ({error})"
        ) from error
    result.write_seconds = written - started
    for row in rows:
        for name in ("created", "updated", "deactivated", "reactivated"):
            if name in row.outcome:
                setattr(result, name, getattr(result, name) + 1)
        if not row.outcome:
            result.unchanged += 1
    return result
