"""Fixtures of the assets tests: the real SMTP server of the portal tests (device returns)."""

from assetsonar.tests.smtp_server import smtp_server  # noqa: F401 - a pytest fixture, used by name
