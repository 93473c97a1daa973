"""The audit record of an external HTTP call, and the one redaction function.

Every call a client makes — failed or not — is announced as a :class:`CallStart` to the client's
``on_call_start`` recorder *before* it is sent, and becomes one :class:`CallRecord` handed to its
``on_call`` recorder once answered (or failed), both carrying the same ``call_id``: the audit log
writes a call's row before the call and completes it after, so a worker that dies mid-call leaves
a row saying no answer came, never a call without a row (``docs/architecture.md``).
Its text is what an operator may read: every known secret value and every secret-named header or
body field is replaced by :data:`REDACTED`, and bodies are cut at :data:`MAX_AUDIT_BODY`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_AUDIT_BODY = 10 * 1024
REDACTED = "[REDACTED]"

SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "vz-m2m-token",
        "cookie",
        "set-cookie",
        "app-secret",  # Telegence
        "apisecret",  # Teal
        "ocp-apim-subscription-key",  # Rev.io's API management
    }
)
_SENSITIVE_JSON_KEY = re.compile(
    r'("(?:[A-Za-z_]*(?:password|secret|token|api_?key)[A-Za-z_]*)"\s*:\s*)"(?:[^"\\]|\\.)*"',
    re.IGNORECASE,
)
_SENSITIVE_FORM_KEY = re.compile(
    r"\b((?:[A-Za-z_]*(?:password|secret|token|api_?key)[A-Za-z_]*)=)[^&\s]+", re.IGNORECASE
)


@dataclass(frozen=True)
class CallStart:
    """An external HTTP call about to be sent (redacted, as its :class:`CallRecord` will be)."""

    call_id: str
    description: str
    method: str
    url: str
    request_text: str


@dataclass(frozen=True)
class CallRecord:
    """One external HTTP call as the audit log stores it: redacted, bodies truncated.
    ``call_id`` is its :class:`CallStart`'s."""

    description: str
    method: str
    url: str
    request_text: str
    response_status: int | None
    response_text: str
    elapsed_ms: int
    call_id: str = ""


CallRecorder = Callable[[CallRecord], None]
CallStartRecorder = Callable[[CallStart], None]


def ignore_call(call: CallRecord) -> None:
    """The recorder of a client given none: the record is dropped."""
    return None


def ignore_call_start(start: CallStart) -> None:
    """The start recorder of a client given none: nothing is written before a call."""
    return None


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """The one redaction function: removes every known secret value and masks password-, secret-,
    token- and key-named fields in JSON and form bodies. Safe to apply twice."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, REDACTED)
    text = _SENSITIVE_JSON_KEY.sub(rf'\1"{REDACTED}"', text)
    return _SENSITIVE_FORM_KEY.sub(rf"\1{REDACTED}", text)


def truncate(text: str) -> str:
    """``text`` cut at :data:`MAX_AUDIT_BODY` characters, saying how long it was."""
    if len(text) <= MAX_AUDIT_BODY:
        return text
    return text[:MAX_AUDIT_BODY] + f"… [truncated, {len(text)} characters]"


def audit_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` as the audit log may keep it: redacted, then truncated."""
    return truncate(redact(text, secrets))


def request_text(
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None,
    headers: Mapping[str, str],
    body: str,
    secrets: Iterable[str],
) -> str:
    """A request as the audit log shows it: ``METHOD /path?query``, one ``Name: value`` line per
    header (sensitive headers as :data:`REDACTED`), a blank line and the body."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    if params:
        target += ("&" if "?" in target else "?") + "&".join(f"{k}={v}" for k, v in params.items())
    lines = [f"{method} {target}"]
    for name, value in headers.items():
        shown = REDACTED if name.lower() in SENSITIVE_HEADERS else value
        lines.append(f"{name}: {shown}")
    text = "\n".join(lines) + ("\n\n" + body if body else "")
    return audit_text(text, secrets)
