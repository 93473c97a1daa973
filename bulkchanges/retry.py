"""When to retry and how long to wait: small pure functions, jitter isolated for tests."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

SQS_MAX_DELAY_SECONDS = 900


def backoff_seconds(
    retry_number: int,
    *,
    base: float,
    retry_after: float | None = None,
    jitter: Callable[[], float] = random.random,
) -> float:
    """Delay before retry ``retry_number + 1``: base·2ⁿ scaled by a jitter factor in [0.8, 1.2),
    never shorter than the carrier's Retry-After."""
    exponential = base * (2 ** max(0, retry_number)) * (0.8 + 0.4 * jitter())
    return max(exponential, retry_after or 0.0)


def sqs_delay_seconds(remaining: float) -> int:
    """DelaySeconds for a message due in ``remaining`` seconds: rounded up (a message must never
    arrive before its device may be claimed) and capped at SQS's 900; a message that arrives
    early is sent again with what is left."""
    if remaining <= 0:
        return 0
    whole = int(remaining) + (0 if remaining == int(remaining) else 1)
    return min(SQS_MAX_DELAY_SECONDS, whole)


def should_retry(retry_number: int, *, max_retries: int) -> bool:
    """A transient failure at attempt ``retry_number`` is retried while attempts remain."""
    return retry_number < max_retries


def waiting_delay_seconds(
    waits: int, *, schedule_minutes: Sequence[float], time_scale: float = 1.0
) -> float:
    """Delay before an asynchronous carrier's next CONFIRM, after ``waits`` earlier waits: the
    schedule's entries in turn (1, 2, 5, 10 minutes), then its last one (15) for ever."""
    if not schedule_minutes:
        raise ValueError("the waiting schedule is empty")
    minutes = schedule_minutes[min(max(0, waits), len(schedule_minutes) - 1)]
    return minutes * 60 * time_scale
