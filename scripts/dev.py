#!/usr/bin/env python3
"""The two README commands, with nothing but Python 3.11+ on the machine.

    python3 scripts/dev.py run    # set up everything, then serve the portal and the worker
    python3 scripts/dev.py test   # install test tools, run the whole suite (extra args go to pytest)

`make run` and `make test` call these.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def say(message: str) -> None:
    print(f"\033[1m==> {message}\033[0m", flush=True)


def ensure_venv(requirements: str) -> None:
    """Create .venv and install requirements when they changed since the last install."""
    if sys.version_info < (3, 11):
        sys.exit("AssetSonar needs Python 3.11 or newer.")
    if not PY.exists():
        say("Creating the virtual environment in .venv")
        venv.EnvBuilder(with_pip=True).create(VENV)
    req = ROOT / requirements
    digest = hashlib.sha256(req.read_bytes() + (ROOT / "requirements.txt").read_bytes()).hexdigest()
    stamp = VENV / f".installed-{requirements}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    say(f"Installing {requirements}")
    subprocess.run(
        [str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(req)],
        check=True,
    )
    stamp.write_text(digest)


def ensure_env_file() -> None:
    """A local .env with a generated SECRET_KEY, so the demo never runs on a committed key."""
    env_file = ROOT / ".env"
    if env_file.exists():
        return
    key = secrets.token_urlsafe(50)
    env_file.write_text(
        "# Written by `make run` for local use. See .env.example for every variable.\n"
        f"SECRET_KEY={key}\nDEBUG=true\nWEBHOOK_ALLOW_HTTP=true\n"
    )
    say("Wrote .env with a new random SECRET_KEY")


def manage(*args: str, env: dict | None = None) -> None:
    subprocess.run([str(PY), "manage.py", *args], cwd=ROOT, check=True, env=env)


def run() -> None:
    ensure_venv("requirements.txt")
    ensure_env_file()
    say("Migrating the database")
    manage("migrate", "--noinput", "-v", "0")
    manage("seed_demo", "--if-empty")
    manage("demo_user")
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    web = subprocess.Popen(  # noqa: S603 - our own executables
        [str(BIN / "waitress-serve"), f"--listen={host}:{port}", "--threads=8",
         "assetsonar.wsgi:application"],
        cwd=ROOT,
    )
    worker = subprocess.Popen([str(PY), "manage.py", "qcluster"], cwd=ROOT)  # noqa: S603
    say(f"AssetSonar is running at http://{host}:{port}/  (web server + background worker)")
    say("Press Ctrl+C to stop both.")
    children = [web, worker]
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        sys.exit("A process stopped unexpectedly; stopping the other one.")
    except KeyboardInterrupt:
        say("Stopping")
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


def test(args: list[str]) -> None:
    ensure_venv("requirements-dev.txt")
    cmd = [str(PY), "-m", "pytest", *args]
    say(" ".join(cmd[2:]) + (f"  (DATABASE_URL={os.environ['DATABASE_URL']})"
                              if os.environ.get("DATABASE_URL") else "  (SQLite)"))
    sys.exit(subprocess.call(cmd, cwd=ROOT))  # noqa: S603


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in {"run", "test"}:
        sys.exit(__doc__)
    if sys.argv[1] == "run":
        run()
    else:
        test(sys.argv[2:])


if __name__ == "__main__":
    main()
