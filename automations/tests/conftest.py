"""Fixtures of the automations tests."""

from __future__ import annotations

import pytest
from django.db import connections

from assetsonar.tests.smtp_server import smtp_server  # noqa: F401 - a pytest fixture, used by name
from automations.tests.browser import CHROMIUM


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls from the test
    # body are still made synchronously, one at a time.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()
        # The test body's ORM calls ran in Playwright's greenlet context, which has database
        # connections of its own; close them, or PostgreSQL refuses to drop the test database.
        connections.close_all()


@pytest.fixture
def engine_in_process(monkeypatch, settings):
    """The engine as the tests run it: django-q2 tasks run at once in the test's process, short
    retry delays, MDM commands allowed. Use with pytest.mark.usefixtures."""
    from automations.tests.engine_factories import fast_retries, mdm_commands, use_sync_q

    use_sync_q(monkeypatch, settings)
    fast_retries(settings)
    mdm_commands(enabled=True)
