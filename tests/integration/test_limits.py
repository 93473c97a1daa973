"""The shared rate and concurrency limits, in the database and in Redis (127.0.0.1:6379), and
the throttle the clients hold for each request. They are shared by every thread, process and
host, so the tests use several threads with their own connections, and subprocesses
(tests/fixtures/limiter_sender.py): one whose slot must survive its lease while it lives and be
free again soon after it is SIGKILLed, and two that send together against a simulator that
enforces a strict sliding one-second window."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

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
from integrations.simulators.control import SimulatorControl
from tests.conftest import ROOT, database_url, wait_for
from tests.fixtures.limiter_sender import build_throttle, in_threads, send_through

REDIS_URL = "redis://127.0.0.1:6379/15"

pytestmark = pytest.mark.django_db(transaction=True)


def redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


needs_redis = pytest.mark.skipif(not redis_available(), reason="no Redis on 127.0.0.1:6379")


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
    """Six senders, 50 ms "requests" (so that two must overlap to keep up with the rate): never
    more than 2 on the wire, never faster than 50/s."""
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
                time.sleep(0.05)
                with lock:
                    on_wire[0] -= 1

    in_threads(6, send)
    assert len(started_at) == 24
    assert peak[0] == 2
    times = sorted(started_at)
    assert times[-1] - times[0] >= 23 * 0.02 * 0.95  # 50/s: slots 20 ms apart


# --- Slots that die with their holder ---------------------------------------------------------

SHORT_LEASE = 0.6
BACKENDS = [
    pytest.param("database", id="database"),
    pytest.param("redis", id="redis", marks=needs_redis),
]


def slots_of(backend: str, key: str, limit: int) -> DatabaseConcurrency | RedisConcurrency:
    if backend == "redis":
        return RedisConcurrency(key, limit, REDIS_URL)
    return DatabaseConcurrency(key, limit)


@pytest.fixture
def short_lease(settings: Any) -> float:
    settings.BULKCHANGE_SLOT_LEASE_SECONDS = SHORT_LEASE
    return SHORT_LEASE


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_slot_whose_holder_stopped_renewing_is_taken_again_after_its_lease(
    backend: str, short_lease: float
) -> None:
    """A holder the renewer does not know (as a dead process's is): its slot is refused while
    the lease runs, then taken."""
    slots = slots_of(backend, f"test-{uuid.uuid4().hex}", 1)
    assert slots._acquire(uuid.uuid4())  # nobody renews it
    assert not slots._acquire(uuid.uuid4())
    wait_for(lambda: slots._acquire(uuid.uuid4()), timeout=10, interval=0.05, message="expiry")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_request_longer_than_the_lease_keeps_its_slot(backend: str, short_lease: float) -> None:
    """The renewer moves the lease while the request runs: no one else gets the slot during a
    request of four leases, and it is free as soon as the request ends."""
    slots = slots_of(backend, f"test-{uuid.uuid4().hex}", 1)
    holding, done = threading.Event(), threading.Event()

    def long_request() -> None:
        try:
            with slots.hold():
                holding.set()
                done.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=long_request)
    holder.start()
    try:
        assert holding.wait(timeout=10)
        probes = []
        deadline = time.monotonic() + 4 * short_lease
        while time.monotonic() < deadline:  # bounded: four leases
            probes.append(slots._acquire(uuid.uuid4()))
            time.sleep(short_lease / 6)
    finally:
        done.set()
        holder.join(timeout=30)
    assert len(probes) >= 6 and not any(probes)
    assert slots._acquire(uuid.uuid4())  # released at the end of the request


def sender_process(backend: str, mode: str, *args: str, lease: float = 10) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pondops.settings",
        "DATABASE_URL": database_url(),
        "BULKCHANGE_SLOT_LEASE_SECONDS": str(lease),
    }
    env.pop("REDIS_URL", None)
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests/fixtures/limiter_sender.py"),
            mode,
            "--backend",
            backend,
            "--redis-url",
            REDIS_URL,
            *args,
        ],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_slot_of_a_killed_process_is_free_again_about_a_lease_later(
    backend: str, short_lease: float
) -> None:
    """A real process holds the only slot past several leases (its renewer keeps it), is
    SIGKILLed, and the slot is taken again once its last lease runs out."""
    key = f"test-{uuid.uuid4().hex}"
    slots = slots_of(backend, key, 1)
    process = sender_process(backend, "hold", "--key", key, lease=short_lease)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "holding"
        for _ in range(6):  # bounded: three leases
            assert not slots._acquire(uuid.uuid4())
            time.sleep(short_lease / 2)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        wait_for(lambda: slots._acquire(uuid.uuid4()), timeout=10, interval=0.05, message="free")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


# --- Every sliding second at or under the limit -----------------------------------------------

SLIDING_RATE = 25
DISTRIBUTOR = "4242"
POND_KEY = "limiter-test-key"
ICCID = "89148000000000000007"


@pytest.fixture
def strict_carrier(simulator: SimulatorControl) -> str:
    """A POND account whose simulator refuses (429) a request that would make more than
    SLIDING_RATE within any trailing second; returns the URL of one SIM's status read."""
    simulator.add_pond_account(
        distributor_id=DISTRIBUTOR,
        api_key=POND_KEY,
        rate_limit=SLIDING_RATE,
        rate_window="sliding",
    )
    simulator.seed_pond_sims(
        distributor_id=DISTRIBUTOR, sims=[{"iccid": ICCID, "services": "ENABLED"}]
    )
    return f"{simulator.pond_base_url}/{DISTRIBUTOR}/sim/{ICCID}/status"


@pytest.mark.parametrize("backend", BACKENDS)
def test_threads_sharing_the_limiter_never_trip_a_strict_sliding_window(
    backend: str, strict_carrier: str, simulator: SimulatorControl
) -> None:
    throttle = build_throttle(
        backend,
        key=f"test-{uuid.uuid4().hex}",
        rate=SLIDING_RATE,
        concurrency=4,
        redis_url=REDIS_URL,
    )
    statuses = send_through(
        throttle, url=strict_carrier, api_key=POND_KEY, threads=6, requests_each=10
    )
    stats = simulator.stats()["pond"]
    assert statuses == Counter({200: 60})
    assert (stats["requests"], stats["rate_limited"]) == (60, 0)
    assert stats["max_requests_in_1s"] <= SLIDING_RATE


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_processes_sharing_the_limiter_never_trip_a_strict_sliding_window(
    backend: str, strict_carrier: str, simulator: SimulatorControl
) -> None:
    key = f"test-{uuid.uuid4().hex}"
    build_throttle(backend, key=key, rate=SLIDING_RATE, concurrency=4, redis_url=REDIS_URL)
    arguments = ["--key", key, "--rate", str(SLIDING_RATE), "--concurrency", "4"]
    arguments += ["--url", strict_carrier, "--api-key", POND_KEY, "--threads", "3"]
    arguments += ["--requests", "10"]
    senders = [sender_process(backend, "send", *arguments) for _ in range(2)]
    try:
        for sender in senders:
            assert sender.stdout is not None and sender.stdout.readline().strip() == "ready"
        for sender in senders:
            assert sender.stdin is not None
            sender.stdin.write("go\n")
            sender.stdin.flush()
        reports = [json.loads(sender.communicate(timeout=120)[0]) for sender in senders]
    finally:
        for sender in senders:
            if sender.poll() is None:
                sender.kill()
                sender.wait(timeout=10)
    assert [report["statuses"] for report in reports] == [{"200": 30}, {"200": 30}]
    stats = simulator.stats()["pond"]
    assert (stats["requests"], stats["rate_limited"]) == (60, 0)
    assert stats["max_requests_in_1s"] <= SLIDING_RATE


def test_the_database_concurrency_makes_its_rows_again_when_they_were_removed() -> None:
    """PostgreSQL empties the unlogged limiter tables after a crash: a sender still gets its
    slot, and the limit still holds."""
    key = f"test-{uuid.uuid4().hex}"
    slots = DatabaseConcurrency(key, 2)
    ConcurrencySlot.objects.filter(key=key).delete()
    with slots.hold():
        assert ConcurrencySlot.objects.filter(key=key).count() == 2
        assert ConcurrencySlot.objects.filter(key=key, holder__isnull=False).count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's unlogged tables")
def test_the_limiter_tables_are_unlogged_on_postgresql() -> None:
    tables = [RateLimitBucket._meta.db_table, ConcurrencySlot._meta.db_table]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, relpersistence FROM pg_class WHERE relname = ANY(%s)", [tables]
        )
        assert dict(cursor.fetchall()) == dict.fromkeys(tables, "u")
