"""Fan-out: a bulk change into ``process_devices`` chunks, or — with writes disabled for its
credentials — straight to ERROR without a carrier call (docs/architecture.md §6, §7)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bulkchanges import transitions
from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from bulkchanges.services import logs
from bulkchanges.services.processing.claims import Enqueue
from bulkchanges.services.processing.completion import bulk_change_complete_if_done
from integrations.base import processor_class
from pondops.metrics import device_outcome_count

logger = logging.getLogger(__name__)

BATCH = 1000


def bulk_change_fan_out(
    *,
    bulk_change_id: int,
    enqueue: Enqueue,
    process_by: str,
    request_id: str = "",
) -> int:
    """Start (or resume) a bulk change: QUEUED → PROCESSING, then hand its PENDING devices to
    ``enqueue`` in chunks of BULKCHANGE_CHUNK_SIZE. A CANCELLING one (the reaper re-sent its
    message) hands out only its PENDING devices in flight. Safe to run twice: claims decide who
    processes a device. Returns the devices handed out."""
    bulk_change = (
        BulkChange.objects.select_related("integration_authentication")
        .filter(pk=bulk_change_id)
        .first()
    )
    if bulk_change is None or bulk_change.status not in transitions.RELEASED:
        return 0
    cancelling = bulk_change.status == BulkChange.Status.CANCELLING
    if not cancelling:
        transitions.bulk_change_start(bulk_change_id=bulk_change_id)
    credentials = bulk_change.integration_authentication
    if not credentials.writes_enabled and not cancelling:
        _fail_writes_disabled(bulk_change=bulk_change, process_by=process_by, request_id=request_id)
        bulk_change_complete_if_done(bulk_change_id=bulk_change_id, process_by=process_by)
        return 0
    handed = 0
    size = max(1, settings.BULKCHANGE_CHUNK_SIZE)
    pending = DeviceChange.objects.filter(
        bulk_change_id=bulk_change_id, status=DeviceChange.Status.PENDING
    ).order_by("pk")
    if cancelling:  # only the devices in flight still run (a retry re-queued them earlier)
        pending = pending.filter(transitions.device_change_in_flight())
    last = 0
    while True:  # keyset pages: constant memory, no cursor held open across enqueues
        page = list(pending.filter(pk__gt=last).values_list("pk", flat=True)[:size])
        if not page:
            break
        enqueue(page)
        handed += len(page)
        last = page[-1]
    if not handed:
        bulk_change_complete_if_done(bulk_change_id=bulk_change_id, process_by=process_by)
    logger.info(
        "bulk change %s: %s devices handed to workers",
        bulk_change_id,
        handed,
        extra={"bulk_change_id": bulk_change_id, "request_id": request_id},
    )
    return handed


def writes_disabled_message(bulk_change: BulkChange) -> str:
    credentials = bulk_change.integration_authentication
    label = processor_class(bulk_change.integration).account_label(credentials.as_credentials())
    return f"writes are disabled for {label}"


def _fail_writes_disabled(*, bulk_change: BulkChange, process_by: str, request_id: str) -> None:
    """Fail fast: every unclaimed device ERROR with the reason, one log row each, no call."""
    message = writes_disabled_message(bulk_change)
    now = timezone.now()
    pending = DeviceChange.objects.filter(
        bulk_change=bulk_change, status=DeviceChange.Status.PENDING
    )
    ids = list(pending.values_list("pk", flat=True))
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        with transaction.atomic():
            failed = transitions.device_changes_fail_unclaimed(ids=batch, now=now, error=message)
            BulkChangeLog.objects.bulk_create(
                logs.log_row(
                    bulk_change_id=bulk_change.pk,
                    device_change_id=pk,
                    description=logs.WRITES_DISABLED,
                    process_by=process_by,
                    request_id=request_id,
                    error_text=message,
                )
                for pk in batch
            )
        device_outcome_count(
            carrier=bulk_change.integration, status=DeviceChange.Status.ERROR, count=failed
        )
    logger.warning(
        "bulk change %s: %s",
        bulk_change.pk,
        message,
        extra={"bulk_change_id": bulk_change.pk, "request_id": request_id},
    )
