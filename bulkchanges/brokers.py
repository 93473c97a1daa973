"""django-q2's broker (ORM or Redis, as configured), with one addition: a ``process_devices``
chunk a cluster takes off the queue is held for that cluster (docs/architecture.md §6, §7).

django-q2's pusher takes tasks off the broker into its cluster's local queue, where they wait
for a free worker. A cluster killed there loses them: the ORM broker offers them again only
after ``retry`` (360 s), the Redis broker never. So at the moment of taking a chunk, its
PENDING rows are handed to the pusher's process on a lease its keeper renews; the worker that
starts the chunk takes the hand-off over (``processing.claims.chunk_held``), which ends the
pusher's. A dead cluster's chunks are back with the reaper within one lease.

Named by ``Q_CLUSTER["broker_class"]`` (``pondops/settings.py``).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django_q.brokers import Broker
from django_q.brokers.orm import ORM
from django_q.brokers.redis_broker import Redis
from django_q.signing import SignedPackage

from bulkchanges.tasks import PROCESS_DEVICES

logger = logging.getLogger(__name__)


class HandOffMixin(Broker):
    def dequeue(self) -> Any:
        tasks = super().dequeue()
        for _, payload in tasks or ():
            _hold(payload)
        return tasks


class HandOffOrm(HandOffMixin, ORM):
    pass


class HandOffRedis(HandOffMixin, Redis):
    pass


def hand_off_broker(list_key: str | None = None) -> Broker:
    """The configured broker, holding the chunks its cluster takes."""
    broker_class = HandOffRedis if settings.Q_CLUSTER.get("redis") else HandOffOrm
    return broker_class(list_key=list_key)


def _hold(payload: Any) -> None:
    """Hold a taken ``process_devices`` chunk's PENDING rows for this process. Never raises:
    a chunk not held is only recovered later (by the stalled-bulk-change rule)."""
    from bulkchanges.services.processing.claims import device_changes_hand_off

    try:
        task = SignedPackage.loads(payload)
        if task.get("func") != PROCESS_DEVICES or not task.get("args"):
            return
        device_changes_hand_off(ids=[int(pk) for pk in task["args"][0]])
    except Exception:
        logger.exception("could not hold a chunk taken off the queue")
