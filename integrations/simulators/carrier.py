"""What a carrier module provides to the simulator core.

The core owns everything cross-cutting — routing, counters, faults, latency, the rate limiter,
the lock. A carrier supplies its wire contract: routes with op names and device keys, how it
authenticates a request, how its error body looks, and its admin routes for seeding state.
Adding a carrier is one module with one :class:`CarrierSimulator` subclass, listed in
:data:`integrations.simulators.core.CARRIERS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .messages import SimRequest, SimResponse
from .ratelimit import AccountLimit
from .routing import Call, Route


class CarrierError(Exception):
    """Answer the current carrier request with the carrier's error body and this status."""

    def __init__(self, status: int, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class AdminError(Exception):
    """Answer the current admin request with ``{"error": message}`` and this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Account:
    """An authenticated caller; ``limit`` (its rate limit) is ``None`` for an unlimited
    account."""

    name: str
    limit: AccountLimit | None


class CarrierSimulator(ABC):
    """One carrier's fake. Every method runs under the simulator's lock: never block in one."""

    name: ClassVar[str]
    prefix: ClassVar[str]  # URL prefix of the carrier's base_url, e.g. "/rev"

    def __init__(self) -> None:
        """A new fake starts as :meth:`reset` leaves it."""
        self.reset()

    @abstractmethod
    def routes(self) -> Sequence[Route]:
        """The carrier API, patterns relative to :attr:`prefix`, each with an ``op``."""

    @abstractmethod
    def admin_routes(self) -> Sequence[Route]:
        """Seeding and inspection routes, patterns relative to ``/_sim/{name}``."""

    @abstractmethod
    def reset(self) -> None:
        """Forget all accounts and state."""

    @abstractmethod
    def authenticate(self, call: Call) -> Account:
        """The account the request acts for; raises :class:`CarrierError` (401) if none."""

    @abstractmethod
    def error_response(
        self,
        status: int,
        message: str,
        *,
        code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> SimResponse:
        """The carrier's error body for ``status`` (used for its own errors and for faults)."""

    def finish_response(self, request: SimRequest, response: SimResponse) -> SimResponse:
        """Last touch on every answer to this carrier's requests, faults included (POND echoes
        ``RequestId`` here). The default returns it unchanged."""
        return response
