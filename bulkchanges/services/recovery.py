"""The recovery loop behind ``manage.py run_reaper`` (docs/architecture.md §7).

Recovery — the reaper and the webhook outbox sweep — runs in its own process, never as a task on
the work queue: a backlog of device chunks on django-q2 would otherwise hold it back exactly when
it is needed (a killed cluster's leases, lost retry messages). Every part of a pass is a
compare-and-set on our rows, so two loops (one per host) never re-send the same device twice.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections

from bulkchanges import heartbeats
from bulkchanges.services.reaper import ReapReport, reap
from bulkchanges.services.webhooks import webhook_deliveries_sweep

logger = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    reaper: ReapReport
    webhooks: str

    def __str__(self) -> str:
        return f"reaper: {self.reaper}; webhook sweep: {self.webhooks}"


def recovery_pass() -> RecoveryReport:
    """One pass: the reaper, then the webhook sweep."""
    from bulkchanges.tasks import enqueue_devices

    report = reap(enqueue=enqueue_devices, process_by="reaper")
    return RecoveryReport(reaper=report, webhooks=webhook_deliveries_sweep())


def recovery_run(*, stop: threading.Event, interval: float | None = None) -> int:
    """Run passes every ``interval`` seconds (default BULKCHANGE_REAPER_INTERVAL_SECONDS, with
    ±10 % jitter so loops on several hosts drift apart) until ``stop`` is set; returns the
    number of passes. A pass that fails (the database is down) is logged and the loop goes on:
    its heartbeat then goes stale, which is what /healthz reports."""
    interval = settings.BULKCHANGE_REAPER_INTERVAL_SECONDS if interval is None else interval
    passes = 0
    failing = False
    while not stop.is_set():
        close_old_connections()
        try:
            report = recovery_pass()
        except Exception as error:  # keep the loop alive; say so once per outage
            if not failing:
                logger.exception("recovery pass failed; retrying every %.0f s", interval)
            else:
                logger.debug("recovery pass failed again: %s", error)
            failing = True
        else:
            if failing:
                logger.info("recovery pass succeeded again")
            failing = False
            passes += 1
            heartbeats.heartbeat_beat(kind=heartbeats.REAPER, detail=str(report)[:500])
        stop.wait(interval * random.uniform(0.9, 1.1))
    return passes
