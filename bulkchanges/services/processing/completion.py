"""Completion: a bulk change's final status, written once (docs/architecture.md §4).

A running bulk change (QUEUED, PROCESSING) completes with the status its device counts give; a
CANCELLING one becomes CANCELLED once its last device in flight has ended. Either way the
final status is one conditional UPDATE (the first caller wins), ``processed_at`` is never
before the last device's, and the winner writes the one completion row with the counts and
schedules the completion webhook after the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from functools import partial

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from bulkchanges import transitions
from bulkchanges.models import BulkChange, DeviceChange
from bulkchanges.selectors import (
    Progress,
    bulk_change_has_unfinished,
    device_status_counts,
    final_status,
)
from bulkchanges.services import logs
from bulkchanges.services.webhooks import webhook_completion_schedule

logger = logging.getLogger(__name__)


def bulk_change_complete_if_done(*, bulk_change_id: int, process_by: str) -> bool:
    """Write the final status once no device is unfinished: CANCELLED for a CANCELLING bulk
    change, else the status the counts give. Never overwrites a final status; exactly one
    completion log row, and the completion webhook after commit. Returns True when this call
    completed it."""
    status = BulkChange.objects.filter(pk=bulk_change_id).values_list("status", flat=True).first()
    if status not in transitions.RELEASED:
        return False
    if bulk_change_has_unfinished(bulk_change_id=bulk_change_id):
        return False  # an indexed EXISTS; the counts below read every device of the bulk change
    counts = device_status_counts(bulk_change_id=bulk_change_id)
    if status == BulkChange.Status.CANCELLING:
        return _finish(bulk_change_id, BulkChange.Status.CANCELLED, counts, process_by)
    final = final_status(counts)
    if final is None:
        return False
    return _finish(bulk_change_id, final, counts, process_by)


def _finish(bulk_change_id: int, final: str, counts: Mapping[str, int], process_by: str) -> bool:
    now = completion_time(bulk_change_id=bulk_change_id)
    with transaction.atomic():
        if final == BulkChange.Status.CANCELLED:
            won = transitions.bulk_change_finish_cancel(bulk_change_id=bulk_change_id, now=now)
        else:
            won = transitions.bulk_change_complete(
                bulk_change_id=bulk_change_id, final=final, now=now
            )
        if won:
            bulk_change_completion_record(
                bulk_change_id=bulk_change_id, final=final, counts=counts, process_by=process_by
            )
    if won:
        logger.info(
            "bulk change %s completed: %s",
            bulk_change_id,
            final,
            extra={"bulk_change_id": bulk_change_id},
        )
    return won


def completion_time(*, bulk_change_id: int) -> datetime:
    """Now — or the last device's ``processed_at`` if a worker's clock ran ahead of ours: a
    bulk change never finishes before its last device."""
    now = timezone.now()
    last = DeviceChange.objects.filter(bulk_change_id=bulk_change_id).aggregate(
        last=Max("processed_at")
    )["last"]
    return max(now, last) if last is not None else now


def completion_summary(final: str, counts: Mapping[str, int]) -> str:
    """The completion row's text. A cancelled bulk change says what the cancel left behind:
    the devices changed before it took effect, those cancelled, and the rest."""
    if final == BulkChange.Status.CANCELLED:
        return f"{final}: {Progress(counts).cancel_summary()}"
    summary = ", ".join(f"{status} {n}" for status, n in counts.items() if n)
    return f"{final}: {summary}"


def bulk_change_completion_record(
    *, bulk_change_id: int, final: str, counts: Mapping[str, int], process_by: str
) -> None:
    """The one completion row and, after the commit, the completion webhook — for the caller
    that won the final status (call inside its transaction)."""
    logs.log_write(
        bulk_change_id=bulk_change_id,
        description=logs.COMPLETION,
        process_by=process_by,
        response_text=completion_summary(final, counts),
        has_errors=(
            counts.get(DeviceChange.Status.ERROR, 0) > 0
            if final == BulkChange.Status.CANCELLED
            else final != BulkChange.Status.PROCESSED
        ),
    )
    transaction.on_commit(
        partial(webhook_completion_schedule, bulk_change_id=bulk_change_id), robust=True
    )
