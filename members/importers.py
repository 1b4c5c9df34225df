"""The HR CSV import: validate every row, then write all of it through the member services in one
transaction, or nothing.

Members are matched by email, case-insensitively. A column left out of the file leaves that field
alone; a column present sets it, and a blank cell clears an optional field (department, location,
title, employee_id, manager_email). A blank employment_type or status keeps the current value (new
members get the defaults). Status changes go through member_deactivate / member_reactivate, so the
deactivation trigger fires exactly as it does for the portal.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import Any, TextIO

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction

from members.models import Member
from members.services import (
    member_create,
    member_deactivate,
    member_reactivate,
    member_update,
)

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
]
# Profile columns that map one to one onto Member fields (manager_email and status are resolved).
PROFILE_COLUMNS = ["full_name", "employee_id", "department", "location", "title", "employment_type"]
DEFAULT_DEACTIVATION_REASON = "Deactivated by HR import"


@dataclass
class ImportResult:
    """What an import changed (or, with dry_run, would change)."""

    created: int = 0
    updated: int = 0
    deactivated: int = 0
    reactivated: int = 0
    unchanged: int = 0
    dry_run: bool = False


@dataclass
class _Row:
    line: int
    member: Member  # unsaved for a new member; the validated, changed copy for an existing one
    existing: Member | None
    profile: dict[str, Any]  # the profile fields this row sets
    manager_email: str | None  # None: column absent; "": no manager
    status: str  # "" keeps the current status
    reason: str
    outcome: set[str] = field(default_factory=set)


def _choice(value: str, choices: type[Member.EmploymentType] | type[Member.Status]) -> str | None:
    """The stored value for `value` given as a value or a label ("full_time" or "Full-time")."""
    wanted = value.strip().casefold()
    for stored, label in choices.choices:
        if wanted in (stored.casefold(), str(label).casefold()):
            return stored
    return None


def _messages(line: int, error: ValidationError) -> list[str]:
    if not hasattr(error, "error_dict"):
        return [f"line {line}: {message}" for message in error.messages]
    messages = []
    for name, field_messages in error.message_dict.items():
        prefix = f"line {line}: " if name == NON_FIELD_ERRORS else f"line {line}: {name}: "
        messages += [prefix + message for message in field_messages]
    return messages


def _read(file: TextIO) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    reader = csv.DictReader(file)
    header = [name.strip() for name in (reader.fieldnames or [])]
    if not header:
        raise ValidationError("The file is empty: the first line must name the columns.")
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
    for values in reader:
        if values.get(None):
            errors.append(f"line {reader.line_num}: more values than columns.")
            continue
        rows.append((reader.line_num, {k: (v or "").strip() for k, v in values.items()}))
    if errors:
        raise ValidationError(errors)
    return header, rows


def _validate(header: list[str], values: dict[str, str], line: int, file_emails: set[str]) -> _Row:
    """One row as a validated member, or a ValidationError naming its fields."""
    errors: dict[str, list[str]] = {}
    email = values["email"]
    existing = Member.objects.filter(email__iexact=email).first() if email else None
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
        profile[name] = value

    # A copy, so the row's changes are validated without touching `existing`.
    member = Member.objects.get(pk=existing.pk) if existing else Member(email=email)
    for name, value in profile.items():
        setattr(member, name, value)
    try:
        # The manager is checked against the file and the database below; the status is set
        # by the services.
        member.full_clean(exclude=["manager", "status", "deactivated_at"])
    except ValidationError as error:
        for name, messages in error.message_dict.items():
            errors.setdefault(name, []).extend(messages)

    status = ""
    if "status" in header and values["status"]:
        status = _choice(values["status"], Member.Status) or ""
        if not status:
            errors["status"] = ["Use active or deactivated."]
    reason = values.get("deactivation_reason", "")
    if len(reason) > 500:
        errors["deactivation_reason"] = ["Keep the reason under 500 characters."]
    manager_email = values["manager_email"] if "manager_email" in header else None
    if manager_email and email and manager_email.casefold() == email.casefold():
        errors["manager_email"] = ["A member cannot report to themselves."]
    elif (
        manager_email
        and manager_email.casefold() not in file_emails
        and not Member.objects.filter(email__iexact=manager_email).exists()
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


def _check_file(rows: list[_Row]) -> list[str]:
    """What only the whole file shows: repeated emails and employee IDs."""
    errors = []
    emails: dict[str, int] = {}
    employee_ids: dict[str, int] = {}
    for row in rows:
        email = row.member.email.casefold()
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


class _RowFailed(Exception):
    def __init__(self, line: int, error: ValidationError) -> None:
        super().__init__(line)
        self.messages = _messages(line, error)


def _apply(rows: list[_Row], actor: Any) -> None:
    """Write the validated rows: profiles first, then managers (who may be new), then statuses."""
    by_email: dict[str, Member] = {}
    for row in rows:
        if row.existing is None:
            member = member_create(actor=actor, email=row.member.email, **row.profile)
            row.outcome.add("created")
        else:
            if any(getattr(row.existing, name) != value for name, value in row.profile.items()):
                row.outcome.add("updated")
            member = member_update(member=row.existing, actor=actor, **row.profile)
        by_email[member.email.casefold()] = member
        row.member = member
    for row in rows:
        if row.manager_email is None:
            continue
        manager = None
        if row.manager_email:
            manager = by_email.get(row.manager_email.casefold()) or Member.objects.get(
                email__iexact=row.manager_email
            )
        if row.member.manager_id == (manager.pk if manager else None):
            continue
        try:
            # member_update checks for cycles, which only the written managers show.
            row.member = member_update(member=row.member, actor=actor, manager=manager)
        except ValidationError as error:
            raise _RowFailed(row.line, error) from error
        if "created" not in row.outcome:
            row.outcome.add("updated")
    for row in rows:
        if row.status == Member.Status.DEACTIVATED:
            reason = row.reason or DEFAULT_DEACTIVATION_REASON
            _, changed = member_deactivate(member=row.member, actor=actor, reason=reason)
            if changed:
                row.outcome.add("deactivated")
        elif row.status == Member.Status.ACTIVE:
            _, changed = member_reactivate(member=row.member, actor=actor)
            if changed:
                row.outcome.add("reactivated")


def members_import_csv(*, file: TextIO, actor: Any, dry_run: bool = False) -> ImportResult:
    """Create, update, deactivate and reactivate members from an HR CSV export.

    Raises ValidationError listing every problem ("line 7: email: Enter a valid email address.")
    and writes nothing if any row is invalid. With dry_run the import runs in full and is rolled
    back, so the counts are exact and no event or audit row is kept.
    """
    header, values = _read(file)
    result = ImportResult(dry_run=dry_run)
    file_emails = {row_values["email"].casefold() for _, row_values in values}
    with transaction.atomic():
        rows, errors = [], []
        for line, row_values in values:
            try:
                rows.append(_validate(header, row_values, line, file_emails))
            except ValidationError as error:
                errors += _messages(line, error)
        errors += _check_file(rows)
        if errors:
            # In file order; sorted() is stable, so a line's own messages keep their order.
            errors = sorted(errors, key=lambda message: int(message.split(":")[0][5:]))
            raise ValidationError(errors)
        try:
            _apply(rows, actor)
        except _RowFailed as failed:
            raise ValidationError(failed.messages) from failed
        for row in rows:
            for name in ("created", "updated", "deactivated", "reactivated"):
                if name in row.outcome:
                    setattr(result, name, getattr(result, name) + 1)
            if not row.outcome:
                result.unchanged += 1
        if dry_run:
            transaction.set_rollback(True)
    return result
