"""Import members from an HR system's CSV export.

    manage.py import_members people.csv [--dry-run]

The rules (columns, matching by email, all or nothing) are in members/importers.py; this command
only opens the file and prints the outcome. The import runs as the "system" actor.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from members.importers import COLUMNS, PROGRESS_EVERY, members_import_csv


class Command(BaseCommand):
    help = f"Create and update members from a CSV file with the columns {', '.join(COLUMNS)}."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The CSV file (UTF-8, first line names the columns).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Validate and count; change nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            # utf-8-sig: spreadsheets often start their CSV exports with a byte-order mark.
            with open(options["file"], encoding="utf-8-sig", newline="") as file:
                result = members_import_csv(
                    file=file,
                    actor=None,
                    dry_run=options["dry_run"],
                    progress=self._progress if options["verbosity"] else None,
                )
        except OSError as error:
            raise CommandError(f"Cannot read {options['file']}: {error.strerror}.") from error
        except UnicodeDecodeError as error:
            raise CommandError(f"{options['file']} is not UTF-8 text.") from error
        except ValidationError as error:
            raise CommandError("Nothing was imported:\n" + "\n".join(error.messages)) from error
        if options["verbosity"]:
            self.stderr.write(f"The write took {result.write_seconds:.1f} s in one transaction.")
        prefix = "Dry run, nothing saved: " if result.dry_run else ""
        self.stdout.write(
            f"{prefix}{result.created} created, {result.updated} updated, "
            f"{result.deactivated} deactivated, {result.reactivated} reactivated, "
            f"{result.unchanged} unchanged."
        )

    def _progress(self, stage: str, done: int, total: int) -> None:
        """On stderr, so stdout stays the one-line outcome scripts read. A terminal gets one
        line rewritten in place; a log gets a line per tenth of the file."""
        interactive = self.stderr.isatty()
        step = max(1, total // 10)
        if not interactive and done != total and done // step == (done - PROGRESS_EVERY) // step:
            return
        text = f"{stage}: {done:,} of {total:,} rows"
        if interactive:
            self.stderr.write("\r" + text, ending="\n" if done == total else "")
        else:
            self.stderr.write(text)
