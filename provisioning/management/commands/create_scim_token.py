"""manage.py create_scim_token NAME [--read-only]: print a new SCIM token, once."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from provisioning.services import scim_token_create


class Command(BaseCommand):
    help = "Create a SCIM token for an identity provider and print it (it is shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="e.g. “Okta production” (the audit trail shows it)")
        parser.add_argument("--read-only", action="store_true", help="may read users only")

    def handle(self, *args, name: str, read_only: bool, **options):
        try:
            token, secret = scim_token_create(name=name, read_only=read_only, actor=None)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stderr.write(f"Created SCIM token “{token.name}” ({token.scope.lower()}).")
        self.stdout.write(secret)
