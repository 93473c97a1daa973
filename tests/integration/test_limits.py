"""The shared rate and concurrency limiters, in the database and in Redis (127.0.0.1:6379).
They are shared by every thread, process and host, so the tests use several threads with
their own connections."""

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

from bulkchanges.models import ConcurrencySlot
from bulkchanges.ratelimit import (
    DatabaseConcurrency,
    DatabaseThrottle,
    RedisConcurrency,
    RedisThrottle,
)
from integrations.base import Throttle

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


def sent_at(throttle: Throttle, *, senders: int, each: int) -> list[float]:
    times: list[float] = []
    lock = threading.Lock()

    def send() -> None:
        for _ in range(each):
            throttle.acquire()
            with lock:
                times.append(time.time())

    in_threads(senders, send)
    return sorted(times)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda key: DatabaseThrottle(key, 20), id="database"),
        pytest.param(lambda key: RedisThrottle(key, 20, REDIS_URL), id="redis", marks=needs_redis),
    ],
)
def test_senders_together_never_exceed_the_rate(make: Callable[[str], Throttle]) -> None:
    throttle = make(f"test-{uuid.uuid4().hex}")
    times = sent_at(throttle, senders=4, each=6)
    assert len(times) == 24
    # 24 requests at 20/s: slots are 50 ms apart, so they span at least 23 intervals.
    assert times[-1] - times[0] >= 23 * 0.05 * 0.95
    for start in range(len(times) - 20):
        assert times[start + 20] - times[start] >= 0.95  # never 21 in one second


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda key: DatabaseThrottle(key, 100), id="database"),
        pytest.param(lambda key: RedisThrottle(key, 100, REDIS_URL), id="redis", marks=needs_redis),
    ],
)
def test_a_429_pushes_every_sender_back(make: Callable[[str], Throttle]) -> None:
    throttle = make(f"test-{uuid.uuid4().hex}")
    throttle.acquire()
    throttle.penalise(0.5)
    started = time.time()
    throttle.acquire()
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
