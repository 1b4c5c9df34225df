"""Settings read from the environment, each case in a fresh interpreter with a clean environment."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

from django.conf import settings

from assetsonar.settings import _load_dotenv

ROOT = settings.BASE_DIR

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(48),  # 64 characters
    "ALLOWED_HOSTS": "assets.example.com",
}

# Prints the settings a case looks at, as JSON, from the real settings module.
PRINT_SETTINGS = """
import json
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "ENGINE": db["ENGINE"], "NAME": str(db["NAME"]), "HOST": db.get("HOST", ""),
    "PORT": db.get("PORT", ""), "CONN_MAX_AGE": db.get("CONN_MAX_AGE", 0),
    "CONN_HEALTH_CHECKS": db.get("CONN_HEALTH_CHECKS", False),
    "SQLITE_INIT": db.get("OPTIONS", {}).get("init_command", ""),
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": settings.CSRF_COOKIE_SECURE,
    "SECURE_SSL_REDIRECT": settings.SECURE_SSL_REDIRECT,
    "SECURE_HSTS_SECONDS": settings.SECURE_HSTS_SECONDS,
    "STATICFILES": settings.STORAGES["staticfiles"]["BACKEND"],
}))
"""


def _run(*args: str, **variables: str) -> subprocess.CompletedProcess:
    """Run Python in the project with only PATH and the given variables in the environment.

    SECRET_KEY, DEBUG, DATABASE_URL and LOCAL_DEMO are always set (empty unless given) because
    shell values win over the project's .env, which `make run` writes with a key; empty means
    "not set" to the settings module.
    """
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "assetsonar.settings",
        "SECRET_KEY": "",
        "DEBUG": "",
        "DATABASE_URL": "",
        "LOCAL_DEMO": "",  # the .env of `make run` sets it
        **variables,
    }
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def _settings(**variables: str) -> dict:
    result = _run("-c", PRINT_SETTINGS, **variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_refuses_to_start_without_secret_key():
    result = _run("-c", "import django; django.setup()", DEBUG="false")

    assert result.returncode != 0
    assert "django.core.exceptions.ImproperlyConfigured: SECRET_KEY is not set." in result.stderr


def test_production_refuses_a_short_or_django_insecure_secret_key():
    for key in ("short-key", "django-insecure-" + "x" * 60):
        result = _run("-c", "import django; django.setup()", DEBUG="false", SECRET_KEY=key)

        assert result.returncode != 0
        assert "ImproperlyConfigured: SECRET_KEY is too weak" in result.stderr


def test_production_settings_pass_the_deployment_checklist():
    result = _run("manage.py", "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr


def test_production_settings_are_https_only():
    values = _settings(**PRODUCTION)

    assert values["DEBUG"] is False
    assert values["ALLOWED_HOSTS"] == ["assets.example.com"]
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 60 * 60 * 24 * 365
    assert values["STATICFILES"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"


def test_development_runs_without_secret_key_on_plain_http():
    values = _settings(DEBUG="true")

    assert values["DEBUG"] is True
    assert values["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]"]
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["SECURE_SSL_REDIRECT"] is False


def test_sqlite_is_the_default_database(tmp_path):
    values = _settings(DEBUG="true", SQLITE_PATH=str(tmp_path / "portal.sqlite3"))

    assert values["ENGINE"] == "django.db.backends.sqlite3"
    assert values["NAME"] == str(tmp_path / "portal.sqlite3")
    assert "journal_mode=WAL" in values["SQLITE_INIT"]


def test_database_url_selects_postgresql():
    values = _settings(
        DEBUG="true", DATABASE_URL="postgres://portal:s3cret@db.internal:5433/assetsonar"
    )

    assert values["ENGINE"] == "django.db.backends.postgresql"
    assert (values["NAME"], values["HOST"], values["PORT"]) == ("assetsonar", "db.internal", 5433)
    assert values["CONN_MAX_AGE"] == 60
    assert values["CONN_HEALTH_CHECKS"] is True


def test_dotenv_fills_in_missing_variables_but_never_overrides_the_shell(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\n\nASSETSONAR_T_NEW='from file'\nASSETSONAR_T_SET=from file\nnot a pair\n"
    )
    # Both are put back (ASSETSONAR_T_NEW removed) after the test, whatever _load_dotenv wrote.
    monkeypatch.delenv("ASSETSONAR_T_NEW", raising=False)
    monkeypatch.setenv("ASSETSONAR_T_SET", "from shell")

    _load_dotenv(env_file)

    assert os.environ["ASSETSONAR_T_NEW"] == "from file"
    assert os.environ["ASSETSONAR_T_SET"] == "from shell"
