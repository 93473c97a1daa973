"""Faults queued by tests and consumed, in order, by the carrier requests they match.

A fault matches a request by carrier, operation and key (the ICCID or Rev number; ``None``
matches any key). Each queued fault answers ``times`` matching requests (``-1`` = forever)
before the next matching fault, if any, takes over.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .payloads import InvalidPayload

FOREVER = -1


class FaultKind(StrEnum):
    STATUS = "status"  # the carrier's JSON error body with that status (+ Retry-After)
    HTML = "html"  # that status with a gateway HTML page
    EMPTY = "empty"  # that status with an empty body
    TIMEOUT = "timeout"  # hold the request delay_ms, then answer normally
    DROP = "drop"  # close the connection without answering


class InvalidFault(InvalidPayload):
    """A fault description the simulator cannot honour; the message says why."""


@dataclass
class Fault:
    carrier: str
    op: str
    key: str | None
    kind: FaultKind
    status: int = 503
    retry_after: str | None = None
    delay_ms: int = 0
    times: int = 1

    def matches(self, carrier: str, op: str, key: str | None) -> bool:
        return self.carrier == carrier and self.op == op and (self.key is None or self.key == key)

    def describe(self) -> dict[str, Any]:
        return {
            "carrier": self.carrier,
            "op": self.op,
            "key": self.key,
            "kind": str(self.kind),
            "status": self.status,
            "retry_after": self.retry_after,
            "delay_ms": self.delay_ms,
            "times": self.times,
        }


def fault_from_json(payload: dict[str, Any], carrier_ops: dict[str, set[str]]) -> Fault:
    """Validate an admin ``POST /_sim/faults`` body; unknown carriers or ops are refused so a
    typo in a test fails loudly instead of never firing."""
    carrier = payload.get("carrier")
    op = payload.get("op")
    if carrier not in carrier_ops:
        raise InvalidFault(f"carrier must be one of {sorted(carrier_ops)}, not {carrier!r}")
    if op not in carrier_ops[carrier]:
        raise InvalidFault(f"op for {carrier} must be one of {sorted(carrier_ops[carrier])}")
    try:
        kind = FaultKind(payload.get("kind") or FaultKind.STATUS)
    except ValueError as error:
        raise InvalidFault(f"kind must be one of {[k.value for k in FaultKind]}") from error
    status = _int(payload, "status", 503)
    if not 100 <= status <= 599:
        raise InvalidFault("status must be an HTTP status code")
    delay_ms = _int(payload, "delay_ms", 0)
    if delay_ms < 0:
        raise InvalidFault("delay_ms must not be negative")
    if kind is FaultKind.TIMEOUT and delay_ms == 0:
        raise InvalidFault("a timeout fault needs delay_ms > 0")
    times = checked_times(_int(payload, "times", 1))
    key = payload.get("key")
    retry_after = payload.get("retry_after")
    return Fault(
        carrier=carrier,
        op=op,
        key=None if key is None else str(key),
        kind=kind,
        status=status,
        retry_after=None if retry_after is None else str(retry_after),
        delay_ms=delay_ms,
        times=times,
    )


def checked_times(times: int) -> int:
    """How many requests a fault (or a Jasper wrong echo) answers: a positive count, or
    ``FOREVER``."""
    if times == 0 or times < FOREVER:
        raise InvalidFault("times must be a positive count or -1 (forever)")
    return times


def times_left(times: int) -> int:
    """``times`` after one use: ``FOREVER`` stays ``FOREVER``, ``0`` means used up."""
    return times if times == FOREVER else times - 1


def _int(payload: dict[str, Any], name: str, default: int) -> int:
    value = payload.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidFault(f"{name} must be an integer")
    return value


class FaultQueue:
    """Queued faults; not thread-safe on its own (the simulator's lock guards it)."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def pending(self) -> list[dict[str, Any]]:
        return [fault.describe() for fault in self._faults]

    def take(self, carrier: str, op: str, key: str | None) -> Fault | None:
        """The first queued fault matching the request, using up one of its ``times``."""
        for index, fault in enumerate(self._faults):
            if not fault.matches(carrier, op, key):
                continue
            fault.times = times_left(fault.times)
            if fault.times == 0:
                del self._faults[index]
            return fault
        return None
