"""Per-account token buckets: ``rate`` requests a second, bursts of up to ``capacity``."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """Capacity ``capacity`` tokens (default: ``rate``), refilled continuously at ``rate``
    tokens a second.

    Not thread-safe on its own: the simulator calls :meth:`take` under its lock.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        capacity: float | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive; use no bucket for an unlimited account")
        self.rate = float(rate)
        self.capacity = self.rate if capacity is None else float(capacity)
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()

    def take(self) -> bool:
        """Spend one token if there is one; ``False`` means the request must get a 429."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def bucket_for(rate_limit: float | None) -> TokenBucket | None:
    """A bucket for an account's configured rate; ``None``/``0`` means unlimited."""
    if not rate_limit:
        return None
    return TokenBucket(rate_limit)


def minute_bucket_for(per_minute: float | None) -> TokenBucket | None:
    """``per_minute`` calls in any minute: capacity ``per_minute``, refilled at
    ``per_minute / 60`` a second (``rate``, which the core's 429 message quotes);
    ``None``/``0`` means unlimited."""
    if not per_minute:
        return None
    return TokenBucket(per_minute / 60.0, capacity=per_minute)
