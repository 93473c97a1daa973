"""Browser tests: Playwright's sync API driving Debian's chromium (``/usr/bin/chromium``,
installed by ``.ci/run``; never ``playwright install``) against pytest-django's live server.

Playwright's sync API runs an event loop in the test's thread, which trips Django's
async-safety check on every ORM call the test itself makes: DJANGO_ALLOW_ASYNC_UNSAFE is set
for the browser tests only, while their browser is open, and removed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)"
        )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                yield chromium
            finally:
                chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(autouse=True)
def _forget_worker_heartbeats() -> Iterator[None]:
    """The workers these tests start leave django-q2's cluster heartbeat in the shared cache
    (a database table that a flush does not empty) for a minute after they stop: forget it,
    so a later test that expects no cluster (``/healthz``) does not see this one."""
    yield
    from django.core.cache import cache

    cache.clear()
