"""Scheduled bulk changes (docs/operator-features.md): rescheduling one that has not started,
and the reaper's release of those that are due. A SCHEDULED bulk change has PENDING devices
and no SQS message; nothing can claim them until it is released to QUEUED."""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial

from django.db import transaction
from django.utils import timezone

from bulkchanges import sqs, transitions
from bulkchanges.errors import Conflict
from bulkchanges.models import BulkChange
from bulkchanges.services import logs
from bulkchanges.services.bulk_changes import scheduled_for_validate

logger = logging.getLogger(__name__)

RELEASE_BATCH = 500
REAPER = "reaper"


def _shown(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else "not scheduled"


def bulk_change_reschedule(
    *, bulk_change: BulkChange, actor: str, scheduled_for: datetime
) -> BulkChange:
    """Move a SCHEDULED (or still AWAITING_APPROVAL) bulk change to ``scheduled_for`` (the
    creation rules: aware, at most BULKCHANGE_MAX_SCHEDULE_DAYS ahead, at most a minute in
    the past). A time that is now or past releases a SCHEDULED one at once, in the same
    transaction (QUEUED, its message after commit) rather than waiting for the reaper. One
    audit row, old → new. Conflict once it has started or was cancelled."""
    now = timezone.now()
    new = scheduled_for_validate(scheduled_for=scheduled_for, now=now)
    assert new is not None
    with transaction.atomic():
        old = (
            BulkChange.objects.select_for_update()
            .filter(pk=bulk_change.pk)
            .values_list("scheduled_for", flat=True)
            .first()
        )
        if not transitions.bulk_change_reschedule(bulk_change_id=bulk_change.pk, scheduled_for=new):
            bulk_change.refresh_from_db()
            raise Conflict(
                f"bulk change {bulk_change.pk} is {bulk_change.status}; only a scheduled bulk "
                "change, or one awaiting approval, can be rescheduled"
            )
        released = transitions.bulk_change_release_scheduled(bulk_change_id=bulk_change.pk, now=now)
        logs.log_write(
            bulk_change_id=bulk_change.pk,
            description=logs.OPERATOR_RESCHEDULE,
            process_by=actor,
            response_text=f"rescheduled by {actor}: {_shown(old)} → {_shown(new)}"
            + ("; due, released to the queue now" if released else ""),
        )
        if released:
            transaction.on_commit(
                partial(sqs.send_bulk_change, bulk_change.pk, request_id=f"rescheduled-by-{actor}")
            )
    bulk_change.refresh_from_db()
    return bulk_change


def scheduled_due(*, now: datetime) -> list[int]:
    """SCHEDULED bulk changes whose time has come, oldest first (the (status, scheduled_for)
    index answers it)."""
    return list(
        BulkChange.objects.filter(status=BulkChange.Status.SCHEDULED, scheduled_for__lte=now)
        .order_by("scheduled_for")
        .values_list("pk", flat=True)[:RELEASE_BATCH]
    )


def bulk_changes_release_due(*, now: datetime | None = None) -> int:
    """Release each due SCHEDULED bulk change to QUEUED (compare-and-set: a concurrent reaper
    or a reschedule that came first wins), with the audit row, and send its SQS message after
    that commits — never before. Returns how many this call released."""
    now = now or timezone.now()
    released = 0
    for bulk_change_id in scheduled_due(now=now):
        with transaction.atomic():
            if not transitions.bulk_change_release_scheduled(
                bulk_change_id=bulk_change_id, now=now
            ):
                continue
            logs.log_write(
                bulk_change_id=bulk_change_id,
                description=logs.RELEASED_SCHEDULED,
                process_by=REAPER,
                response_text="its scheduled time has come; queued",
            )
            transaction.on_commit(
                partial(sqs.send_bulk_change, bulk_change_id, request_id="scheduled")
            )
        released += 1
        logger.info(
            "scheduled bulk change %s released",
            bulk_change_id,
            extra={"bulk_change_id": bulk_change_id},
        )
    return released
