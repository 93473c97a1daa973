"""The Teal simulator's outbound callbacks: when an operation completes, Teal invokes the
``callbackUrl`` it was given with ``requestId`` appended (docs/carriers/teal.md).

Sent over real HTTP, outside every lock, and only to a loopback address (the simulators never
reach outside the machine): any other URL — an SQS queue, a public host — is recorded as not
sent. The outcome of each attempt is what the admin API shows; the token in the URL is hidden
there.
"""

from __future__ import annotations

import ipaddress
import json
import re
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlsplit

TIMEOUT_SECONDS = 5
_TOKEN = re.compile(r"(token=)[^&]*")


def callback_target(callback_url: str, request_id: str) -> str:
    """The URL Teal calls: ours with ``requestId`` appended to its query."""
    separator = "&" if urlsplit(callback_url).query else ("" if callback_url.endswith("?") else "?")
    return callback_url + separator + urlencode({"requestId": request_id})


def send_callback(callback_url: str, request_id: str, *, method: str) -> dict[str, Any]:
    """Invoke the callback once; returns how it went (never raises)."""
    url = callback_target(callback_url, request_id)
    shown = _TOKEN.sub(r"\1[REDACTED]", url)
    record: dict[str, Any] = {"method": method, "url": shown, "sent": False, "status": None}
    if not _is_loopback(url):
        record["error"] = "not a loopback address; not sent"
        return record
    data = json.dumps({"requestId": request_id}).encode() if method == "POST" else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (http only)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            record.update(sent=True, status=response.status)
    except urllib.error.HTTPError as error:
        record.update(sent=True, status=error.code)
    except (OSError, ValueError) as error:
        record["error"] = f"{type(error).__name__}: {error}"
    return record


def _is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
