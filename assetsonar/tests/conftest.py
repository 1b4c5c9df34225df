"""Fixtures of the portal tests: the browser fixture is the automations tests' own (one Chromium
set-up for the whole suite)."""

from assetsonar.tests.smtp_server import smtp_server  # noqa: F401 - a pytest fixture, used by name
from automations.tests.conftest import browser  # noqa: F401 - a pytest fixture, used by name
