"""When to retry and how long to wait: small pure functions, jitter isolated for tests."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

SQS_MAX_DELAY_SECONDS = 900


DEFAULT_MAX_DELAY_SECONDS = 3600.0
_MAX_EXPONENT = 40  # 2**40 base delays is beyond any cap: larger exponents change nothing


def backoff_seconds(
    retry_number: int,
    *,
    base: float,
    retry_after: float | None = None,
    cap: float = DEFAULT_MAX_DELAY_SECONDS,
    jitter: Callable[[], float] = random.random,
) -> float:
    """Delay before retry ``retry_number + 1``: base·2ⁿ scaled by a jitter factor in [0.8, 1.2),
    never shorter than the carrier's Retry-After, never longer than ``cap``
    (BULKCHANGE_MAX_RETRY_DELAY_SECONDS). Overflow-safe: any exponent, any Retry-After (a
    carrier's ``Retry-After: 300000000000``, an HTTP date in the year 9999, inf, nan)."""
    exponent = min(max(0, retry_number), _MAX_EXPONENT)
    exponential = base * (2**exponent) * (0.8 + 0.4 * jitter())
    wanted = max(exponential, retry_after if _finite(retry_after) else 0.0)
    return max(0.0, min(wanted, cap))


def outage_delay_seconds(
    failures: int,
    *,
    base: float = 1.0,
    cap: float = 30.0,
    jitter: Callable[[], float] = random.random,
) -> float:
    """How long a long-running process (``poll_sqs``) waits after its ``failures``-th failure in
    a row to reach SQS or its database before trying again: base·2ⁿ⁻¹ capped at ``cap``, then
    "equal jitter" (a factor in [0.5, 1)) so that pollers that lost SQS together do not return
    together — never above ``cap``, never below half of it once capped. Overflow-safe."""
    exponent = min(max(0, failures - 1), _MAX_EXPONENT)
    return min(base * (2**exponent), cap) * (0.5 + 0.5 * jitter())


SLOT_WAIT_FIRST_SECONDS = 0.02
SLOT_WAIT_CAP_SECONDS = 0.5


def slot_wait_seconds(
    attempt: int,
    *,
    first: float = SLOT_WAIT_FIRST_SECONDS,
    cap: float = SLOT_WAIT_CAP_SECONDS,
    jitter: Callable[[], float] = random.random,
) -> float:
    """Pause before look ``attempt + 1`` for a free concurrency slot: full jitter, uniform in
    [0, min(cap, first·2ⁿ)) — 20 ms, 40 ms, … up to 500 ms — so waiters neither spin nor wake
    together when a slot frees. Overflow-safe for any ``attempt``."""
    exponent = min(max(0, attempt), _MAX_EXPONENT)
    return jitter() * min(cap, first * (2**exponent))


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


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
