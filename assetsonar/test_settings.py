"""Settings for the test suite: the real settings, with test-only conveniences switched on."""

import os

os.environ["ASSETSONAR_TESTING"] = "1"

from assetsonar.settings import *  # noqa: E402,F403

# Each test process has its own cache (the suite clears it around every test, conftest.py): with
# REDIS_URL in the environment or .env it would otherwise be that Redis, shared and flushed.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Tests open 127.0.0.1 for their own webhook receivers and MDM servers (never in production).
OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # noqa: F405
WEBHOOK_ALLOW_HTTP = True
# A real worker started by the qcluster tests signs in to their fake Intune server, and may be
# told to run one event per task (two workers then race on the same devices).
if os.environ.get("TEST_MDM_INTUNE_LOGIN_URL"):
    MDM_INTUNE_LOGIN_URL = os.environ["TEST_MDM_INTUNE_LOGIN_URL"]
if os.environ.get("TEST_AUTOMATIONS_EVENT_BATCH"):
    AUTOMATIONS_EVENT_BATCH = int(os.environ["TEST_AUTOMATIONS_EVENT_BATCH"])

# The qcluster tests (automations/tests/test_qcluster.py) run a real worker process against the
# test database, which an in-memory SQLite database cannot share: on SQLite the test database is
# a file, one per test process (SQLITE_TEST_PATH still wins).
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    _test = DATABASES["default"].setdefault("TEST", {})  # noqa: F405
    if not _test.get("NAME"):
        import atexit
        import contextlib
        import glob
        import tempfile

        _base = os.path.join(tempfile.gettempdir(), f"assetsonar-test-{os.getpid()}")
        _test["NAME"] = _base + ".sqlite3"

        def _remove_test_database_files(pattern: str = _base + "*.sqlite3*") -> None:
            """Django deletes the database file; its -wal and -shm companions stay behind."""
            for path in glob.glob(pattern):
                with contextlib.suppress(OSError):
                    os.remove(path)

        atexit.register(_remove_test_database_files)
