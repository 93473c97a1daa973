"""django-q2's broker (ORM or Redis, as configured), with one addition: a ``process_devices``
chunk a cluster takes off the queue is held for that cluster (docs/architecture.md §6, §7).

django-q2's pusher takes tasks off the broker into its cluster's local queue, where they wait
for a free worker. A cluster killed there loses them: the ORM broker offers them again only
after ``retry`` (360 s), the Redis broker never. So at the moment of taking a chunk, its
PENDING rows are handed to the pusher's process on a lease its keeper renews; the worker that
starts the chunk takes the hand-off over (``processing.claims.chunk_held``), which ends the
pusher's. A dead cluster's chunks are back with the reaper within one lease.

Taking a task and holding its chunk must not leave a moment in which the task is gone from the
queue and its rows are held by nobody: a pusher killed there would strand the chunk (taken,
so no other cluster gets it; not held, so the reaper never sees it) until the ORM broker's
``retry`` or, with Redis, until the stalled-bulk-change rule's grace period. So:

- ORM: the task's lock and the chunk's hand-off are one transaction. A pusher that dies before
  its commit took nothing (the task is offered again at once); after it, the chunk is held.
- Redis: a task is popped into a "taking" set with a deadline (one Lua script), its chunk held,
  then the task removed from the set. A pusher that dies in between leaves the task in the set;
  the next dequeue (any cluster's) puts it back at the head of the queue once the deadline
  (one device lease) has passed. Should the pusher die after holding, the chunk runs twice at
  worst, which claims make harmless.

Named by ``Q_CLUSTER["broker_class"]`` (``pondops/settings.py``).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone
from django_q.brokers import Broker
from django_q.brokers.orm import ORM
from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf
from django_q.signing import SignedPackage

from bulkchanges.tasks import PROCESS_DEVICES

logger = logging.getLogger(__name__)


class HandOffOrm(ORM):
    def dequeue(self) -> Any:
        """django-q2's ORM dequeue (the oldest unlocked tasks, each locked for ``retry`` by a
        compare-and-set on its lock), the lock committed together with the chunk's hand-off."""
        queue = self.get_connection()
        tasks = list(queue.filter(key=self.list_key, lock__lt=timezone.now())[: Conf.BULK])
        if not tasks:
            time.sleep(Conf.POLL)  # an empty queue: spare the CPU, as django-q2 does
            return None
        taken = []
        for task in tasks:
            ids = _chunk_ids(task.payload)
            token = uuid.uuid4() if ids else None
            try:
                with transaction.atomic(using=Conf.ORM):
                    if not queue.filter(id=task.id, lock=task.lock).update(lock=self.timeout(task)):
                        continue  # another cluster took it first
                    if ids and token is not None:
                        _hand_off_rows(ids, token)
            except DatabaseError:
                # Rolled back together: the task was not taken and is offered again.
                logger.exception("could not take a task and hold its chunk; it stays queued")
                time.sleep(Conf.POLL)
                continue
            if token is not None:
                _keep(token)  # renewed from now on (its rows are committed)
            taken.append((task.pk, task.payload))
        return taken


# KEYS[1] the queue, KEYS[2] its "taking" sorted set; ARGV[1] now, ARGV[2] the new deadline.
# Tasks whose taker died mid-take go back to the head of the queue (in their order), then one
# task is popped and recorded as being taken.
_TAKE_LUA = """
local lost = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for i = #lost, 1, -1 do
  redis.call('LPUSH', KEYS[1], lost[i])
  redis.call('ZREM', KEYS[2], lost[i])
end
local task = redis.call('LPOP', KEYS[1])
if task then
  redis.call('ZADD', KEYS[2], ARGV[2], task)
end
return task
"""


class HandOffRedis(Redis):
    @property
    def taking_key(self) -> str:
        return f"{self.list_key}:taking"

    def dequeue(self) -> Any:
        """Pop one task (through the taking set, see the module docstring), hold its chunk,
        then mark it taken. Polls every ``Conf.POLL`` while the queue is empty."""
        now = time.time()
        deadline = now + settings.BULKCHANGE_LEASE_SECONDS
        take = self.connection.register_script(_TAKE_LUA)  # EVALSHA, loading it once
        payload = take(keys=[self.list_key, self.taking_key], args=[now, deadline])
        if payload is None:
            time.sleep(Conf.POLL)
            return None
        ids = _chunk_ids(payload)
        if ids:
            try:
                token = uuid.uuid4()
                _hand_off_rows(ids, token)
                _keep(token)
            except Exception:
                # Left in the taking set: after the deadline the queue offers it again (a
                # duplicate of the run below at worst, which claims make harmless).
                logger.exception("could not hold a chunk taken off the queue")
                return [(None, payload)]
        try:
            self.connection.zrem(self.taking_key, payload)
        except Exception:  # it comes back after the deadline: a harmless duplicate
            logger.exception("could not mark a taken task as taken")
        return [(None, payload)]

    def delete_queue(self) -> Any:
        self.connection.delete(self.taking_key)
        return super().delete_queue()


def hand_off_broker(list_key: str | None = None) -> Broker:
    """The configured broker, holding the chunks its cluster takes."""
    broker_class = HandOffRedis if settings.Q_CLUSTER.get("redis") else HandOffOrm
    return broker_class(list_key=list_key)


def _chunk_ids(payload: Any) -> list[int] | None:
    """The device change ids of a ``process_devices`` task, else None. Never raises: a payload
    that does not load is the pusher's to fail."""
    try:
        task = SignedPackage.loads(payload)
    except Exception:
        return None
    try:
        if task.get("func") != PROCESS_DEVICES or not task.get("args"):
            return None
        return [int(pk) for pk in task["args"][0]]
    except Exception:
        logger.exception("a process_devices task without a list of ids")
        return None


def _hand_off_rows(ids: list[int], token: uuid.UUID) -> None:
    from bulkchanges import transitions
    from bulkchanges.services.processing.claims import lease_until

    transitions.device_changes_hand_off(ids=ids, token=token, lease_until=lease_until())


def _keep(token: uuid.UUID) -> None:
    from bulkchanges.services.processing.claims import DEVICE_LEASES

    DEVICE_LEASES.hold(token)
