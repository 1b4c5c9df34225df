"""`manage.py ensure_database`, which `make run` runs before migrating: a DATABASE_URL naming a
PostgreSQL database that does not exist gets it created (and says so); a server that cannot be
reached gets one line, not a traceback."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from assetsonar.tests.test_serve import load_dev

ROOT = settings.BASE_DIR


def ensure(url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "true", "LOCAL_DEMO": ""}
    return subprocess.run(  # noqa: S603 - our interpreter, fixed arguments
        [sys.executable, "manage.py", "ensure_database"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unreachable_server_is_one_line_that_says_what_to_do():
    result = ensure("postgres://postgres@127.0.0.1:1/assetsonar")

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "CommandError: Cannot connect to PostgreSQL at 127.0.0.1:1 (DATABASE_URL): Connection "
        "refused. Start the server or correct DATABASE_URL; leave it empty to use the embedded "
        "SQLite database."
    ]


def test_make_run_stops_on_that_line_without_a_traceback(monkeypatch, capfd):
    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:1/assetsonar")
    monkeypatch.setenv("DEBUG", "true")
    dev = load_dev()
    dev.PY = sys.executable  # this interpreter, whatever .venv holds

    with pytest.raises(SystemExit) as stopped:
        dev.manage("ensure_database")

    assert stopped.value.code == 1
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1


def _maintenance_url() -> str:
    """DATABASE_URL's server, its maintenance database: the suite's own database need not exist
    (the test database is another one)."""
    return urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path="/postgres"))


def test_a_missing_postgresql_database_is_created_and_said_so():
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("needs the PostgreSQL server of DATABASE_URL")
    # Named after the database the suite was given, so a shared server sees whose it is.
    given = urlsplit(os.environ["DATABASE_URL"])
    name = f"{given.path.lstrip('/')}_missing_{secrets.token_hex(3)}"
    url = urlunsplit(given._replace(path="/" + name))
    import psycopg

    try:
        result = ensure(url)
        again = ensure(url)
    finally:
        # Outside the test's transaction: DROP DATABASE cannot run in one.
        with psycopg.connect(_maintenance_url(), autocommit=True) as admin:
            found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            exists = found.fetchone() is not None
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f'Created the PostgreSQL database "{name}" on {given.hostname}:{given.port or 5432}: '
        "DATABASE_URL named a database that did not exist yet.\n"
    )
    assert exists
    assert (again.returncode, again.stdout) == (0, "")  # it exists now: nothing to say


def test_a_missing_database_a_user_may_not_create_is_one_line_saying_how_to_create_it():
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("needs the PostgreSQL server of DATABASE_URL")
    import psycopg
    from psycopg import sql

    given = urlsplit(os.environ["DATABASE_URL"])
    suffix = secrets.token_hex(3)
    user, name = f"{given.path.lstrip('/')}_nocreate_{suffix}", f"missing_{suffix}"
    host = f"{given.hostname}:{given.port}" if given.port else given.hostname
    url = urlunsplit(given._replace(netloc=f"{user}@{host}", path="/" + name))
    with psycopg.connect(_maintenance_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB").format(sql.Identifier(user)))
        try:
            result = ensure(url)
        finally:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(user)))
            found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            created = found.fetchone() is not None

    assert not created
    assert result.returncode == 1
    where = f"{given.hostname}:{given.port or 5432}"
    assert result.stderr.splitlines() == [
        f'CommandError: The PostgreSQL database "{name}" that DATABASE_URL names does not exist '
        f'on {where}, and it could not be created (user "{user}" may not create databases). '
        f"Create it: createdb -h {given.hostname} -p {given.port or 5432} -U <a user allowed to "
        f"create databases> {name} (then GRANT ALL ON DATABASE {name} TO {user})."
    ]
