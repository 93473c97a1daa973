"""The shared rate and concurrency limits, in the database and in Redis (127.0.0.1:6379), and
the throttle the clients hold for each request. They are shared by every thread, process and
host, so the tests use several threads with their own connections."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
import redis
from django.db import connection
from django.utils import timezone

from bulkchanges.models import ConcurrencySlot, RateLimitBucket
from bulkchanges.ratelimit import (
    DatabaseConcurrency,
    DatabaseRateLimit,
    RateLimit,
    RedisConcurrency,
    RedisRateLimit,
    SharedThrottle,
)

REDIS_URL = "redis://127.0.0.1:6379/15"

pytestmark = pytest.mark.django_db(transaction=True)


def redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


needs_redis = pytest.mark.skipif(not redis_available(), reason="no Redis on 127.0.0.1:6379")


def in_threads(count: int, work: Callable[[], None]) -> None:
    def run() -> None:
        try:
            work()
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


def sent_at(rate: RateLimit, *, senders: int, each: int) -> list[float]:
    times: list[float] = []
    lock = threading.Lock()

    def send() -> None:
        for _ in range(each):
            rate.acquire()
            with lock:
                times.append(time.time())

    in_threads(senders, send)
    return sorted(times)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda key: DatabaseRateLimit(key, 20), id="database"),
        pytest.param(lambda key: RedisRateLimit(key, 20, REDIS_URL), id="redis", marks=needs_redis),
    ],
)
def test_senders_together_never_exceed_the_rate(make: Callable[[str], RateLimit]) -> None:
    rate = make(f"test-{uuid.uuid4().hex}")
    times = sent_at(rate, senders=4, each=6)
    assert len(times) == 24
    # 24 requests at 20/s: slots are 50 ms apart, so they span at least 23 intervals.
    assert times[-1] - times[0] >= 23 * 0.05 * 0.95
    for start in range(len(times) - 20):
        assert times[start + 20] - times[start] >= 0.95  # never 21 in one second


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda key: DatabaseRateLimit(key, 100), id="database"),
        pytest.param(
            lambda key: RedisRateLimit(key, 100, REDIS_URL), id="redis", marks=needs_redis
        ),
    ],
)
def test_a_429_pushes_every_sender_back(make: Callable[[str], RateLimit]) -> None:
    rate = make(f"test-{uuid.uuid4().hex}")
    rate.acquire()
    rate.penalise(0.5)
    started = time.time()
    rate.acquire()
    assert time.time() - started >= 0.45


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda key: DatabaseConcurrency(key, 2), id="database"),
        pytest.param(
            lambda key: RedisConcurrency(key, 2, REDIS_URL), id="redis", marks=needs_redis
        ),
    ],
)
def test_no_more_than_the_limit_hold_a_slot_at_once(make: Callable[[str], object]) -> None:
    slots = make(f"test-{uuid.uuid4().hex}")
    holding, peak, done = [0], [0], [0]
    lock = threading.Lock()

    def work() -> None:
        for _ in range(3):
            with slots.hold():  # type: ignore[attr-defined]
                with lock:
                    holding[0] += 1
                    peak[0] = max(peak[0], holding[0])
                time.sleep(0.02)
                with lock:
                    holding[0] -= 1
                    done[0] += 1

    in_threads(6, work)
    assert done[0] == 18
    assert peak[0] == 2


def test_a_slot_whose_holder_died_frees_itself_after_its_lease() -> None:
    key = f"test-{uuid.uuid4().hex}"
    slots = DatabaseConcurrency(key, 1)
    ConcurrencySlot.objects.filter(key=key).update(
        holder=uuid.uuid4(), held_until=timezone.now() - timedelta(seconds=1)
    )
    with slots.hold():
        assert ConcurrencySlot.objects.get(key=key).holder is not None
    assert ConcurrencySlot.objects.get(key=key).holder is None


def test_the_database_rate_limit_makes_its_row_again_when_it_was_removed() -> None:
    key = f"test-{uuid.uuid4().hex}"
    rate = DatabaseRateLimit(key, 100)
    RateLimitBucket.objects.filter(key=key).delete()
    rate.acquire()
    rate.acquire()
    assert RateLimitBucket.objects.get(key=key).next_slot > time.time()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda key: SharedThrottle(DatabaseRateLimit(key, 50), DatabaseConcurrency(key, 2)),
            id="database",
        ),
        pytest.param(
            lambda key: SharedThrottle(
                RedisRateLimit(key, 50, REDIS_URL), RedisConcurrency(key, 2, REDIS_URL)
            ),
            id="redis",
            marks=needs_redis,
        ),
    ],
)
def test_requests_through_the_throttle_respect_both_the_rate_and_the_concurrent_calls(
    make: Callable[[str], SharedThrottle],
) -> None:
    """Six senders, 20 ms "requests": never more than 2 on the wire, never faster than 50/s."""
    throttle = make(f"test-{uuid.uuid4().hex}")
    on_wire, peak, started_at = [0], [0], []
    lock = threading.Lock()

    def send() -> None:
        for _ in range(4):
            with throttle.call():
                with lock:
                    on_wire[0] += 1
                    peak[0] = max(peak[0], on_wire[0])
                    started_at.append(time.time())
                time.sleep(0.02)
                with lock:
                    on_wire[0] -= 1

    in_threads(6, send)
    assert len(started_at) == 24
    assert peak[0] == 2
    times = sorted(started_at)
    assert times[-1] - times[0] >= 23 * 0.02 * 0.95  # 50/s: slots 20 ms apart
