"""Readers for JSON request bodies that fail with one exception type, mapped to a 400.

Carrier routes answer :class:`InvalidPayload` with the carrier's own error body; admin routes
with ``{"error": ...}``. Readers are strict on types (``true`` is not an integer, ``"42"`` is
not a customer id) because the simulators exist to catch a client drifting from the contract.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any


class InvalidPayload(ValueError):
    """A request body is JSON but not the shape the route requires."""


def required(payload: Mapping[str, Any], name: str) -> Any:
    if payload.get(name) is None:
        raise InvalidPayload(f"{name} is required")
    return payload[name]


def required_int(payload: Mapping[str, Any], name: str) -> int:
    value = required(payload, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPayload(f"{name} must be an integer")
    return value


def optional_int(payload: Mapping[str, Any], name: str) -> int | None:
    if payload.get(name) is None:
        return None
    return required_int(payload, name)


def required_str(payload: Mapping[str, Any], name: str) -> str:
    value = required(payload, name)
    if not isinstance(value, str) or not value:
        raise InvalidPayload(f"{name} must be a non-empty string")
    return value


def required_list(payload: Mapping[str, Any], name: str) -> list[Any]:
    value = required(payload, name)
    if not isinstance(value, list):
        raise InvalidPayload(f"{name} must be a list")
    return value


def optional_text(payload: Mapping[str, Any], name: str) -> str | None:
    """A non-empty string, or ``None`` when absent or ``null`` (an admin "stop doing that")."""
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidPayload(f"{name} must be a non-empty string or null")
    return value


def one_of(payload: Mapping[str, Any], name: str, allowed: Collection[str]) -> str:
    value = required(payload, name)
    if value not in allowed:
        choices = ", ".join(repr(choice) for choice in allowed)
        raise InvalidPayload(f"{name} must be one of {choices}, not {value!r}")
    return str(value)


def optional_rate(payload: Mapping[str, Any], name: str, default: float | None) -> float | None:
    """A requests-per-second limit: a non-negative number, ``0``/``null`` meaning unlimited."""
    if name not in payload:
        return default
    value = payload[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidPayload(f"{name} must be a non-negative number or null")
    return float(value)
