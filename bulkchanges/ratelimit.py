"""Request-rate and concurrency limits shared by every worker process and host
(docs/architecture.md §8). :func:`throttle_for` gives the clients one
:class:`~integrations.base.Throttle` per set of credentials, made of the two limits below; each
HTTP request holds it (``call()``) for the request only.

Rate: every sliding second at or under the limit
------------------------------------------------
Each set of credentials has one schedule of request slots. A sender reserves the next free slot
atomically — in Redis (a Lua script) when ``REDIS_URL`` is set, else with one conditional
``UPDATE … RETURNING`` on a RateLimitBucket row — which moves the schedule on by the spacing
``s = (1 + RATE_MARGIN) / rate``, and sleeps until its slot. Slots are instants of the senders'
wall clock (``time.time``, which NTP keeps within milliseconds across hosts); the sleep and the
lateness are measured on ``time.monotonic``. A sender that wakes more than
``LATE_TOLERANCE_SECONDS`` (L) after its slot gives the slot up and reserves a fresh, later one
instead of sending late, so every request leaves within [slot, slot + L].

Why no trailing second then holds more than ``rate`` (r) requests: reserved slots only move
forward and lie at least ``s`` apart (a 429 only pushes the schedule later), so requests i and
i + r have slots at least r·s = 1 + m seconds apart and leave at least 1 + m - L apart:
1.045 s with m = 6 % and L = 15 ms. The carrier counts r + 1 requests within one second only
if their transit times (client work, network, the carrier's own queue) differ by more than
m - L = 45 ms (3 % left only 15 ms, which two hosts' network paths exceeded: tests/multihost
saw 51 requests in a second at a limit of 50). The cost: the schedule runs at r / (1 + m) =
0.943 of the limit, less the slots
that late wakers give up (a busy host), provided there are enough senders to fill it. A sender
asks for a slot no earlier than now plus its last reservation's round trip, so an idle schedule
does not hand back a slot that passed while the answer travelled. A 429 pushes the schedule
back (by the Retry-After, at most ``MAX_PENALTY_SECONDS``) so every sender slows down at once.

Concurrency: slots that die with their holder
---------------------------------------------
Each set of credentials has ``max_concurrency`` slots (the carrier's concurrent calls); a
request holds one while it is on the wire (a ConcurrencySlot row taken by one prebuilt UPDATE,
or a member of a Redis sorted set). A slot is leased for ``BULKCHANGE_SLOT_LEASE_SECONDS``
(10 s) and renewed every third of that, while its request runs, by the process's lease keeper
(:mod:`bulkchanges.leases`, one statement per set of credentials): a request longer than the
lease keeps its slot, and the slots of a killed process are free again within about one lease.
Waiting for a slot backs off with full jitter (:func:`bulkchanges.retry.slot_wait_seconds`, 20 ms
doubling to 500 ms). A renewal or release that fails (the database or Redis blipped) is logged
and never fails the request: the next renewal retries, and an unreleased slot frees itself at
its lease.

On PostgreSQL both tables are unlogged (migration 0016): their statements write no WAL and
commit without an fsync. A crash empties them; the rate schedule's row and the slot rows are
made again by the first sender that misses them.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from functools import cache
from typing import Any, Protocol

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from bulkchanges.leases import LeaseKind
from bulkchanges.models import ConcurrencySlot, RateLimitBucket
from bulkchanges.retry import slot_wait_seconds
from integrations.base import Credentials, Throttle

logger = logging.getLogger(__name__)

MAX_PENALTY_SECONDS = 5.0
RATE_MARGIN = 0.06  # slots (1 + m)/rate apart: the window's headroom, see the module docstring
LATE_TOLERANCE_SECONDS = 0.015  # woken later than this after its slot, a sender takes another
MAX_LEAD_SECONDS = 0.25  # the most a reservation asks ahead of now (its last round trip)
# A holder that found every slot taken this many times looks whether the rows are still there.
ROWS_CHECK_AFTER_MISSES = 20

_RESERVE_LUA = """
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = tonumber(ARGV[3])
local penalty = tonumber(ARGV[2])
if penalty > 0 then
  if slot < now + penalty then
    redis.call('SET', KEYS[1], tostring(now + penalty), 'EX', 3600)
  end
  return tostring(slot)
end
if slot < now then slot = now end
redis.call('SET', KEYS[1], tostring(slot + tonumber(ARGV[1])), 'EX', 3600)
return tostring(slot)
"""


class RateLimit(Protocol):
    def acquire(self) -> None:
        """Block until this sender's reserved rate slot has come."""

    def penalise(self, seconds: float) -> None:
        """Push the schedule back (a 429), for every sender."""


class _Schedule(ABC):
    """The sender's side of a schedule of slots ``spacing`` apart: reserve, sleep, and give a
    slot up when woken too late (the module docstring has the arithmetic)."""

    def __init__(self, rate: float) -> None:
        self.spacing = (1.0 + RATE_MARGIN) / rate
        self.slots_given_up = 0  # late wake-ups, which the limiter benchmark reports
        self._lead = 0.0

    def acquire(self) -> None:
        while True:
            asked = time.time()
            slot = self._reserve(not_before=asked + self._lead)
            answered = time.time()
            deadline = time.monotonic() + (slot - answered)
            self._lead = min(max(answered - asked, 0.0), MAX_LEAD_SECONDS)
            wait = deadline - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if time.monotonic() - deadline <= LATE_TOLERANCE_SECONDS:
                return
            self.slots_given_up += 1

    @abstractmethod
    def _reserve(self, *, not_before: float) -> float:
        """Reserve the next slot at or after ``not_before`` (epoch seconds) and return it."""


class DatabaseRateLimit(_Schedule):
    """Slot reservation in a RateLimitBucket row: one UPDATE that advances ``next_slot`` from
    ``max(next_slot, now)`` and returns it — atomic on its own (a row lock on PostgreSQL, the
    write lock on SQLite), so no transaction is held open around it."""

    def __init__(self, key: str, rate: float) -> None:
        super().__init__(rate)
        self.key = key
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

    def _reserve(self, *, not_before: float) -> float:
        while True:
            with connection.cursor() as cursor:
                cursor.execute(self._reserve_sql, [not_before, not_before, self.spacing, self.key])
                rows = cursor.fetchall()  # all: SQLite ends the statement (and its lock) here
            if rows:
                return float(rows[0][0]) - self.spacing
            RateLimitBucket.objects.get_or_create(key=self.key)  # removed (a flushed database)

    def penalise(self, seconds: float) -> None:
        later = time.time() + min(max(seconds, 0.0), MAX_PENALTY_SECONDS)
        with connection.cursor() as cursor:
            cursor.execute(self._penalise_sql, [later, self.key, later])


class RedisRateLimit(_Schedule):
    """The same schedule in Redis, reserved by one atomic script."""

    def __init__(self, key: str, rate: float, url: str) -> None:
        import redis

        super().__init__(rate)
        self.key = f"pondops:ratelimit:{key}"
        self.script = redis.Redis.from_url(url).register_script(_RESERVE_LUA)

    def _reserve(self, *, not_before: float) -> float:
        return float(self.script(keys=[self.key], args=[self.spacing, 0, not_before]))

    def penalise(self, seconds: float) -> None:
        penalty = min(max(seconds, 0.001), MAX_PENALTY_SECONDS)
        self.script(keys=[self.key], args=[self.spacing, penalty, time.time()])


# --- Concurrency -----------------------------------------------------------------------------

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

# Moves the lease of the tokens still in the set (XX: a slot already given up stays given up).
_RENEW_LUA = """
local t = redis.call('TIME')
local held_until = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', held_until, ARGV[i])
end
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1])) + 60)
return 0
"""


def slot_lease_seconds() -> float:
    return float(settings.BULKCHANGE_SLOT_LEASE_SECONDS)


def slot_renewal_interval() -> float:
    """How often the keeper renews held slots: every third of their lease (pondops.E013
    checks that the lease keeps that margin)."""
    return slot_lease_seconds() / 3


class Concurrency(Protocol):
    def hold(self) -> AbstractContextManager[None]:
        """Block until one of the credentials' slots is free, hold it for the block."""


class _Slots(ABC):
    #: what a renewal or a release may meet when the store blips (logged, never raised)
    outage_errors: tuple[type[Exception], ...] = ()

    def __init__(self, key: str, limit: int) -> None:
        self.key = key
        self.limit = max(1, limit)
        # Renewed by the process's lease keeper (bulkchanges/leases.py) every third of the
        # lease, one statement for every slot of these credentials the process holds.
        self.lease = LeaseKind(
            f"concurrency slots of {key}",
            renew=self._renew_held,
            interval=slot_renewal_interval,
        )

    @contextmanager
    def hold(self) -> Iterator[None]:
        token = uuid.uuid4()
        attempt = 0
        while not self._acquire(token):
            time.sleep(slot_wait_seconds(attempt))
            attempt += 1
        self.lease.hold(token)
        try:
            yield
        finally:
            self.lease.release(token)
            try:
                self._release(token)
            except self.outage_errors:
                logger.warning(
                    "Could not release a concurrency slot of %s; it frees itself when its "
                    "lease (%.0f s) passes",
                    self.key,
                    slot_lease_seconds(),
                    exc_info=True,
                )

    @abstractmethod
    def _acquire(self, token: uuid.UUID) -> bool:
        """Take a free (or expired) slot for ``token`` on a fresh lease; False when all are
        held."""

    def _renew_held(self, tokens: frozenset[Hashable]) -> None:
        self._renew([token for token in tokens if isinstance(token, uuid.UUID)])

    @abstractmethod
    def _renew(self, tokens: Sequence[uuid.UUID]) -> None:
        """Move the lease of the slots ``tokens`` hold to now + the lease, in one statement."""

    @abstractmethod
    def _release(self, token: uuid.UUID) -> None:
        """Give back the slot ``token`` holds."""


class DatabaseConcurrency(_Slots):
    """ConcurrencySlot rows ``0 … limit-1`` per set of credentials, taken and given back by
    prebuilt statements (the hottest SQL of a run)."""

    outage_errors = (DatabaseError,)

    def __init__(self, key: str, limit: int) -> None:
        super().__init__(key, limit)
        self._misses = 0  # acquisitions that found no free slot, since the rows were checked
        self._make_rows()
        # Identifiers from the model's own metadata (no input reaches this SQL); values are
        # parameters, prepared by the fields themselves (a UUID, a datetime per backend).
        meta = ConcurrencySlot._meta
        quote = connection.ops.quote_name
        table = quote(meta.db_table)
        columns = {field.name: quote(str(field.column)) for field in meta.concrete_fields}
        pk, key_column, slot, holder, until = (
            columns[name] for name in ("id", "key", "slot", "holder", "held_until")
        )
        # One statement takes a free or expired slot: PostgreSQL skips rows another taker has
        # locked; SQLite runs the whole UPDATE under its single write lock.
        pick = (
            f"SELECT {pk} FROM {table} WHERE {key_column} = %s AND {slot} < %s "  # noqa: S608
            f"AND ({holder} IS NULL OR {until} < %s) LIMIT 1"
        )
        if connection.features.has_select_for_update_skip_locked:
            pick += " FOR UPDATE SKIP LOCKED"
        self._acquire_sql = (
            f"UPDATE {table} SET {holder} = %s, {until} = %s WHERE {pk} = ({pick}) "  # noqa: S608
            f"RETURNING {pk}"
        )
        self._release_sql = (
            f"UPDATE {table} SET {holder} = NULL, {until} = NULL "  # noqa: S608
            f"WHERE {key_column} = %s AND {holder} = %s"
        )
        self._renew_sql = f"UPDATE {table} SET {until} = %s WHERE {key_column} = %s AND {holder} IN"  # noqa: S608
        self._holder_field = meta.get_field("holder")
        self._until_field = meta.get_field("held_until")

    def _holder(self, token: uuid.UUID) -> Any:
        return self._holder_field.get_db_prep_value(token, connection)

    def _until(self, when: Any) -> Any:
        return self._until_field.get_db_prep_value(when, connection)

    def _acquire(self, token: uuid.UUID) -> bool:
        now = timezone.now()
        held_until = now + timedelta(seconds=slot_lease_seconds())
        with connection.cursor() as cursor:
            cursor.execute(
                self._acquire_sql,
                [
                    self._holder(token),
                    self._until(held_until),
                    self.key,
                    self.limit,
                    self._until(now),
                ],
            )
            rows = cursor.fetchall()  # all: SQLite ends the statement (and its lock) here
        if rows:
            return True
        self._misses += 1
        if self._misses >= ROWS_CHECK_AFTER_MISSES:
            self._misses = 0
            self._make_rows()  # emptied (PostgreSQL after a crash: the table is unlogged)
        return False

    def _make_rows(self) -> None:
        """The credentials' slot rows, made where they are missing."""
        existing = set(ConcurrencySlot.objects.filter(key=self.key).values_list("slot", flat=True))
        ConcurrencySlot.objects.bulk_create(
            [ConcurrencySlot(key=self.key, slot=n) for n in range(self.limit) if n not in existing],
            ignore_conflicts=True,
        )

    def _renew(self, tokens: Sequence[uuid.UUID]) -> None:
        held_until = timezone.now() + timedelta(seconds=slot_lease_seconds())
        placeholders = ", ".join(["%s"] * len(tokens))
        with connection.cursor() as cursor:
            cursor.execute(
                f"{self._renew_sql} ({placeholders})",
                [self._until(held_until), self.key, *(self._holder(token) for token in tokens)],
            )

    def _release(self, token: uuid.UUID) -> None:
        with connection.cursor() as cursor:
            cursor.execute(self._release_sql, [self.key, self._holder(token)])


class RedisConcurrency(_Slots):
    """A sorted set per set of credentials: member a holder's token, score its lease's end
    (Redis's own clock)."""

    def __init__(self, key: str, limit: int, url: str) -> None:
        import redis

        super().__init__(f"pondops:slots:{key}", limit)
        self.outage_errors = (redis.RedisError,)
        self.redis = redis.Redis.from_url(url)
        self.script = self.redis.register_script(_ACQUIRE_LUA)
        self.renew_script = self.redis.register_script(_RENEW_LUA)

    def _acquire(self, token: uuid.UUID) -> bool:
        lease = slot_lease_seconds()
        return bool(self.script(keys=[self.key], args=[self.limit, lease, token.hex]))

    def _renew(self, tokens: Sequence[uuid.UUID]) -> None:
        args: list[float | str] = [slot_lease_seconds(), *(token.hex for token in tokens)]
        self.renew_script(keys=[self.key], args=args)

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
