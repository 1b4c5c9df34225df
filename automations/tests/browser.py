"""Shared pieces of the browser tests: Debian's Chromium driven by Playwright for Python.

Screenshots go to test-artifacts/screenshots/ (ignored by git) on a normal run, and to
docs/screenshots/ (the README's pictures) when UPDATE_SCREENSHOTS=1, so running the suite never
rewrites tracked files.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.conf import settings

CHROMIUM = Path("/usr/bin/chromium")

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Browser tests need Debian's chromium package (apt-get install chromium).",
)

IDLE = "!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"


def screenshot_path(name: str) -> Path:
    base = Path(settings.BASE_DIR)
    folder = (
        base / "docs" / "screenshots"
        if os.environ.get("UPDATE_SCREENSHOTS") == "1"
        else base / "test-artifacts" / "screenshots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def wait_until(page, expression: str, arg=None, timeout: float = 10.0) -> None:
    """Poll `expression` from here: Playwright's own wait_for_function evaluates strings in the
    page, which the strict CSP (no 'unsafe-eval') rightly refuses."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out waiting for: {expression}")
        page.wait_for_timeout(50)


def settled(page) -> None:
    """Wait until htmx has no request in flight and has wired up what it swapped in."""
    page.wait_for_timeout(50)
    wait_until(page, f"() => {IDLE}")


def screenshot(page, name: str) -> Path:
    """The whole page, 1280 px wide; the viewport grows to the page first so the sticky sidebar
    is drawn once, at the top, not in the middle of a stitched full-page shot."""
    path = screenshot_path(name)
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 1280, "height": height})
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    return path
