"""The retry decision and backoff: small pure functions, table-driven (which answers are
worth a retry, and their Retry-After, are tests/unit/integrations/test_errors.py)."""

from __future__ import annotations

import pytest

from bulkchanges.retry import (
    backoff_seconds,
    outage_delay_seconds,
    should_retry,
    slot_wait_seconds,
    sqs_delay_seconds,
)


@pytest.mark.parametrize(
    ("retry_number", "jitter", "retry_after", "expected"),
    [
        (0, 0.5, None, 30.0),  # base, jitter centred
        (1, 0.5, None, 60.0),
        (2, 0.5, None, 120.0),
        (0, 0.0, None, 24.0),  # jitter lower bound 0.8
        (0, 0.999999, None, 30 * 1.2 - 30 * 0.4 * 0.000001),
        (0, 0.5, 1200.0, 1200.0),  # Retry-After wins when longer
        (3, 0.5, 10.0, 240.0),  # backoff wins when longer
    ],
)
def test_backoff_is_exponential_with_jitter_and_never_shorter_than_retry_after(
    retry_number: int, jitter: float, retry_after: float | None, expected: float
) -> None:
    delay = backoff_seconds(retry_number, base=30, retry_after=retry_after, jitter=lambda: jitter)
    assert delay == pytest.approx(expected)


@pytest.mark.parametrize(
    ("remaining", "expected"),
    [(-5, 0), (0, 0), (0.2, 1), (1.0, 1), (1.5, 2), (899.1, 900), (1200, 900)],
)
def test_sqs_delay_rounds_up_and_caps_at_900(remaining: float, expected: int) -> None:
    assert sqs_delay_seconds(remaining) == expected


@pytest.mark.parametrize(
    ("retry_number", "max_retries", "expected"),
    [(0, 5, True), (4, 5, True), (5, 5, False), (0, 0, False)],
)
def test_should_retry_while_retries_remain(
    retry_number: int, max_retries: int, expected: bool
) -> None:
    assert should_retry(retry_number, max_retries=max_retries) is expected


@pytest.mark.parametrize(
    ("retry_number", "retry_after", "expected"),
    [
        (0, 300_000_000_000.0, 3600.0),  # a carrier's absurd Retry-After: the cap
        (0, float("inf"), 30.0),  # not a number of seconds: ignored, the backoff stands
        (0, float("nan"), 30.0),
        (10_000, None, 3600.0),  # any exponent: no OverflowError, the cap
        (7, None, 3600.0),  # 30 s x 2**7 = 3840 s: capped
        (6, 1200.0, 1920.0),  # under the cap nothing changes
    ],
)
def test_backoff_is_capped_and_overflow_safe(
    retry_number: int, retry_after: float | None, expected: float
) -> None:
    delay = backoff_seconds(
        retry_number, base=30, retry_after=retry_after, cap=3600, jitter=lambda: 0.5
    )
    assert delay == pytest.approx(expected)


@pytest.mark.parametrize(
    ("failures", "jitter", "expected"),
    [
        (1, 0.0, 0.5),  # first failure: 1 s, equal jitter [0.5, 1)
        (1, 0.999999, 1.0 - 0.5 * 0.000001),
        (2, 0.0, 1.0),
        (3, 0.0, 2.0),
        (5, 0.0, 8.0),
        (6, 0.0, 15.0),  # 2**5 = 32 s: capped at 30, then jittered
        (6, 0.999999, 30.0 - 15 * 0.000001),  # never above the cap
        (10_000, 0.0, 15.0),  # any count: no OverflowError
        (0, 0.0, 0.5),  # nonsense counts act like the first failure
        (-3, 0.0, 0.5),
    ],
)
def test_outage_delay_doubles_to_a_30_s_cap_with_equal_jitter(
    failures: int, jitter: float, expected: float
) -> None:
    assert outage_delay_seconds(failures, jitter=lambda: jitter) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("attempt", "jitter", "expected"),
    [
        (0, 1.0, 0.02),  # the first pause: up to 20 ms
        (1, 1.0, 0.04),  # doubling
        (4, 1.0, 0.32),
        (5, 1.0, 0.5),  # 0.64 s capped at 500 ms
        (10_000, 1.0, 0.5),  # any attempt: no OverflowError, the cap
        (3, 0.0, 0.0),  # full jitter: anywhere from nothing …
        (3, 0.5, 0.08),  # … to the whole step
        (-1, 1.0, 0.02),  # a negative attempt counts as the first
    ],
)
def test_waiting_for_a_slot_backs_off_exponentially_with_full_jitter_to_a_cap(
    attempt: int, jitter: float, expected: float
) -> None:
    assert slot_wait_seconds(attempt, jitter=lambda: jitter) == pytest.approx(expected)
