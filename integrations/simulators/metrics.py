"""What the simulator observed: call counters, per-carrier stats and a ring of recent requests.

Every carrier request is counted when it is *received*, before faults, credentials or rate
limits decide the answer, so a test can assert "the client called once" even when that call
was answered with a 503. None of these classes lock; the simulator's lock guards them.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .messages import SimRequest

REQUEST_LOG_SIZE = 1000
NO_KEY = ""  # counter key for a call whose device key could not be read (e.g. bad JSON)

# Header names whose values never leave the simulator, in any casing.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "cookie"})
_SECRET_HINTS = ("token", "secret", "password")
REDACTED = "[redacted]"


class CallCounters:
    """Requests received, by carrier, operation and key."""

    def __init__(self, carriers: Iterable[str]) -> None:
        self._carriers = tuple(carriers)
        self._counts: dict[str, dict[str, dict[str, int]]] = {}
        self.clear()

    def clear(self) -> None:
        self._counts = {carrier: {} for carrier in self._carriers}

    def record(self, carrier: str, op: str, key: str | None) -> None:
        by_key = self._counts[carrier].setdefault(op, {})
        name = NO_KEY if key is None else key
        by_key[name] = by_key.get(name, 0) + 1

    def snapshot(self) -> dict[str, dict[str, dict[str, int]]]:
        return {
            carrier: {op: dict(by_key) for op, by_key in ops.items()}
            for carrier, ops in self._counts.items()
        }

    def count(self, carrier: str, op: str | None = None, key: str | None = None) -> int:
        """Requests for the carrier, narrowed to one op and one key when given."""
        total = 0
        for op_name, by_key in self._counts.get(carrier, {}).items():
            if op is not None and op_name != op:
                continue
            total += sum(by_key.values()) if key is None else by_key.get(key, 0)
        return total


@dataclass
class CarrierStats:
    """Totals for one carrier plus the busiest one-second (sliding) window seen."""

    requests: int = 0
    rate_limited: int = 0
    faults_injected: int = 0
    max_requests_in_1s: int = 0
    _window: deque[float] = field(default_factory=deque)

    def record_request(self, now: float) -> None:
        self.requests += 1
        self._window.append(now)
        while self._window and self._window[0] <= now - 1.0:
            self._window.popleft()
        self.max_requests_in_1s = max(self.max_requests_in_1s, len(self._window))

    def as_json(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "rate_limited": self.rate_limited,
            "faults_injected": self.faults_injected,
            "max_requests_in_1s": self.max_requests_in_1s,
        }


class RequestLog:
    """The last :data:`REQUEST_LOG_SIZE` carrier requests, secrets redacted."""

    def __init__(self, size: int = REQUEST_LOG_SIZE) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._sequence = 0

    def clear(self) -> None:
        self._entries.clear()
        self._sequence = 0

    def append(
        self, *, carrier: str, op: str, key: str | None, prefix: str, request: SimRequest
    ) -> dict[str, Any]:
        """Record a request; the returned entry is updated later with the answer given."""
        self._sequence += 1
        entry: dict[str, Any] = {
            "seq": self._sequence,
            "time": time.time(),
            "carrier": carrier,
            "op": op,
            "key": key,
            "method": request.method,
            "path": request.target,
            "carrier_path": request.target[len(prefix) :],
            "headers": redact_headers(request.headers),
            "body": _readable_body(request.body),
            "idempotency_key": request.header("Idempotency-Key"),
            "request_id": request.header("RequestId"),  # POND's correlation header
            "status": None,
            "fault": None,
        }
        self._entries.append(entry)
        return entry

    def select(
        self,
        *,
        carrier: str | None = None,
        op: str | None = None,
        key: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` matching entries, oldest first."""
        matching = [
            dict(entry)
            for entry in self._entries
            if (carrier is None or entry["carrier"] == carrier)
            and (op is None or entry["op"] == op)
            and (key is None or entry["key"] == key)
        ]
        return matching[-limit:] if limit > 0 else []


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: REDACTED if _is_secret(name) else value for name, value in headers.items()}


def _is_secret(header_name: str) -> bool:
    name = header_name.lower()
    return name in SECRET_HEADERS or any(hint in name for hint in _SECRET_HINTS)


def _readable_body(body: bytes) -> Any:
    if not body:
        return None
    try:
        return _redact_json(json.loads(body))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return body.decode("utf-8", errors="replace")


def _redact_json(value: Any) -> Any:
    """Password-, secret- and token-named fields masked, as in the headers."""
    if isinstance(value, dict):
        return {k: REDACTED if _is_secret(k) else _redact_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(item) for item in value]
    return value
