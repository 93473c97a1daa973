"""Error reporting to Sentry, when ``SENTRY_DSN`` is set (docs/operations/observability.md).

Called from the settings, so every process that loads them reports: the web, ``qcluster``
(and its forked workers), ``poll_sqs``, ``run_reaper``. Unset, sentry-sdk is not initialised
at all: nothing is sent and no hook is installed.

What is sent is the exception, its traceback with source lines, the log lines before it
(breadcrumbs) and, for a web request, its method, URL and headers — never a body
(``max_request_body_size="never"``), never cookies or the user's address
(``send_default_pii=False``), never the traceback's local variables (a frame's variables may
hold a carrier's key). :func:`event_scrub` then filters the credentials headers and anything
in any text that looks like a credential (``Bearer …``, ``?token=…``, ``user:password@``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

FILTERED = "[Filtered]"
# Request headers that carry credentials, lowercased: ours and every carrier's.
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "cookie",
        "set-cookie",
        "ocp-apim-subscription-key",
        "x-callback-token",
        "webhook-signature",
        "x-csrftoken",
    }
)
# Names whose values are scrubbed wherever they appear as keys (sentry-sdk's EventScrubber).
SECRET_KEYS = [*SECRET_HEADERS, "password", "secret", "token", "api_key", "apikey", "key"]
_CREDENTIAL_PATTERNS = (
    # An authorization scheme and its credential: "Bearer abc", "Api-Key abc", "Basic YWJj…".
    (re.compile(r"(?i)\b(bearer|api-key)(\s+)[^\s,;\"']+"), r"\1\2" + FILTERED),
    (re.compile(r"\b(Basic)(\s+)[A-Za-z0-9+/]{8,}={0,2}"), r"\1\2" + FILTERED),
    # A credential in a query string or form: ?token=…, &api_key=…, password=…
    (
        re.compile(
            r"(?i)\b((?:access_|api_|callback_)?(?:token|key|secret|password|passwd|signature|"
            r"apikey|sig))=[^&\s\"']+"
        ),
        r"\1=" + FILTERED,
    ),
    # A URL's user:password@.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"), r"\1" + FILTERED + "@"),
)


def text_scrub(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``[Filtered]``."""
    for pattern, replacement in _CREDENTIAL_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _scrub_values(value: Any) -> Any:
    if isinstance(value, str):
        return text_scrub(value)
    if isinstance(value, list):
        return [_scrub_values(item) for item in value]
    if isinstance(value, dict):
        return {
            key: FILTERED
            if isinstance(key, str) and key.lower() in SECRET_HEADERS
            else _scrub_values(item)
            for key, item in value.items()
        }
    return value


def event_scrub(event: dict[str, Any], hint: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Sentry's ``before_send`` (and ``before_breadcrumb``'s text pass): the request's
    credentials headers, cookies and body removed, then every text of the event — message,
    exception values, breadcrumbs, extra, the URL and query string — scrubbed."""
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("cookies", None)
        request.pop("data", None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                name: FILTERED if name.lower() in SECRET_HEADERS else value
                for name, value in headers.items()
            }
    scrubbed: dict[str, Any] = _scrub_values(event)
    return scrubbed


def breadcrumb_scrub(
    crumb: dict[str, Any], hint: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Sentry's ``before_breadcrumb``: the same text pass as :func:`event_scrub`."""
    scrubbed: dict[str, Any] = _scrub_values(crumb)
    return scrubbed


def release_default() -> str:
    """``pondops@<package version>``: what the installed distribution says it is."""
    try:
        return f"pondops@{version('pondops')}"
    except PackageNotFoundError:
        return "pondops@unknown"


def sentry_configure(*, dsn: str, environment: str, release: str = "") -> bool:
    """Initialise sentry-sdk when ``dsn`` is set; returns whether it did. Unset: nothing at all
    (sentry-sdk is not even imported)."""
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release or release_default(),
        integrations=[DjangoIntegration()],
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=False,
        event_scrubber=EventScrubber(
            denylist=sorted({*DEFAULT_DENYLIST, *SECRET_KEYS}), recursive=True
        ),
        before_send=event_scrub,  # type: ignore[arg-type]
        before_breadcrumb=breadcrumb_scrub,
        traces_sample_rate=0.0,  # errors only: no performance data leaves the host
    )
    return True
