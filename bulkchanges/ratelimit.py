"""Request-rate limits shared by every worker process and host (DESIGN section 5).

Each set of credentials has one schedule of request slots spaced ``1/rate`` apart. A sender
reserves the next free slot atomically — in Redis (a Lua script) when ``REDIS_URL`` is set, else
in a database row under a row lock — and sleeps until its slot. Requests therefore never exceed
the rate across processes, and with enough senders they fill it. A 429 pushes the schedule
back (by the Retry-After, at most ``MAX_PENALTY_SECONDS``) so every sender slows down at once.
"""

from __future__ import annotations

import threading
import time
from functools import cache

from django.conf import settings
from django.db import transaction

from bulkchanges.models import RateLimitBucket
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
