"""Export members as CSV with the columns import_members reads.

    manage.py export_members [--status active|deactivated] [--output people.csv]

Writes to stdout unless --output is given. Cells that a spreadsheet would run as a formula are
neutralised (assetsonar/csvsafe.py).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from assetsonar.csvsafe import SafeWriter
from members.importers import COLUMNS
from members.models import Member

# Members read per database round trip: bounded memory for any number of members.
CHUNK = 2000


class Command(BaseCommand):
    help = "Write members as CSV (the columns of import_members), formulas neutralised."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--status", choices=[s for s, _ in Member.Status.choices])
        parser.add_argument("--output", "-o", help="File to write (default: standard output).")

    def handle(self, *args: Any, **options: Any) -> None:
        members = Member.objects.select_related("manager").order_by("pk")
        if options["status"]:
            members = members.filter(status=options["status"])
        if options["output"]:
            try:
                with open(options["output"], "w", encoding="utf-8", newline="") as file:
                    count = self._write(file, members)
            except OSError as error:
                message = f"Cannot write {options['output']}: {error.strerror}."
                raise CommandError(message) from error
            self.stderr.write(f"Wrote {count:,} members to {options['output']}.")
        else:
            self._write(self.stdout._out, members)

    def _write(self, file, members) -> int:
        writer = SafeWriter(file)
        writer.writerow(COLUMNS)
        count = 0
        for member in members.iterator(chunk_size=CHUNK):
            writer.writerow(
                [
                    member.full_name,
                    member.email,
                    member.employee_id,
                    member.department,
                    member.location,
                    member.title,
                    member.employment_type,
                    member.manager.email if member.manager_id else "",
                    member.status,
                    member.deactivation_reason,
                    member.personal_email,
                    member.last_working_day.isoformat() if member.last_working_day else "",
                    member.time_zone,
                    "yes" if member.deactivate_on_last_day else "no",
                ]
            )
            count += 1
        return count
