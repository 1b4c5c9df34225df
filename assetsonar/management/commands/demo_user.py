"""Create or update the demo sign-in "admin" with a new random password, and print it once.

`make run` calls this on every start: the password is only ever on the terminal that started the
portal (the database keeps its hash), and a password seen before stops working at the next start.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from axes.utils import reset as axes_reset
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse

from assetsonar import roles

USERNAME = "admin"
GROUPS = [roles.IT_MANAGER, roles.MDM_OPERATOR]


class Command(BaseCommand):
    help = 'Create or update the superuser "admin" with a new random password and print it.'

    def handle(self, *args: Any, **options: Any) -> None:
        groups = list(Group.objects.filter(name__in=GROUPS))
        if len(groups) != len(GROUPS):
            raise CommandError("The role groups are missing: run `manage.py migrate` first.")
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            user, _ = get_user_model().objects.get_or_create(
                username=USERNAME, defaults={"first_name": "Demo", "last_name": "Admin"}
            )
            user.is_active = user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
            user.groups.add(*groups)
        # Failed attempts with an old password must not lock out the new one.
        axes_reset(username=USERNAME)
        host = os.environ.get("HOST", "127.0.0.1")
        port = os.environ.get("PORT", "8000")
        self.stdout.write(
            f"Sign in at http://{host}:{port}{reverse('login')} as {USERNAME} / {password}"
        )
