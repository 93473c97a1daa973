"""Request-rate and concurrency limits shared by every worker process and host (DESIGN
section 5).

Each set of credentials has one schedule of request slots spaced ``1/rate`` apart. A sender
reserves the next free slot atomically — in Redis (a Lua script) when ``REDIS_URL`` is set, else
in a database row under a row lock — and sleeps until its slot. Requests therefore never exceed
the rate across processes, and with enough senders they fill it. A 429 pushes the schedule
back (by the Retry-After, at most ``MAX_PENALTY_SECONDS``) so every sender slows down at once.

Concurrency: each set of credentials has ``max_concurrency`` slots; a worker holds one while it
works on a device (a ConcurrencySlot row claimed with SKIP LOCKED, or a Redis sorted set). A
slot is leased: if its holder dies, it frees itself after ``BULKCHANGE_LEASE_SECONDS``.
"""

from __future__ import annotations

import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from functools import cache
from typing import Protocol

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from bulkchanges.models import ConcurrencySlot, RateLimitBucket
from integrations.base import Credentials, NoThrottle, Throttle

MAX_PENALTY_SECONDS = 5.0

_RESERVE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
local penalty = tonumber(ARGV[2])
if penalty > 0 then
  if slot < now + penalty then slot = now + penalty end
  redis.call('SET', KEYS[1], tostring(slot), 'EX', 3600)
  return {tostring(now), tostring(slot)}
end
if slot < now then slot = now end
redis.call('SET', KEYS[1], tostring(slot + tonumber(ARGV[1])), 'EX', 3600)
return {tostring(now), tostring(slot)}
"""


class DatabaseThrottle:
    """Slot reservation in a RateLimitBucket row (SELECT … FOR UPDATE, then UPDATE)."""

    def __init__(self, key: str, rate: float) -> None:
        self.key = key
        self.interval = 1.0 / rate
        RateLimitBucket.objects.get_or_create(key=key)

    def acquire(self) -> None:
        with transaction.atomic():
            bucket = RateLimitBucket.objects.select_for_update().only("next_slot").get(key=self.key)
            now = time.time()
            slot = max(bucket.next_slot, now)
            RateLimitBucket.objects.filter(key=self.key).update(next_slot=slot + self.interval)
        if slot > now:
            time.sleep(slot - now)

    def penalise(self, seconds: float) -> None:
        with transaction.atomic():
            bucket = RateLimitBucket.objects.select_for_update().only("next_slot").get(key=self.key)
            later = time.time() + min(max(seconds, 0.0), MAX_PENALTY_SECONDS)
            if bucket.next_slot < later:
                RateLimitBucket.objects.filter(key=self.key).update(next_slot=later)


class RedisThrottle:
    """The same schedule in Redis, reserved by one atomic script using the server's clock."""

    def __init__(self, key: str, rate: float, url: str) -> None:
        import redis

        self.key = f"pondops:ratelimit:{key}"
        self.interval = 1.0 / rate
        self.script = redis.Redis.from_url(url).register_script(_RESERVE_LUA)

    def acquire(self) -> None:
        now, slot = (
            float(value) for value in self.script(keys=[self.key], args=[self.interval, 0])
        )
        if slot > now:
            time.sleep(slot - now)

    def penalise(self, seconds: float) -> None:
        penalty = min(max(seconds, 0.001), MAX_PENALTY_SECONDS)
        self.script(keys=[self.key], args=[self.interval, penalty])


_lock = threading.Lock()


@cache
def _throttle(key: str, rate: float) -> Throttle:
    if rate <= 0:
        return NoThrottle()
    if settings.REDIS_URL:
        return RedisThrottle(key, rate, settings.REDIS_URL)
    return DatabaseThrottle(key, rate)


def throttle_for(credentials: Credentials) -> Throttle:
    """The shared limiter for one set of credentials (cached per process)."""
    with _lock:
        return _throttle(
            f"credentials-{credentials.integration_authentication_id}",
            float(credentials.rate_limit),
        )


# --- Concurrency -----------------------------------------------------------------------------

SLOT_POLL_SECONDS = 0.05

_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 60)
  return 1
end
return 0
"""


class Concurrency(Protocol):
    def hold(self) -> AbstractContextManager[None]:
        """Block until one of the credentials' slots is free, hold it for the block."""


class _Slots(ABC):
    def __init__(self, key: str, limit: int) -> None:
        self.key = key
        self.limit = max(1, limit)

    @property
    def ttl(self) -> float:
        return float(settings.BULKCHANGE_LEASE_SECONDS)

    @contextmanager
    def hold(self) -> Iterator[None]:
        token = uuid.uuid4()
        while not self._acquire(token):
            time.sleep(SLOT_POLL_SECONDS)
        try:
            yield
        finally:
            self._release(token)

    @abstractmethod
    def _acquire(self, token: uuid.UUID) -> bool:
        """Take a free (or expired) slot for ``token``; False when all are held."""

    @abstractmethod
    def _release(self, token: uuid.UUID) -> None:
        """Give back the slot ``token`` holds."""


class DatabaseConcurrency(_Slots):
    def __init__(self, key: str, limit: int) -> None:
        super().__init__(key, limit)
        existing = set(ConcurrencySlot.objects.filter(key=key).values_list("slot", flat=True))
        ConcurrencySlot.objects.bulk_create(
            [ConcurrencySlot(key=key, slot=n) for n in range(self.limit) if n not in existing],
            ignore_conflicts=True,
        )

    def _acquire(self, token: uuid.UUID) -> bool:
        now = timezone.now()
        with transaction.atomic():
            free = ConcurrencySlot.objects.filter(key=self.key, slot__lt=self.limit).filter(
                Q(holder__isnull=True) | Q(held_until__lt=now)
            )
            if connection.features.has_select_for_update_skip_locked:
                free = free.select_for_update(skip_locked=True)
            slot = free.values_list("pk", flat=True).first()
            if slot is None:
                return False
            return bool(
                ConcurrencySlot.objects.filter(pk=slot)
                .filter(Q(holder__isnull=True) | Q(held_until__lt=now))
                .update(holder=token, held_until=now + timedelta(seconds=self.ttl))
            )

    def _release(self, token: uuid.UUID) -> None:
        ConcurrencySlot.objects.filter(key=self.key, holder=token).update(
            holder=None, held_until=None
        )


class RedisConcurrency(_Slots):
    def __init__(self, key: str, limit: int, url: str) -> None:
        import redis

        super().__init__(f"pondops:slots:{key}", limit)
        self.redis = redis.Redis.from_url(url)
        self.script = self.redis.register_script(_ACQUIRE_LUA)

    def _acquire(self, token: uuid.UUID) -> bool:
        return bool(self.script(keys=[self.key], args=[self.limit, self.ttl, token.hex]))

    def _release(self, token: uuid.UUID) -> None:
        self.redis.zrem(self.key, token.hex)


@cache
def _concurrency(key: str, limit: int) -> Concurrency:
    if settings.REDIS_URL:
        return RedisConcurrency(key, limit, settings.REDIS_URL)
    return DatabaseConcurrency(key, limit)


def concurrency_for(credentials: Credentials) -> Concurrency:
    """The shared slots of one set of credentials (cached per process)."""
    with _lock:
        return _concurrency(
            f"credentials-{credentials.integration_authentication_id}",
            int(credentials.max_concurrency),
        )
