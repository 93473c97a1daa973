"""The simulator's own request and response values, independent of ``http.server``.

Carrier modules see only these: a parsed :class:`SimRequest` in, a :class:`SimResponse` out.
Keeping them free of sockets lets a handler be a plain function over in-memory state.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

JSON_CONTENT_TYPE = "application/json"


class MalformedBody(ValueError):
    """The request body is not the JSON the route expects."""


@dataclass(frozen=True)
class SimRequest:
    """One HTTP request as received: method, raw target, lower-cased headers and body bytes."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, last value wins (no carrier contract repeats a parameter)."""
        pairs = parse_qs(urlsplit(self.target).query, keep_blank_values=True)
        return {name: values[-1] for name, values in pairs.items()}

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def basic_credentials(self) -> tuple[str, str] | None:
        """``(user, password)`` from ``Authorization: Basic base64(user:password)``, split at
        the first colon; ``None`` when the header is absent, not Basic, not base64 of UTF-8
        text, has no colon or names no user."""
        scheme, _, encoded = (self.header("authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, colon, password = decoded.partition(":")
        return (user, password) if colon and user else None

    def json(self) -> Any:
        """The body parsed as JSON; raises :class:`MalformedBody` if it is not JSON."""
        if not self.body.strip():
            raise MalformedBody("request body is empty; JSON expected")
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise MalformedBody(f"request body is not valid JSON: {error}") from error

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; raises :class:`MalformedBody` for any other shape."""
        payload = self.json()
        if not isinstance(payload, dict):
            raise MalformedBody("request body must be a JSON object")
        return payload


@dataclass(frozen=True)
class SimResponse:
    """A complete response; the server adds Content-Length and keeps the connection alive.

    An interim answer (``status`` 1xx, e.g. Teal's 102 Processing) with a ``final`` response is
    written as a real HTTP interim response — status line and headers, no body — followed on
    the same connection, ``final_delay_s`` later, by ``final``: what a client reading the 1xx
    as its answer finds waiting on that connection for its next request."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    final: SimResponse | None = None
    final_delay_s: float = 0.0


@dataclass(frozen=True)
class Drop:
    """Close the connection without writing any response (the ``drop`` fault)."""


DROP = Drop()


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> SimResponse:
    return SimResponse(
        status=status,
        body=json.dumps(payload, separators=(",", ":")).encode(),
        content_type=JSON_CONTENT_TYPE,
        headers=dict(headers or {}),
    )


def empty_response(status: int, headers: dict[str, str] | None = None) -> SimResponse:
    return SimResponse(status=status, headers=dict(headers or {}))


def html_response(status: int, headers: dict[str, str] | None = None) -> SimResponse:
    """A gateway-style HTML error page whose ``<title>`` is e.g. ``502 Bad Gateway``."""
    title = f"{status} {reason_phrase(status)}".strip()
    page = (
        f"<!DOCTYPE html>\n<html><head><title>{title}</title></head>"
        f"<body><center><h1>{title}</h1></center><hr><center>sim-gateway</center></body></html>\n"
    )
    return SimResponse(
        status=status,
        body=page.encode(),
        content_type="text/html; charset=utf-8",
        headers=dict(headers or {}),
    )


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
