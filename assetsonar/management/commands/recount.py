"""manage.py recount: recompute the denormalised counts (assets held and live entitlements per
member, seats used per license) from the rows, e.g. after a bulk import outside the services."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from assetsonar.tallies import tallies_recount


class Command(BaseCommand):
    help = "Recompute the counts kept in members and licenses from their assets and entitlements."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="Only report wrong counts; exit with status 1 if there are any.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        wrong = tallies_recount(fix=not options["check"])
        for label, rows in wrong.items():
            verb = "wrong" if options["check"] else "fixed"
            self.stdout.write(f"{label}: {rows} row{'s' if rows != 1 else ''} {verb}")
        if options["check"] and any(wrong.values()):
            raise CommandError("Some counts are wrong; run `manage.py recount` to fix them.")
