"""django-q2 tasks: thin — ids in, call the service. django-q2 is at-least-once; every task
here is safe to run twice (claims decide who processes a device)."""

from __future__ import annotations

from collections.abc import Sequence

from django_q.tasks import async_task

from bulkchanges.services import logs
from bulkchanges.services.processing import bulk_change_fan_out, device_changes_process

PROCESS_DEVICES = "bulkchanges.tasks.process_devices"
PROCESS_BULK_CHANGE = "bulkchanges.tasks.process_bulk_change"


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
    return bulk_change_fan_out(
        bulk_change_id=bulk_change_id,
        enqueue=lambda ids: enqueue_devices(ids, request_id=request_id, automated=automated),
        process_by=logs.process_by_worker(automated=automated),
        request_id=request_id,
    )


def process_devices(
    device_change_ids: list[int], request_id: str = "", automated: bool = False
) -> int:
    """Claim and process these device changes."""
    return device_changes_process(
        ids=device_change_ids,
        process_by=logs.process_by_worker(automated=automated),
        request_id=request_id,
        enqueue=lambda ids: enqueue_devices(ids, request_id=request_id, automated=automated),
    )
