"""Shared fakes of the carrier client tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class RecordingThrottle:
    """A :class:`~integrations.base.Throttle` that records: requests sent through it, how many
    held it at once (at most one in these single-threaded tests), and 429 penalties."""

    def __init__(self) -> None:
        self.acquired = 0
        self.holding = 0
        self.peak = 0
        self.penalties: list[float] = []

    @contextmanager
    def call(self) -> Iterator[None]:
        self.acquired += 1
        self.holding += 1
        self.peak = max(self.peak, self.holding)
        try:
            yield
        finally:
            self.holding -= 1

    def penalise(self, seconds: float) -> None:
        self.penalties.append(seconds)
