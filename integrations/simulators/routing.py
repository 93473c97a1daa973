"""Path patterns to handlers: the table every carrier module and the admin module fill in.

A pattern reads like the contract (``/{distributor_id}/sim/{iccid}/status``); each ``{name}``
matches one path segment and reaches the handler as ``call.params[name]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .messages import SimRequest, SimResponse

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass
class Call:
    """One routed request: the request, its path parameters and, once authenticated, the
    account it acts for."""

    request: SimRequest
    params: dict[str, str]
    account: Any = None


Handler = Callable[[Call], SimResponse]
KeyFunction = Callable[[Call], "str | None"]


@dataclass(frozen=True)
class Route:
    """A handler bound to a method and a path pattern.

    ``op`` names the carrier operation for counters and faults (``None`` for admin routes);
    ``key`` extracts the device key (ICCID, Rev number) the call is about, and
    ``authenticated=False`` exempts a route from the carrier's credential and rate checks.
    """

    method: str
    pattern: str
    handler: Handler
    op: str | None = None
    key: KeyFunction | None = None
    authenticated: bool = True


@dataclass(frozen=True)
class Mount:
    """Routes under one prefix, owned by a carrier (``carrier`` set) or by the admin API."""

    prefix: str
    carrier: str | None
    route: Route
    regex: re.Pattern[str]


@dataclass(frozen=True)
class Match:
    mount: Mount
    params: dict[str, str]


class MethodNotAllowed(LookupError):
    """The path exists but not for this method."""


class Router:
    """Ordered route table; first match wins."""

    def __init__(self) -> None:
        self._mounts: list[Mount] = []

    def add(self, prefix: str, routes: Iterable[Route], *, carrier: str | None = None) -> None:
        for route in routes:
            self._mounts.append(
                Mount(
                    prefix=prefix,
                    carrier=carrier,
                    route=route,
                    regex=_compile(prefix + route.pattern),
                )
            )

    def match(self, method: str, path: str) -> Match | None:
        """The route for ``method path``; ``None`` if no pattern matches the path.

        Raises :class:`MethodNotAllowed` when a pattern matches but only for other methods.
        """
        path_known = False
        for mount in self._mounts:
            found = mount.regex.fullmatch(path)
            if found is None:
                continue
            if mount.route.method == method:
                return Match(mount=mount, params=found.groupdict())
            path_known = True
        if path_known:
            raise MethodNotAllowed(path)
        return None

    def carrier_ops(self) -> dict[str, set[str]]:
        """Every carrier's operation names, for validating faults and counters queries."""
        ops: dict[str, set[str]] = {}
        for mount in self._mounts:
            if mount.carrier is not None and mount.route.op is not None:
                ops.setdefault(mount.carrier, set()).add(mount.route.op)
        return ops


def _compile(pattern: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(pattern)
    # split() alternates literal text and placeholder names.
    regex = "".join(
        re.escape(part) if index % 2 == 0 else f"(?P<{part}>[^/]+)"
        for index, part in enumerate(parts)
    )
    return re.compile(regex)
