"""Request-rate and concurrency limits shared by every worker process and host
(docs/architecture.md §8). :func:`throttle_for` gives the clients one
:class:`~integrations.base.Throttle` per set of credentials, made of the two limits below; each
HTTP request holds it (``call()``) for the request only.

Rate: each set of credentials has one schedule of request slots spaced ``1/rate`` apart. A
sender reserves the next free slot atomically — in Redis (a Lua script) when ``REDIS_URL`` is
set, else with one conditional ``UPDATE … RETURNING`` on a database row — and sleeps until its
slot. Requests therefore never exceed the rate across processes, and with enough senders they
fill it. A 429 pushes the schedule back (by the Retry-After, at most ``MAX_PENALTY_SECONDS``)
so every sender slows down at once.

Concurrency: each set of credentials has ``max_concurrency`` slots (the carrier's concurrent
calls); a request holds one while it is on the wire (a ConcurrencySlot row taken by one
conditional UPDATE, or a Redis sorted set). A slot is leased: if its holder dies, it frees
itself after ``BULKCHANGE_LEASE_SECONDS``.
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
from django.db import connection
from django.db.models import Q, Subquery
from django.utils import timezone

from bulkchanges.models import ConcurrencySlot, RateLimitBucket
from integrations.base import Credentials, Throttle

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


class RateLimit(Protocol):
    def acquire(self) -> None:
        """Block until this sender's reserved rate slot has come."""

    def penalise(self, seconds: float) -> None:
        """Push the schedule back (a 429), for every sender."""


class DatabaseRateLimit:
    """Slot reservation in a RateLimitBucket row: one UPDATE that advances ``next_slot`` from
    ``max(next_slot, now)`` and returns it — atomic on its own (a row lock on PostgreSQL, the
    write lock on SQLite), so no transaction is held open around it."""

    def __init__(self, key: str, rate: float) -> None:
        self.key = key
        self.interval = 1.0 / rate
        RateLimitBucket.objects.get_or_create(key=key)
        # Identifiers from the model's own metadata (no input reaches this SQL); values are
        # parameters. Django's update() cannot express RETURNING, hence the raw statement.
        quote = connection.ops.quote_name
        table, slot, key_column = (
            quote(name) for name in (RateLimitBucket._meta.db_table, "next_slot", "key")
        )
        self._reserve_sql = (
            f"UPDATE {table} SET {slot} = CASE WHEN {slot} > %s THEN {slot} ELSE %s END + %s "  # noqa: S608
            f"WHERE {key_column} = %s RETURNING {slot}"
        )
        self._penalise_sql = (
            f"UPDATE {table} SET {slot} = %s WHERE {key_column} = %s AND {slot} < %s"  # noqa: S608
        )

    def acquire(self) -> None:
        while True:
            now = time.time()
            with connection.cursor() as cursor:
                cursor.execute(self._reserve_sql, [now, now, self.interval, self.key])
                rows = cursor.fetchall()  # all: SQLite ends the statement (and its lock) here
            if rows:
                break
            RateLimitBucket.objects.get_or_create(key=self.key)  # removed (a flushed database)
        slot = float(rows[0][0]) - self.interval
        if slot > now:
            time.sleep(slot - now)

    def penalise(self, seconds: float) -> None:
        later = time.time() + min(max(seconds, 0.0), MAX_PENALTY_SECONDS)
        with connection.cursor() as cursor:
            cursor.execute(self._penalise_sql, [later, self.key, later])


class RedisRateLimit:
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


# --- Concurrency -----------------------------------------------------------------------------

SLOT_POLL_SECONDS = 0.02

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
        """One UPDATE takes a free (or expired) slot picked at random, so concurrent takers
        rarely aim at the same row; the condition is checked again on the row itself, and the
        row count decides between two takers that did."""
        now = timezone.now()
        free = Q(holder__isnull=True) | Q(held_until__lt=now)
        pick = (
            ConcurrencySlot.objects.filter(key=self.key, slot__lt=self.limit)
            .filter(free)
            .order_by("?")
            .values("pk")[:1]
        )
        return bool(
            ConcurrencySlot.objects.filter(pk__in=Subquery(pick))
            .filter(free)
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


class SharedThrottle:
    """A set of credentials' :class:`~integrations.base.Throttle`: a concurrency slot first
    (so that no rate slot is spent while waiting for one), then the rate slot."""

    def __init__(self, rate: RateLimit | None, slots: Concurrency) -> None:
        self.rate = rate
        self.slots = slots

    @contextmanager
    def call(self) -> Iterator[None]:
        with self.slots.hold():
            if self.rate is not None:
                self.rate.acquire()
            yield

    def penalise(self, seconds: float) -> None:
        if self.rate is not None:
            self.rate.penalise(seconds)


@cache
def _throttle(key: str, rate: float, limit: int) -> SharedThrottle:
    """Built once per process and limits: both parts live in Redis when it is configured,
    else in database rows."""
    url = settings.REDIS_URL
    slots: Concurrency = (
        RedisConcurrency(key, limit, url) if url else DatabaseConcurrency(key, limit)
    )
    rate_limit: RateLimit | None = None
    if rate > 0:
        rate_limit = RedisRateLimit(key, rate, url) if url else DatabaseRateLimit(key, rate)
    return SharedThrottle(rate_limit, slots)


_lock = threading.Lock()


def throttle_for(credentials: Credentials) -> Throttle:
    """The shared limits of one set of credentials (cached per process). A rate of 0 means no
    rate limit; the concurrency limit always applies."""
    with _lock:
        return _throttle(
            f"credentials-{credentials.integration_authentication_id}",
            float(credentials.rate_limit),
            int(credentials.max_concurrency),
        )
