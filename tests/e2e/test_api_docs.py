"""The API docs in a real browser that may reach nothing but the live server: Swagger UI and
ReDoc render our operations from drf-spectacular-sidecar's static files (pytest-django's
live_server serves them through the staticfiles finders), so they work offline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from tests.e2e.test_admin_console import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]
# The first render waits for the schema (generated on first request) and a multi-megabyte
# bundle parsed by a headless browser on a shared machine: longer than expect()'s default 5 s.
FIRST_RENDER_MS = 60_000


@pytest.fixture
def offline_page(page: Page, live_server: object) -> Iterator[tuple[Page, str, list[str]]]:
    """The page with every request to another origin refused (and recorded)."""
    base_url = str(live_server.url)  # type: ignore[attr-defined]
    ours = urlsplit(base_url).netloc
    refused: list[str] = []

    def only_ours(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).netloc == ours or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    page.route("**/*", only_ours)
    yield page, base_url, refused


def test_swagger_ui_renders_our_operations_offline(
    offline_page: tuple[Page, str, list[str]], artifacts: Path
) -> None:
    page, base_url, refused = offline_page
    page.goto(f"{base_url}/api/docs/")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text(
        "PondOps partner API", timeout=FIRST_RENDER_MS
    )
    operation = page.locator(".opblock-summary-path", has_text="/api/v1/bulk-changes/").first
    expect(operation).to_be_visible()
    screenshot(page, artifacts / "api-docs-swagger.png")
    assert refused == []


def test_redoc_renders_our_operations_offline(
    offline_page: tuple[Page, str, list[str]], artifacts: Path
) -> None:
    page, base_url, refused = offline_page
    page.goto(f"{base_url}/api/redoc/")

    expect(page.locator("h1").first).to_contain_text("PondOps partner API", timeout=FIRST_RENDER_MS)
    expect(page.get_by_text("/api/v1/bulk-changes/").first).to_be_attached()
    expect(page.locator("[role=menuitem]").first).to_be_visible()  # the operations menu
    screenshot(page, artifacts / "api-docs-redoc.png")
    assert refused == []
