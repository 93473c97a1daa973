"""Completion: a bulk change's final status, written once (docs/architecture.md §4)."""

from __future__ import annotations

import logging
from functools import partial

from django.db import transaction
from django.utils import timezone

from bulkchanges import transitions
from bulkchanges.models import BulkChange
from bulkchanges.selectors import bulk_change_has_unfinished, device_status_counts, final_status
from bulkchanges.services import logs
from bulkchanges.services.webhooks import webhook_completion_schedule

logger = logging.getLogger(__name__)


def bulk_change_complete_if_done(*, bulk_change_id: int, process_by: str) -> bool:
    """Write the final status once no device is unfinished. Never overwrites CANCELLED or a
    final status; exactly one completion log row, and the completion webhook after commit.
    Returns True when this call completed it."""
    if bulk_change_has_unfinished(bulk_change_id=bulk_change_id):
        return False  # an indexed EXISTS; the counts below read every device of the bulk change
    counts = device_status_counts(bulk_change_id=bulk_change_id)
    final = final_status(counts)
    if final is None:
        return False
    with transaction.atomic():
        won = transitions.bulk_change_complete(
            bulk_change_id=bulk_change_id, final=final, now=timezone.now()
        )
        if won:
            summary = ", ".join(f"{status} {n}" for status, n in counts.items() if n)
            logs.log_write(
                bulk_change_id=bulk_change_id,
                description=logs.COMPLETION,
                process_by=process_by,
                response_text=f"{final}: {summary}",
                has_errors=final != BulkChange.Status.PROCESSED,
            )
            transaction.on_commit(
                partial(webhook_completion_schedule, bulk_change_id=bulk_change_id), robust=True
            )
    if won:
        logger.info(
            "bulk change %s completed: %s",
            bulk_change_id,
            final,
            extra={"bulk_change_id": bulk_change_id},
        )
    return won
