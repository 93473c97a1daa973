"""django-q2 tasks: thin — ids in, call the service. django-q2 is at-least-once; every task
here is safe to run twice (claims decide who processes a device).

A task that meets the database unreachable waits for it and runs again (capped jittered
backoff, within ``BULKCHANGE_DB_OUTAGE_WAIT_SECONDS``) instead of failing: with the Redis broker
a failed task is gone, and its devices — PENDING, never claimed — would wait for the
stalled-bulk-change rule. Running again is safe for the same reason a second delivery is.

Each task binds its ids to the log context (``pondops.logcontext``) for the lines it logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections
from django_q.tasks import async_task

from bulkchanges.retry import outage_delay_seconds
from bulkchanges.services import logs
from bulkchanges.services.processing import bulk_change_fan_out, device_changes_process
from pondops.logcontext import log_context_bind

PROCESS_DEVICES = "bulkchanges.tasks.process_devices"
PROCESS_BULK_CHANGE = "bulkchanges.tasks.process_bulk_change"

logger = logging.getLogger(__name__)
_Result = TypeVar("_Result")


def _through_database_outages(name: str, work: Callable[[], _Result]) -> _Result:
    """``work()``, run again after a lost database connection until it succeeds or
    BULKCHANGE_DB_OUTAGE_WAIT_SECONDS have passed (then the error is raised)."""
    deadline = time.monotonic() + settings.BULKCHANGE_DB_OUTAGE_WAIT_SECONDS
    failures = 0
    while True:
        try:
            return work()
        except (OperationalError, InterfaceError) as error:
            failures += 1
            delay = outage_delay_seconds(failures)
            if time.monotonic() + delay > deadline:
                raise
            if failures == 1:
                logger.warning(
                    "%s: database unreachable (%s); running again when it is", name, error
                )
            close_old_connections()
            time.sleep(delay)


def enqueue_bulk_change(
    bulk_change_id: int, *, request_id: str = "", automated: bool = False
) -> str:
    task_id: str = async_task(
        PROCESS_BULK_CHANGE,
        bulk_change_id,
        request_id=request_id,
        automated=automated,
        task_name=f"bulk-change-{bulk_change_id}",
    )
    return task_id


def enqueue_devices(
    device_change_ids: Sequence[int], *, request_id: str = "", automated: bool = False
) -> str:
    ids = list(device_change_ids)
    task_id: str = async_task(
        PROCESS_DEVICES,
        ids,
        request_id=request_id,
        automated=automated,
        task_name=f"devices-{ids[0]}-{len(ids)}",
    )
    return task_id


def process_bulk_change(bulk_change_id: int, request_id: str = "", automated: bool = False) -> int:
    """Fan a bulk change out into ``process_devices`` chunks."""
    with log_context_bind(bulk_change_id=bulk_change_id, request_id=request_id):
        return _through_database_outages(
            f"bulk change {bulk_change_id}",
            lambda: bulk_change_fan_out(
                bulk_change_id=bulk_change_id,
                enqueue=lambda ids: enqueue_devices(
                    ids, request_id=request_id, automated=automated
                ),
                process_by=logs.process_by_worker(automated=automated),
                request_id=request_id,
            ),
        )


def process_devices(
    device_change_ids: list[int], request_id: str = "", automated: bool = False
) -> int:
    """Claim and process these device changes (each device's run binds its own ids to the log
    context; the request id covers the lines of the chunk outside them)."""
    with log_context_bind(request_id=request_id):
        return _through_database_outages(
            f"devices {device_change_ids[:1]}… ({len(device_change_ids)})",
            lambda: device_changes_process(
                ids=device_change_ids,
                process_by=logs.process_by_worker(automated=automated),
                request_id=request_id,
                enqueue=lambda ids: enqueue_devices(
                    ids, request_id=request_id, automated=automated
                ),
            ),
        )


# --- Previews (docs/operator-features.md): no SQS message, a django-q2 task started after the
# preview's commit; the reaper re-enqueues a stalled one -----------------------------------------

RUN_PREVIEW = "bulkchanges.tasks.run_preview"
READ_PREVIEW_DEVICES = "bulkchanges.tasks.read_preview_devices"


def enqueue_preview(preview_id: int) -> str:
    task_id: str = async_task(RUN_PREVIEW, preview_id, task_name=f"preview-{preview_id}")
    return task_id


def enqueue_preview_devices(preview_id: int, preview_device_ids: Sequence[int]) -> str:
    ids = list(preview_device_ids)
    task_id: str = async_task(
        READ_PREVIEW_DEVICES,
        preview_id,
        ids,
        task_name=f"preview-{preview_id}-devices-{ids[0]}-{len(ids)}",
    )
    return task_id


def run_preview(preview_id: int) -> int:
    """Start a preview and hand its unread devices out in chunks."""
    from bulkchanges.services.previews import preview_fan_out

    with log_context_bind(request_id=f"preview-{preview_id}"):
        return _through_database_outages(
            f"preview {preview_id}",
            lambda: preview_fan_out(
                preview_id=preview_id,
                enqueue=lambda ids: enqueue_preview_devices(preview_id, ids),
                process_by=logs.process_by_worker(),
            ),
        )


def read_preview_devices(preview_id: int, preview_device_ids: list[int]) -> int:
    """Claim and read one chunk of a preview's devices."""
    from bulkchanges.services.previews import preview_devices_read

    with log_context_bind(request_id=f"preview-{preview_id}"):
        return _through_database_outages(
            f"preview {preview_id} devices {preview_device_ids[:1]}…",
            lambda: preview_devices_read(
                preview_id=preview_id,
                ids=preview_device_ids,
                process_by=logs.process_by_worker(),
            ),
        )
