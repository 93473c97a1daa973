"""The simulators' per-account limits, judged on arrival times given by the test (no clock, no
sleeping): the token bucket's bursts and refill, and the strict sliding window that refuses any
request that would make more than its count within a trailing window."""

from __future__ import annotations

import pytest

from integrations.simulators.payloads import InvalidPayload
from integrations.simulators.ratelimit import (
    RateWindow,
    SlidingWindow,
    TokenBucket,
    limit_for,
    minute_limit_for,
    rate_window,
)


def answers(limit: SlidingWindow | TokenBucket, arrivals: list[float]) -> list[bool]:
    return [limit.take(arrived) for arrived in arrivals]


@pytest.mark.parametrize(
    ("count", "arrivals", "expected"),
    [
        pytest.param(3, [0.0, 0.1, 0.2, 0.3], [True, True, True, False], id="burst-of-the-count"),
        pytest.param(
            3, [0.0, 0.1, 0.2, 0.999, 1.0], [True, True, True, False, True], id="one-second-later"
        ),
        pytest.param(  # evenly spaced just under 1/rate: the 4th would be the 4th in 0.99 s
            3, [0.0, 0.33, 0.66, 0.99, 1.32], [True, True, True, False, True], id="evenly-too-fast"
        ),
        pytest.param(  # a refusal is not counted: the window is of accepted requests
            2, [0.0, 0.5, 0.9, 1.0, 1.4, 1.5], [True, True, False, True, False, True], id="refused"
        ),
        pytest.param(  # judged out of arrival order (after latency): the middle one would make 3
            2, [0.0, 0.8, 0.5], [True, True, False], id="late-judgement-of-an-earlier-arrival"
        ),
        pytest.param(2, [1.0, 0.0, 1.05], [True, True, True], id="earlier-arrival-out-of-window"),
        pytest.param(2, [1.0, 0.1, 1.05], [True, True, False], id="earlier-arrival-in-window"),
    ],
)
def test_a_sliding_window_never_admits_more_than_its_count_within_any_trailing_window(
    count: int, arrivals: list[float], expected: list[bool]
) -> None:
    assert answers(SlidingWindow(count, 1.0), arrivals) == expected


def test_a_sliding_window_forgets_arrivals_too_old_to_matter() -> None:
    window = SlidingWindow(2, 1.0)
    assert answers(window, [0.0, 0.5, 100.0, 100.5, 100.9]) == [True, True, True, True, False]
    assert window._accepted == [100.0, 100.5]


def test_a_token_bucket_allows_a_burst_of_its_capacity_then_its_refill() -> None:
    bucket = TokenBucket(2)
    # 2 tokens at once, a third refused, one more 0.5 s later (2 tokens a second)
    assert answers(bucket, [0.0, 0.0, 0.0, 0.5, 0.5]) == [True, True, False, True, False]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({}, RateWindow.BUCKET),
        ({"rate_window": None}, RateWindow.BUCKET),
        ({"rate_window": "bucket"}, RateWindow.BUCKET),
        ({"rate_window": "sliding"}, RateWindow.SLIDING),
    ],
)
def test_the_rate_window_defaults_to_the_token_bucket(
    payload: dict[str, object], expected: RateWindow
) -> None:
    assert rate_window(payload) is expected


def test_an_unknown_rate_window_is_refused() -> None:
    with pytest.raises(InvalidPayload, match="rate_window must be one of 'bucket', 'sliding'"):
        rate_window({"rate_window": "fixed"})


def test_the_limits_for_a_per_second_and_a_per_minute_rate() -> None:
    per_second = limit_for(40, RateWindow.SLIDING)
    per_minute = minute_limit_for(120, RateWindow.SLIDING)
    assert isinstance(per_second, SlidingWindow)
    assert (per_second.count, per_second.window, per_second.rate) == (40, 1.0, 40.0)
    assert isinstance(per_minute, SlidingWindow)
    assert (per_minute.count, per_minute.window, per_minute.rate) == (120, 60.0, 2.0)
    assert isinstance(limit_for(40), TokenBucket)
    assert limit_for(0, RateWindow.SLIDING) is None
    assert minute_limit_for(None, RateWindow.SLIDING) is None
