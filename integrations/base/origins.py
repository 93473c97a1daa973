"""Where a credentials row's ``base_url`` may point: each integration's known production and
sandbox origins (``docs/carriers/*.md``), plus whatever origins the deployment allows on top
(``PONDOPS_CARRIER_EXTRA_ORIGINS``: the demo's and the tests' loopback simulators).

A base_url is free text typed by an operator, and every call sends the row's secret to it; so
it must be https and one of these origins, or it is refused when the row is saved — with a
message naming the integration and listing what it may be. Plain data and functions: no Django.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    """``scheme://host[:port]``: an exact host, or (``host_pattern``) a host matching a regular
    expression in full (Jasper's ``restapi<N>.jasper.com``); ``port`` None matches any port
    (``http://127.0.0.1:*``). ``label`` is how messages show it."""

    scheme: str
    host: str = ""
    port: int | None = 443
    host_pattern: str = ""
    label: str = ""

    @classmethod
    def parse(cls, text: str) -> Origin:
        """``https://host``, ``https://host:8443`` or ``http://127.0.0.1:*``; ValueError for
        anything else (a path, credentials, a scheme other than http/https)."""
        value = text.strip()
        wildcard = value.endswith(":*")
        parts = urlsplit(value[:-2] if wildcard else value)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"{text!r} is not an origin (scheme://host[:port], port may be *)")
        if parts.username or parts.password or parts.path not in ("", "/") or parts.query:
            raise ValueError(f"{text!r} is not an origin: no path, query or credentials")
        try:
            port = None if wildcard else parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError as exc:
            raise ValueError(f"{text!r} has an invalid port") from exc
        return cls(scheme=parts.scheme, host=parts.hostname, port=port, label=value)

    def matches(self, scheme: str, host: str, port: int) -> bool:
        if scheme != self.scheme or (self.port is not None and port != self.port):
            return False
        if self.host_pattern:
            return re.fullmatch(self.host_pattern, host) is not None
        return host == self.host

    def __str__(self) -> str:
        if self.label:
            return self.label
        default = DEFAULT_PORTS.get(self.scheme)
        port = "*" if self.port is None else str(self.port)
        suffix = "" if self.port == default else f":{port}"
        return f"{self.scheme}://{self.host}{suffix}"


def known(url: str) -> Origin:
    """A carrier's documented origin, written as its contract writes it."""
    origin = Origin.parse(url)
    return Origin(scheme=origin.scheme, host=origin.host, port=origin.port)


def origins_parse(texts: Iterable[str]) -> tuple[Origin, ...]:
    """The deployment's extra origins (a setting's comma-separated list, already split)."""
    return tuple(Origin.parse(text) for text in texts if text.strip())


def url_origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, lower-case host, port) of an http(s) URL; None when it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme]


def matching(url: str, origins: Sequence[Origin]) -> Origin | None:
    """The first of ``origins`` the URL's origin matches."""
    origin = url_origin(url)
    if origin is None:
        return None
    return next((candidate for candidate in origins if candidate.matches(*origin)), None)


def base_url_origin_problems(
    *,
    display_name: str,
    base_url: str,
    known_origins: Sequence[Origin],
    base_path: str = "",
    extra_origins: Sequence[Origin] = (),
) -> list[str]:
    """Why ``base_url`` may not be saved for this integration ([] when it may).

    It must be https and one of ``known_origins`` — carrying exactly ``base_path`` after the
    origin when the contract puts a prefix there (POND) — or match one of ``extra_origins``
    (any path: the simulators mount each carrier under its own). Never credentials, a query,
    a fragment or a backslash: what one URL parser reads as the host another may not."""
    value = base_url.strip()
    parts = urlsplit(value)
    if "\\" in value or parts.username or parts.password or "@" in parts.netloc:
        return [f"{display_name} base_url must not contain credentials"]
    if parts.query or parts.fragment:
        return [f"{display_name} base_url must not have a query or a fragment"]
    if matching(value, extra_origins):
        return []
    found = matching(value, known_origins)
    if found is None or parts.scheme != "https":
        allowed = ", ".join(str(origin) for origin in known_origins)
        where = f" (each followed by {base_path})" if base_path else ""
        extra = ", ".join(str(origin) for origin in extra_origins)
        also = f"; this deployment also allows {extra}" if extra else ""
        return [
            f"{display_name} base_url must be https and one of its known origins: "
            f"{allowed}{where}{also}"
        ]
    if base_path and parts.path.rstrip("/") != base_path:
        return [f"{display_name} base_url on {found} must be {found}{base_path}"]
    return []
