"""Browser tests: Playwright driving Debian's headless chromium against a live server.

The server is the session's loopback uvicorn (``rest_server`` in tests/conftest.py) with a
fresh app on an empty store per test (``rest_store``), so every page is served by the real
server app, UI included. Data is made through the SDK against that server. Chromium is
``/usr/bin/chromium`` (or ``SLIPWAY_TEST_CHROMIUM``); it is installed by ``.ci/run``, and a
missing browser fails the tests rather than skipping them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from slipway.tracking.client import SlipwayClient
from slipway.tracking.store.rest import RestTrackingStore

CHROMIUM = os.environ.get("SLIPWAY_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def server_url(rest_store: RestTrackingStore) -> str:
    """The live server's base URL (its app, with the UI, on an empty store of its own)."""
    return rest_store.server_url


@pytest.fixture
def client(server_url: str) -> SlipwayClient:
    """The SDK's client, talking to the live server."""
    return SlipwayClient(server_url)


@pytest.fixture
def page(browser: Any, server_url: str) -> Iterator[Any]:
    """A fresh browser page whose relative URLs go to the live server. Any script error or
    dialog on the page fails the test (data must never run as script)."""
    context = browser.new_context(base_url=server_url, viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    tab.on(
        "dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss())
    )
    yield tab
    context.close()
    assert not problems, problems
