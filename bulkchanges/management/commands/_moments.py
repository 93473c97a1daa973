"""The commands' one way to read a moment: ISO 8601 with a UTC offset (``--scheduled-for``)."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from bulkchanges.errors import ApplicationError


def moment_parse(text: str, *, option: str = "--scheduled-for") -> datetime:
    """``text`` as an aware datetime; ApplicationError (one line) when it is not ISO 8601 or
    names no UTC offset — a time without one would silently mean the server's zone."""
    try:
        moment = parse_datetime(text.strip())
    except ValueError:
        moment = None
    if moment is None:
        raise ApplicationError(
            f"{option} {text!r} is not an ISO 8601 time (for example 2026-12-02T18:00:00+00:00)"
        )
    if timezone.is_naive(moment):
        raise ApplicationError(
            f"{option} {text!r} has no UTC offset (for example 2026-12-02T18:00:00+00:00)"
        )
    return moment
