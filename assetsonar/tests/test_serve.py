"""`manage.py serve` as a real process: behind a proxy that sends X-Forwarded-Proto (the README's
production command), and as the `make run` demo with the .env it writes (production settings over
plain http on this machine). Also the pieces of scripts/dev.py that `make run` relies on."""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.test import RequestFactory
from django.views.defaults import server_error

from assetsonar.models import AuditEvent
from conftest import make_user

ROOT = Path(settings.BASE_DIR)
PRODUCTION_KEY = secrets.token_urlsafe(50)


def load_dev():
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "scripts" / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_env() -> dict[str, str]:
    """This test's database, for a process of its own (a file on SQLite)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return {"DATABASE_URL": "", "SQLITE_PATH": str(db["NAME"])}
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return {"DATABASE_URL": f"postgres://{auth}@{host}/{db['NAME']}"}


@pytest.fixture(scope="module")
def static_root(tmp_path_factory) -> str:
    """collectstatic's output: with DEBUG off the manifest storage needs it."""
    root = tmp_path_factory.mktemp("static")
    env = {**os.environ, **base_env(), "STATIC_ROOT": str(root)}
    command = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"]
    subprocess.run(command, cwd=ROOT, env=env, check=True, timeout=120)  # noqa: S603
    return str(root)


def base_env() -> dict[str, str]:
    """Production settings; every variable a developer's .env could set is given here, because
    the shell's values win over the .env's."""
    return {
        "DJANGO_SETTINGS_MODULE": "assetsonar.settings",
        "ASSETSONAR_TESTING": "",
        "DEBUG": "false",
        "SECRET_KEY": PRODUCTION_KEY,
        "ALLOWED_HOSTS": "localhost,127.0.0.1",
        "LOCAL_DEMO": "",
        "BEHIND_PROXY": "",
        "TRUSTED_PROXY": "",
        "TRUSTED_PROXY_HEADERS": "",
        "SECURE_SSL_REDIRECT": "",
        "PYTHONUNBUFFERED": "1",
    }


@contextlib.contextmanager
def serving(static_root: str, tmp_path: Path, *args: str, **variables: str):
    """`manage.py serve` on a free port until the block ends; yields the port."""
    port = free_port()
    env = {**os.environ, **base_env(), **database_env(), "STATIC_ROOT": static_root, **variables}
    log = tmp_path / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
            [sys.executable, "manage.py", "serve", f"--listen=127.0.0.1:{port}", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, "serve did not listen: " + log.read_text()
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)


def get(port: int, path: str, headers: dict | None = None, method: str = "GET", body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read().decode()
    finally:
        conn.close()


def cookies(headers) -> str:
    return "\n".join(headers.get_all("Set-Cookie") or [])


pytestmark = pytest.mark.django_db(transaction=True)


# Behind a proxy (README: production)


def sign_in(port: int, username: str, password: str, headers: dict | None = None):
    """GET the sign-in form, POST it; returns the POST's (status, headers)."""
    headers = headers or {}
    _, form_headers, form = get(port, "/accounts/login/", headers)
    csrf = cookies(form_headers).split("csrftoken=")[1].split(";")[0]
    token = form.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    scheme = "https" if headers.get("X-Forwarded-Proto") == "https" else "http"
    status, response_headers, _ = get(
        port,
        "/accounts/login/",
        {
            **headers,
            "Cookie": f"csrftoken={csrf}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Referer": f"{scheme}://127.0.0.1:{port}/accounts/login/",
        },
        method="POST",
        body=f"username={username}&password={password}&csrfmiddlewaretoken={token}",
    )
    return status, response_headers


def test_serve_behind_a_proxy_trusts_its_forwarded_proto(static_root, tmp_path):
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    with serving(static_root, tmp_path, BEHIND_PROXY="true") as port:
        status, headers, _ = get(port, "/accounts/login/", proxied)
        plain, plain_headers, _ = get(port, "/accounts/login/")
        refused, _ = sign_in(port, "nobody", "wrong", proxied)

    assert status == 200  # not a redirect to https for ever
    assert "Secure" in cookies(headers)
    assert plain == 301  # plain http (no proxy) is still sent to https
    assert plain_headers["Location"].startswith("https://127.0.0.1")
    assert refused == 200  # the form again, with its error: CSRF passed over "https"
    failed = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED)
    assert failed.ip_address == "203.0.113.9"  # the client, as the proxy saw it


def test_serve_ignores_forwarded_proto_from_a_peer_that_is_not_the_proxy(static_root, tmp_path):
    with serving(static_root, tmp_path, BEHIND_PROXY="true", TRUSTED_PROXY="10.9.9.9") as port:
        status, headers, _ = get(port, "/accounts/login/", {"X-Forwarded-Proto": "https"})

    assert status == 301  # a client cannot claim https for itself
    assert headers["Location"].startswith("https://")


# The `make run` demo


def demo_variables() -> dict[str, str]:
    text = load_dev().demo_env(secrets.token_urlsafe(50))
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return dict(pairs)


def test_the_demo_env_is_production_settings_for_this_machine_only():
    variables = demo_variables()
    assert variables["DEBUG"] == "false"
    assert variables["LOCAL_DEMO"] == "true"
    assert len(variables["SECRET_KEY"]) >= 50


def test_the_readme_describes_the_env_make_run_writes(tmp_path):
    """The README's "The .env it writes" block names the variables and values of the file
    `make run` writes, and the length of its key."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("**The `.env` it writes**", 1)[1].split("```sh\n", 1)[1].split("```")[0]
    described = dict(line.split("#")[0].strip().split("=", 1) for line in block.splitlines())
    env_file = tmp_path / ".env"
    load_dev().ensure_env_file(env_file)
    lines = env_file.read_text().splitlines()
    written = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))

    assert set(described) == set(written)
    assert {k: v for k, v in described.items() if k != "SECRET_KEY"} == {
        k: v for k, v in written.items() if k != "SECRET_KEY"
    }
    assert f"({len(written['SECRET_KEY'])} characters)" in described["SECRET_KEY"]


def test_the_demo_shows_the_portals_404_page_and_works_over_plain_http(static_root, tmp_path):
    user = make_user("demo-admin", is_superuser=True)  # a transactional test has no role groups
    # The tests hash with MD5 for speed; the demo's production settings know only the real ones.
    user.password = PBKDF2PasswordHasher().encode("pw-demo-admin-Secret1", "demosalt1234")
    user.save()
    with serving(static_root, tmp_path, **demo_variables()) as port:
        missing, _, page = get(port, "/no-such-page/")
        status, headers, _ = get(port, "/accounts/login/")
        signed_in, after = sign_in(port, "demo-admin", "pw-demo-admin-Secret1")
        session = cookies(after).split("sessionid=")[1].split(";")[0]
        dashboard, _, _ = get(port, "/", {"Cookie": f"sessionid={session}"})

    assert missing == 404
    assert "<h1>Not found</h1>" in page
    assert "URLconf" not in page and "Django tried these URL patterns" not in page
    assert status == 200  # no redirect to https
    assert "Secure" not in cookies(headers)
    assert (signed_in, after["Location"]) == (302, "/")
    assert "Secure" not in cookies(after)
    assert dashboard == 200


def test_local_demo_refuses_to_serve_beyond_this_machine(static_root, tmp_path):
    env = {**os.environ, **base_env(), **database_env(), **demo_variables()}
    served = subprocess.run(  # noqa: S603 - our interpreter, fixed arguments
        [sys.executable, "manage.py", "serve", "--listen=0.0.0.0:1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    env["ALLOWED_HOSTS"] = "assets.example.com"
    checked = subprocess.run(  # noqa: S603 - our interpreter, fixed arguments
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert served.returncode == 1
    assert "LOCAL_DEMO=true serves over plain http, so only on this machine" in served.stderr
    assert checked.returncode == 1
    assert "LOCAL_DEMO=true serves over plain http and is only for this machine" in checked.stderr


def test_the_500_page_is_the_portals_own():
    response = server_error(RequestFactory().get("/"))
    page = response.content.decode()
    assert response.status_code == 500
    assert "<h1>Something went wrong</h1>" in page
    assert "app.css" in page  # the portal's layout, not Django's bare "Server Error (500)"


# scripts/dev.py


def test_make_run_writes_the_demo_env_and_upgrades_an_old_one(tmp_path):
    dev = load_dev()
    fresh = tmp_path / "fresh.env"
    dev.ensure_env_file(fresh)
    assert "DEBUG=false\nLOCAL_DEMO=true\n" in fresh.read_text()

    old = tmp_path / "old.env"
    old.write_text(
        "# Written by `make run` for local use. See .env.example for every variable.\n"
        f"SECRET_KEY=kept-{'k' * 50}\nDEBUG=true\nWEBHOOK_ALLOW_HTTP=true\n"
    )
    dev.ensure_env_file(old)
    assert f"SECRET_KEY=kept-{'k' * 50}\nDEBUG=false\nLOCAL_DEMO=true\n" in old.read_text()

    own = tmp_path / "own.env"
    own.write_text("SECRET_KEY=mine\nDEBUG=true\n")
    dev.ensure_env_file(own)
    assert own.read_text() == "SECRET_KEY=mine\nDEBUG=true\n"  # someone's own .env: left alone


SLOW_SERVER = """
import http.server, sys, time
time.sleep(1.5)
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.BaseHTTPRequestHandler)
print("listening", flush=True)
server.serve_forever()
"""


def test_make_run_announces_the_url_only_once_the_server_answers():
    dev = load_dev()
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
        [sys.executable, "-c", SLOW_SERVER, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        started = time.monotonic()
        assert dev.wait_until_serving("127.0.0.1", port, [server], timeout=30)
        waited = time.monotonic() - started
        # It answers now: the URL printed next works when clicked.
        with socket.create_connection(("127.0.0.1", port), 1):
            pass
    finally:
        server.kill()
        server.wait()
    assert waited >= 1.5


def test_make_run_stops_waiting_when_the_server_process_dies():
    dev = load_dev()
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])  # noqa: S603
    started = time.monotonic()
    assert not dev.wait_until_serving("127.0.0.1", free_port(), [dead], timeout=30)
    assert time.monotonic() - started < 10
