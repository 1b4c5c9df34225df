"""Deactivate members from the command line, e.g. for an offboarding script.

    manage.py deactivate_members --email jordan@example.com --employee-id E1042 --reason "Left"

    manage.py deactivate_members --email jordan@example.com --on 2026-12-13

Every member is resolved before anything changes: one unknown email or employee ID and nothing is
deactivated. The deactivations go through member_bulk_deactivate (one transaction, actor "system"),
so each one fires the automation trigger like a deactivation in the portal.

With --on DATE nobody is deactivated now: the members get that last working day with
"deactivate on the last working day" on (members_schedule_last_day), and the 5-minute schedule
deactivates each when the day ends in their time zone (members_deactivate_due).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from members.models import Member
from members.services import member_bulk_deactivate, members_schedule_last_day


def _day(value: str) -> date:
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"--on: “{value}” is not a date; give the last working day as YYYY-MM-DD, "
            "e.g. --on 2026-12-13."
        ) from None


class Command(BaseCommand):
    help = "Deactivate members by email and/or employee ID, with a reason for the audit trail."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--email", action="append", default=[], help="A member's email (case-insensitive)."
        )
        parser.add_argument(
            "--employee-id", action="append", default=[], help="A member's employee ID."
        )
        parser.add_argument(
            "--reason", help="Why they are deactivated (required, unless --on is given)."
        )
        parser.add_argument(
            "--on",
            metavar="DATE",
            help="Deactivate at the end of this last working day (YYYY-MM-DD) in each member's "
            "time zone, instead of now.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would change; change nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        emails = [e.strip() for e in options["email"] if e.strip()]
        employee_ids = [e.strip() for e in options["employee_id"] if e.strip()]
        if not emails and not employee_ids:
            raise CommandError("Name the members to deactivate with --email and/or --employee-id.")
        day = _day(options["on"]) if options["on"] else None
        if day is None and not (options["reason"] or "").strip():
            raise CommandError('--reason is required: say why, e.g. --reason "Last working day".')
        members: dict[int, Member] = {}
        unknown = []
        for email in emails:
            member = Member.objects.filter(email__iexact=email).first()
            if member is None:
                unknown.append(f"email {email}")
            else:
                members[member.pk] = member
        for employee_id in employee_ids:
            member = Member.objects.filter(employee_id=employee_id).first()
            if member is None:
                unknown.append(f"employee ID {employee_id}")
            else:
                members[member.pk] = member
        if unknown:
            raise CommandError(f"No member has {', '.join(unknown)}. Nothing was changed.")

        already = sorted(
            (m for m in members.values() if m.status == Member.Status.DEACTIVATED),
            key=lambda m: m.email,
        )
        if day is not None:
            self._schedule(members, already, day, options)
            return
        try:
            with transaction.atomic():
                changed = member_bulk_deactivate(
                    member_ids=members, actor=None, reason=options["reason"]
                )
                # A dry run deactivates and rolls back, so its count is the real one.
                if options["dry_run"]:
                    transaction.set_rollback(True)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error

        verb = "Would deactivate" if options["dry_run"] else "Deactivated"
        self.stdout.write(f"{verb} {changed} member{'s' if changed != 1 else ''}.")
        if already:
            names = ", ".join(m.email for m in already)
            self.stdout.write(f"Already deactivated: {names}.")

    def _schedule(self, members: dict[int, Member], already: list, day: date, options) -> None:
        reason = (options["reason"] or "").strip()
        message = "Last working day set by deactivate_members" + (f": {reason}" if reason else "")
        with transaction.atomic():
            changed = members_schedule_last_day(
                member_ids=members, day=day, actor=None, message=message[:500]
            )
            if options["dry_run"]:
                transaction.set_rollback(True)
        verb = "Would set" if options["dry_run"] else "Set"
        when = f"{day.day} {day:%b %Y}"
        self.stdout.write(
            f"{verb} the last working day of {changed} member{'s' if changed != 1 else ''} to "
            f"{when}; each is deactivated when that day ends in their time zone."
        )
        if already:
            names = ", ".join(m.email for m in already)
            self.stdout.write(f"Already deactivated (unchanged): {names}.")
