"""Heartbeats of PondOps' long-running processes (``poll_sqs``, ``run_reaper``): one
:class:`~bulkchanges.models.ProcessHeartbeat` row per process, beaten every few seconds.
``/healthz`` and the dashboard report the youngest beat of each kind and its age.

A beat never raises: a process that cannot reach its database logs and goes on (the stale
heartbeat is then what tells monitoring)."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from django.db import DatabaseError
from django.db.models import Count
from django.utils import timezone

from bulkchanges.models import ProcessHeartbeat

logger = logging.getLogger(__name__)

POLLER = "poll_sqs"
REAPER = "run_reaper"
PRUNE_AFTER = timedelta(days=1)


@cache
def process_identity() -> str:
    return f"{socket.gethostname()}/{os.getpid()}"


def heartbeat_beat(*, kind: str, detail: str = "", now: datetime | None = None) -> bool:
    """Record that this process of ``kind`` is alive; False (logged) when the database
    refused."""
    now = now or timezone.now()
    try:
        updated = ProcessHeartbeat.objects.filter(kind=kind, identity=process_identity()).update(
            beat_at=now, detail=detail[:500]
        )
        if not updated:
            ProcessHeartbeat.objects.filter(beat_at__lt=now - PRUNE_AFTER).delete()
            ProcessHeartbeat.objects.update_or_create(
                kind=kind,
                identity=process_identity(),
                defaults={"beat_at": now, "started_at": now, "detail": detail[:500]},
            )
    except DatabaseError as error:
        logger.warning("%s heartbeat not recorded: %s", kind, error)
        return False
    return True


@dataclass(frozen=True)
class HeartbeatState:
    kind: str
    last_beat_at: datetime | None
    processes: int  # processes of this kind seen within ``fresh``
    detail: str = ""  # what the youngest beat said (e.g. "SQS unreachable since …")

    def age_seconds(self, now: datetime) -> float | None:
        if self.last_beat_at is None:
            return None
        return max(0.0, (now - self.last_beat_at).total_seconds())


def heartbeat_state(*, kind: str, fresh: timedelta, now: datetime | None = None) -> HeartbeatState:
    """The youngest beat of ``kind`` (its time and detail) and how many processes of it beat
    within ``fresh``."""
    now = now or timezone.now()
    rows = ProcessHeartbeat.objects.filter(kind=kind)
    last, detail = rows.order_by("-beat_at").values_list("beat_at", "detail").first() or (None, "")
    alive = rows.filter(beat_at__gte=now - fresh).aggregate(n=Count("id"))["n"]
    return HeartbeatState(kind=kind, last_beat_at=last, processes=int(alive or 0), detail=detail)
