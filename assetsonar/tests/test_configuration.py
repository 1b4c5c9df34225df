"""Every variable the settings read from the environment is documented in `.env.example` and the
README's configuration table, with the code's default. The variables are found by reading the
settings module's source (and scripts/dev.py's), so a variable added later is caught too."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from assets.forms_mdm import MDMConnectionForm

ROOT = Path(settings.BASE_DIR)
SOURCES = [ROOT / "assetsonar" / "settings.py", ROOT / "scripts" / "dev.py"]
# Read from the environment but set by the test settings themselves, never by an operator (it
# switches off the SECRET_KEY check): documenting it would invite its use.
INTERNAL = {"ASSETSONAR_TESTING"}
READERS = {"env_bool", "env_int", "env_list"}
NO_DEFAULT = object()


def _literal(node: ast.AST | None):
    if node is None:
        return NO_DEFAULT
    try:
        value = ast.literal_eval(node)
    except ValueError:
        pass
    else:
        return ",".join(value) if isinstance(value, list) else value
    if isinstance(node, ast.BinOp):  # 60 * 60 * 10
        left, right = _literal(node.left), _literal(node.right)
        if isinstance(left, int) and isinstance(right, int) and isinstance(node.op, ast.Mult):
            return left * right
    return NO_DEFAULT  # computed (a path under BASE_DIR): the README describes it in words


def _name_and_default(call: ast.Call):
    """("NAME", default) for env_bool/env_int/env_list("NAME", d) and os.environ.get("NAME", d)."""
    func = call.func
    reader = func.id if isinstance(func, ast.Name) else None
    is_get = (
        isinstance(func, ast.Attribute)
        and func.attr == "get"
        and isinstance(func.value, ast.Attribute)
        and func.value.attr == "environ"
    )
    if not (reader in READERS or is_get) or not call.args:
        return None
    if not isinstance(call.args[0], ast.Constant) or not isinstance(call.args[0].value, str):
        return None
    default = _literal(call.args[1]) if len(call.args) > 1 else NO_DEFAULT
    if reader == "env_bool" and default is NO_DEFAULT:
        default = False
    return call.args[0].value, default


def environment_variables() -> dict[str, object]:
    """Every variable read, with its default; `read(...) or fallback` counts the fallback."""
    found: dict[str, object] = {}
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        fallbacks = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
                first, *rest = node.values
                if isinstance(first, ast.Call) and rest:
                    fallbacks[id(first)] = _literal(rest[-1])
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            pair = _name_and_default(node)
            if pair is None or pair[0] in INTERNAL:
                continue
            name, default = pair
            if default in ("", NO_DEFAULT) and id(node) in fallbacks:
                default = fallbacks[id(node)]
            if found.get(name, NO_DEFAULT) in ("", NO_DEFAULT):
                found[name] = default
    return found


def readme_table() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\| `([A-Z0-9_]+)` \| ([^|]*) \|", line)
        if match:
            rows[match.group(1)] = match.group(2).strip()
    return rows


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"#? ?([A-Z][A-Z0-9_]+)=(.*)$", line)
        if match:
            values[match.group(1)] = match.group(2)
    return values


def _shown(default: object) -> str | None:
    """How the README's Default column writes a default, or None when it is free text."""
    if default in (NO_DEFAULT, "", None):
        return None
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    return f"`{default}`"


def test_the_scan_finds_what_the_settings_read():
    variables = environment_variables()
    # A sample of each kind of read, so a broken scan cannot pass the tests below by finding
    # nothing.
    assert variables["SESSION_COOKIE_AGE"] == 36000
    assert variables["Q_MAX_ATTEMPTS"] == 5
    assert variables["SECURE_SSL_REDIRECT"] is True
    assert variables["DEBUG"] is False
    assert variables["ALLOWED_HOSTS"] == "localhost,127.0.0.1,[::1]"
    assert variables["TRUSTED_PROXY"] == "127.0.0.1"
    assert variables["TIME_ZONE"] == "UTC"
    assert variables["PORT"] == "8000"
    assert variables["SQLITE_PATH"] is NO_DEFAULT
    assert "ASSETSONAR_TESTING" not in variables
    assert len(variables) >= 35


def test_every_environment_variable_is_in_env_example():
    missing = sorted(set(environment_variables()) - set(env_example()))
    assert missing == []


def test_every_environment_variable_is_in_the_readme_table_with_the_codes_default():
    table = readme_table()
    variables = environment_variables()
    assert sorted(set(variables) - set(table)) == []
    wrong = {
        name: (table[name], _shown(default))
        for name, default in variables.items()
        if _shown(default) is not None and not table[name].startswith(_shown(default))
    }
    assert wrong == {}


def test_env_example_gives_the_codes_defaults():
    example = env_example()
    wrong = {
        name: (example[name], default)
        for name, default in environment_variables().items()
        if _shown(default) is not None
        and example[name] not in ("", _shown(default).strip("`"))
        and name != "DEBUG"  # .env.example spells out DEBUG=false, the default
    }
    assert wrong == {}


@pytest.mark.django_db
@pytest.mark.parametrize(("allow_http", "valid"), [(False, False), (True, True)])
def test_webhook_allow_http_also_governs_mdm_base_urls(settings, allow_http, valid):
    """What the README's table says of WEBHOOK_ALLOW_HTTP. A public address literal, so no DNS."""
    settings.WEBHOOK_ALLOW_HTTP = allow_http
    form = MDMConnectionForm(
        data={
            "name": "Kandji",
            "provider": "kandji",
            "base_url": "http://93.184.216.34",
            "is_active": "on",
            "kandji_api_token": "token",
        }
    )
    form.is_valid()
    assert ("base_url" not in form.errors) is valid
    if not valid:
        assert form.errors["base_url"] == ["Use an https:// URL."]


def test_the_intune_sign_in_host_comes_from_the_environment():
    """assets/tests/test_mdm_connectors.py signs in at settings.MDM_INTUNE_LOGIN_URL against a
    real server; here the variable reaches that setting."""
    code = "from django.conf import settings; print(settings.MDM_INTUNE_LOGIN_URL)"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "assetsonar.settings",
        "DEBUG": "true",
        "LOCAL_DEMO": "",
        "DATABASE_URL": "",
    }
    default = subprocess.run(  # noqa: S603 - our interpreter
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    env["MDM_INTUNE_LOGIN_URL"] = "https://login.microsoftonline.us"
    us = subprocess.run(  # noqa: S603 - our interpreter
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert default.stdout.strip() == "https://login.microsoftonline.com", default.stderr
    assert us.stdout.strip() == "https://login.microsoftonline.us", us.stderr
