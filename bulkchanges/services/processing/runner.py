"""The device runner: claims device changes and runs each with :class:`DeviceRun`, on up to
the credentials' ``max_concurrency`` threads per chunk (the work is mostly waiting for HTTP).
When a device ends, the next device change waiting on the same ICCID is enqueued and the bulk
change completed if nothing is left (docs/architecture.md §6, §7)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from queue import Empty, SimpleQueue

from django.db import connection

from bulkchanges.models import DeviceChange, IntegrationAuthentication
from bulkchanges.services.processing.claims import (
    DEVICE_LEASES,
    Enqueue,
    chunk_held,
    device_change_claim,
    next_waiting_device_change,
)
from bulkchanges.services.processing.completion import bulk_change_complete_if_done
from bulkchanges.services.processing.device_run import DeviceRun

logger = logging.getLogger(__name__)


def device_changes_process(
    *,
    ids: Sequence[int],
    process_by: str,
    request_id: str = "",
    enqueue: Enqueue,
) -> int:
    """Claim and process ``ids`` on up to the credentials' ``max_concurrency`` threads (the
    work is mostly waiting for HTTP). Each thread works through the ids with one database
    connection, closed when it is done. The chunk's PENDING rows are held for this process
    meanwhile (``chunk_held``), so a killed worker's unstarted devices are not stranded.
    Returns how many devices this worker processed."""
    if not ids:
        return 0
    credentials = IntegrationAuthentication.objects.filter(
        bulk_changes__device_changes__pk__in=list(ids)
    ).first()
    if credentials is None:
        return 0
    run = partial(_claim_and_run, process_by=process_by, request_id=request_id, enqueue=enqueue)
    threads = min(credentials.max_concurrency, len(ids))
    with chunk_held(ids=ids):
        if threads <= 1:
            return sum(run(pk) for pk in ids)
        pending: SimpleQueue[int] = SimpleQueue()
        for pk in ids:
            pending.put(pk)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return sum(pool.map(lambda _: _drain_in_thread(pending, run), range(threads)))


def _drain_in_thread(pending: SimpleQueue[int], run: Callable[[int], bool]) -> int:
    done = 0
    try:
        while True:
            try:
                pk = pending.get_nowait()
            except Empty:
                return done
            done += run(pk)
            if connection.errors_occurred:  # a database error: start the next on a fresh one
                connection.close()
    finally:
        connection.close()  # worker threads open their own connections


def _claim_and_run(pk: int, *, process_by: str, request_id: str, enqueue: Enqueue) -> bool:
    """Claim and run one device."""
    if not device_change_claim(ids=[pk]):
        return False
    device_change = DeviceChange.objects.select_related(
        "bulk_change", "bulk_change__integration_authentication", "device__status"
    ).get(pk=pk)
    device_run = DeviceRun(device_change, process_by=process_by, request_id=request_id)
    try:
        with DEVICE_LEASES.holding(device_change.claim_token):
            device_run.run()
    except Exception:
        logger.exception(
            "device change %s: unexpected failure outside the step runner",
            pk,
            extra={"device_change_id": pk},
        )
        return True
    if device_run.recorded in DeviceChange.TERMINAL:
        following = next_waiting_device_change(device_change=device_change)
        if following is not None:
            enqueue([following])
        bulk_change_complete_if_done(
            bulk_change_id=device_change.bulk_change_id, process_by=process_by
        )
    return True
