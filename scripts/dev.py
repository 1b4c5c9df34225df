#!/usr/bin/env python3
"""The two README commands, with nothing but Python 3.11+ on the machine.

    python3 scripts/dev.py run    # set up everything, serve the portal and run the worker
    python3 scripts/dev.py test   # install test tools, run the suite (extra args go to pytest)

`make run` and `make test` call these.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import secrets
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
POSIX = os.name == "posix"
# Signals that stop `run`; SIGHUP is a closed terminal.
STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if POSIX else [])


def say(message: str) -> None:
    print(f"\033[1m==> {message}\033[0m", flush=True)


def ensure_venv(requirements: str) -> None:
    """Create .venv and install requirements when they changed since the last install."""
    if sys.version_info < (3, 11):  # noqa: UP036 - runs on whatever python3 the machine has
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
    subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(req)],
        check=True,
    )
    stamp.write_text(digest)


# The first line of the .env `make run` writes; an old one (DEBUG=true) is upgraded by it.
ENV_MARKER = "# Written by `make run` for local use."


def demo_env(key: str) -> str:
    """The .env of the local demo: production settings (DEBUG off, the portal's own error pages)
    over plain http on this machine only (LOCAL_DEMO), and http webhooks for local receivers."""
    return (
        f"{ENV_MARKER} See .env.example for every variable.\n"
        "# Production-like: DEBUG off. LOCAL_DEMO allows plain http, for this machine only.\n"
        f"SECRET_KEY={key}\nDEBUG=false\nLOCAL_DEMO=true\nWEBHOOK_ALLOW_HTTP=true\n"
    )


def ensure_env_file(env_file: Path = ROOT / ".env") -> None:
    """A local .env with a generated SECRET_KEY, so the demo never runs on a committed key."""
    if env_file.exists():
        lines = env_file.read_text().splitlines()
        # Written by an older `make run` (DEBUG=true): the same key, the demo's settings now.
        if lines and lines[0].startswith(ENV_MARKER) and "DEBUG=true" in lines:
            key = next(line[11:] for line in lines if line.startswith("SECRET_KEY="))
            env_file.write_text(demo_env(key))
            say("Updated .env: the demo now runs with DEBUG off (LOCAL_DEMO=true)")
        return
    env_file.write_text(demo_env(secrets.token_urlsafe(50)))
    say("Wrote .env with a new random SECRET_KEY")


def manage(*args: str) -> None:
    """Run a manage.py command; if it fails, stop here: it has said what went wrong."""
    code = subprocess.run([str(PY), "manage.py", *args], cwd=ROOT).returncode  # noqa: S603
    if code:
        sys.exit(code)


def wait_until_serving(
    host: str, port: int, children: list[subprocess.Popen], timeout: float = 60
) -> bool:
    """Poll the sign-in page until the web server answers (any status; redirects are not
    followed), a child exits, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            return False
        connection = http.client.HTTPConnection(host, port, timeout=2)
        try:
            connection.request("GET", "/accounts/login/")
            connection.getresponse().read()
            return True
        except OSError:  # refused (not listening yet), reset, timed out
            time.sleep(0.2)
        finally:
            connection.close()
    return False


def _first_start() -> bool:
    """Whether the database has no members yet, so the demo company is to be loaded."""
    check = "from members.models import Member; raise SystemExit(10 * Member.objects.exists())"
    command = [str(PY), "manage.py", "shell", "--no-imports", "-c", check]
    code = subprocess.run(command, cwd=ROOT).returncode  # noqa: S603
    if code not in (0, 10):
        sys.exit("Could not read the database (see the error above).")
    return code == 0


def run() -> None:
    ensure_venv("requirements.txt")
    ensure_env_file()
    manage("ensure_database")
    say("Migrating the database")
    manage("migrate", "--noinput", "-v", "0")
    manage("collectstatic", "--noinput", "-v", "0")  # DEBUG is off: whitenoise serves these
    if _first_start():
        # Only the first time: seed_automation_demo also switches MDM commands on, which an
        # administrator may later have switched off on purpose.
        manage("seed_demo", "--if-empty")
        manage("seed_automation_demo")
    manage("demo_user")
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    commands = [
        [str(PY), "manage.py", "serve", f"--listen={host}:{port}"],
        [str(PY), "manage.py", "worker"],
    ]
    # Ctrl+C, `kill` and a closed terminal all end here as KeyboardInterrupt. Installed
    # explicitly because a shell starts background jobs with SIGINT ignored, which Python and
    # the children would otherwise inherit (a handler, unlike "ignore", is not inherited).
    for sig in STOP_SIGNALS:
        signal.signal(sig, _interrupt)
    children: list[subprocess.Popen] = []
    try:
        for command in commands:
            # Each child in its own process group: this script alone decides how they stop, and
            # can kill all of qcluster's worker processes if it hangs.
            group = {"process_group": 0} if POSIX else {}
            children.append(subprocess.Popen(command, cwd=ROOT, **group))  # noqa: S603
        # Said once the server answers, so the URL printed is one that works when clicked.
        if wait_until_serving(host, int(port), children):
            say(f"AssetSonar is running at http://{host}:{port}/  (web server + background worker)")
            say("Press Ctrl+C to stop both.")
        elif all(child.poll() is None for child in children):
            say(f"The web server has not answered on {host}:{port} after 60 s; still waiting.")
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        sys.exit("A process stopped unexpectedly; stopping the other one.")
    except KeyboardInterrupt:
        say("Stopping")
    finally:
        _stop(children)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(children: list[subprocess.Popen]) -> None:
    """SIGINT each child (both shut down cleanly on it); kill a group that hangs past 15 s."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)  # a second Ctrl+C must not orphan a child
    for child in children:
        if child.poll() is None:
            if POSIX:
                child.send_signal(signal.SIGINT)
            else:
                child.terminate()
    deadline = time.monotonic() + 15
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{Path(child.args[0]).name} did not stop in time; killing it.", flush=True)
            if POSIX:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
            else:
                child.kill()
            child.wait()


def test(args: list[str]) -> None:
    ensure_venv("requirements-dev.txt")
    # Parallel across cores by default; `make test ARGS="-p no:xdist -k x"` runs serially.
    serial = "no:xdist" in args or any(a.startswith(("-n", "--numprocesses")) for a in args)
    parallel = [] if serial else ["-n", "auto", "--dist", "loadfile"]
    cmd = [str(PY), "-m", "pytest", *parallel, *args]
    url = os.environ.get("DATABASE_URL", "")
    say(" ".join(cmd[2:]) + (f"  (DATABASE_URL={_redact(url)})" if url else "  (SQLite)"))
    sys.exit(subprocess.call(cmd, cwd=ROOT))  # noqa: S603


def _redact(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in {"run", "test"}:
        sys.exit(__doc__)
    try:
        if sys.argv[1] == "run":
            run()
        else:
            test(sys.argv[2:])
    except KeyboardInterrupt:  # Ctrl+C during set-up: the child already said what it was doing
        sys.exit(130)


if __name__ == "__main__":
    main()
