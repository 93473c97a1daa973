"""The API docs work offline: Swagger UI (/api/docs/) and ReDoc (/api/redoc/) come from
drf-spectacular-sidecar's static files, and nothing on either page points outside PondOps."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders

DOCS_PAGES = ["/api/docs/", "/api/redoc/"]
# Every absolute URL in a page, whatever quotes or brackets surround it.
ABSOLUTE_URL = re.compile(r"""(?:https?:)?//[^\s"'<>()]+""", re.IGNORECASE)
REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def page_html(client: Any, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    html: str = response.content.decode()
    return html


@pytest.mark.parametrize("path", DOCS_PAGES)
def test_the_docs_pages_reference_only_our_own_origin(client: Any, path: str) -> None:
    html = page_html(client, path)

    # Comments ("// selectively omit ...") are not URLs: only an address with a dot or a port
    # after the slashes is.
    absolute = [url for url in ABSOLUTE_URL.findall(html) if re.match(r"^[^/]*//[\w.-]+[.:]", url)]
    assert absolute == []
    references = REFERENCE.findall(html)
    assert references, "the page loads its UI from somewhere"
    assert all(
        reference.startswith("/") and not reference.startswith("//") for reference in references
    )


@pytest.mark.parametrize("path", DOCS_PAGES)
def test_the_docs_pages_static_files_are_found_by_the_finders(client: Any, path: str) -> None:
    html = page_html(client, path)
    static = "/" + settings.STATIC_URL.lstrip("/")
    scripts = re.findall(rf"""["']({re.escape(static)}[^"']+)["']""", html)

    assert scripts, "the UI is served from our static files"
    for url in scripts:
        name = url.removeprefix(static)
        assert name.startswith("drf_spectacular_sidecar/"), url
        assert finders.find(name) is not None, url


@pytest.mark.parametrize("path", DOCS_PAGES)
def test_the_browser_may_load_the_docs_pages_only_from_our_origin(client: Any, path: str) -> None:
    """ReDoc's bundle draws Redocly's logo from its CDN whatever its options: the policy makes
    the browser refuse it (tests/e2e/test_api_docs.py sees no request leave)."""
    policy = client.get(path)["Content-Security-Policy"]
    directives = dict(directive.split(" ", 1) for directive in policy.split("; "))

    assert directives["default-src"] == "'self'"
    assert directives["img-src"] == "'self' data:"
    assert "http" not in policy and "*" not in policy


def test_swagger_ui_sends_the_schema_to_no_validator(client: Any) -> None:
    assert '"validatorUrl": null' in page_html(client, "/api/docs/")
