"""Fixtures of the provisioning tests: SCIM tokens and an HTTP client for the live server."""

from __future__ import annotations

import pytest
import requests

from provisioning.services import scim_token_create


@pytest.fixture
def scim_secret(db):
    _token, secret = scim_token_create(name="Okta production", read_only=False, actor=None)
    return secret


class Scim:
    """Plain HTTP to the SCIM endpoint of a live server, as an identity provider sends it."""

    def __init__(self, base: str, secret: str | None):
        self.base = base
        self.session = requests.Session()
        if secret:
            self.session.headers["Authorization"] = f"Bearer {secret}"
        self.session.headers["Content-Type"] = "application/scim+json"

    def __call__(self, method: str, path: str, body=None, **kwargs) -> requests.Response:
        return self.session.request(
            method, self.base + path, json=body, timeout=30, allow_redirects=False, **kwargs
        )


@pytest.fixture
def scim(live_server, scim_secret):
    client = Scim(f"{live_server.url}/scim/v2", scim_secret)
    yield client
    # Closing the kept-alive connections ends the server's request threads, which close their
    # database connections (PostgreSQL refuses to drop a test database still in use).
    client.session.close()


# Chromium through Playwright, shared with the automations' browser tests.
from automations.tests.conftest import browser  # noqa: E402,F401
