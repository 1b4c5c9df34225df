"""Make sure the database that DATABASE_URL names exists, before `make run` migrates it.

    manage.py ensure_database

SQLite needs nothing (the file is created on first use). On PostgreSQL a database that does not
exist is created through the server's maintenance database with the same credentials, and the
command says so; when that is not allowed, or the server cannot be reached, it says in one line
what is wrong and how to fix it (instead of migrate's page-long traceback).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

# PostgreSQL's SQLSTATEs: invalid_catalog_name (no such database), insufficient_privilege.
NO_SUCH_DATABASE = "3D000"
NOT_ALLOWED = "42501"


def _reason(error: Exception) -> str:
    """libpq's reason without its "connection to server at ... failed:" wrapping and hints."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return text.rpartition(" failed: ")[2].removeprefix("FATAL:").strip().rstrip(".")


class Command(BaseCommand):
    help = "Create the PostgreSQL database DATABASE_URL names if it does not exist yet."

    def handle(self, *args: Any, **options: Any) -> None:
        db = settings.DATABASES["default"]
        if db["ENGINE"] != "django.db.backends.postgresql":
            return
        import psycopg
        from psycopg import sql

        name = db["NAME"]
        host, port = db.get("HOST") or "localhost", db.get("PORT") or 5432
        params = {
            "user": db.get("USER") or None,
            "password": db.get("PASSWORD") or None,
            "host": db.get("HOST") or None,
            "port": db.get("PORT") or None,
            "connect_timeout": 10,
        }
        where = f"{host}:{port}"
        try:
            psycopg.connect(dbname=name, **params).close()
            return
        except psycopg.OperationalError as error:
            # Connection-time errors carry no SQLSTATE in psycopg: the server's message tells.
            missing = (
                error.sqlstate == NO_SUCH_DATABASE
                or f'database "{name}" does not exist' in str(error)
            )
            if not missing:
                raise CommandError(
                    f"Cannot connect to PostgreSQL at {where} (DATABASE_URL): "
                    f"{_reason(error)}. Start the server or correct DATABASE_URL; leave it "
                    "empty to use the embedded SQLite database."
                ) from None
        user = params["user"] or "postgres"
        how = (
            f"createdb -h {host} -p {port} -U <a user allowed to create databases> {name}"
            f" (then GRANT ALL ON DATABASE {name} TO {user})"
        )
        try:
            with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error as error:
            reason = (
                f'user "{user}" may not create databases'
                if getattr(error, "sqlstate", None) == NOT_ALLOWED
                else _reason(error)
            )
            raise CommandError(
                f'The PostgreSQL database "{name}" that DATABASE_URL names does not exist on '
                f"{where}, and it could not be created ({reason}). Create it: {how}."
            ) from None
        self.stdout.write(
            f'Created the PostgreSQL database "{name}" on {where}: DATABASE_URL named a database '
            "that did not exist yet."
        )
