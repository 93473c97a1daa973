"""The reaper: the database is the outbox, so nothing stays PROCESSING, QUEUED, SCHEDULED,
RETRY_SCHEDULED or CANCELLING forever (docs/architecture.md §7). A CANCELLING bulk change is
released work like a running one: its devices in flight get their re-sends and expired-lease
handling, and once none is left the reaper writes its CANCELLED. Run by ``run_reaper`` (its
own process) and ``reap_once``."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from bulkchanges import sqs, transitions
from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from bulkchanges.services import logs
from bulkchanges.services.processing import Enqueue, bulk_change_complete_if_done
from bulkchanges.services.scheduling import bulk_changes_release_due
from pondops.metrics import device_outcome_count

logger = logging.getLogger(__name__)
Status = DeviceChange.Status


@dataclass
class ReapReport:
    leases_expired: int = 0
    gave_up: int = 0
    hand_offs_returned: int = 0
    retries_resent: int = 0
    bulk_changes_resent: int = 0
    bulk_changes_completed: int = 0
    unanswered_calls: int = 0
    scheduled_released: int = 0
    previews_resent: int = 0

    def __str__(self) -> str:
        return (
            f"expired leases {self.leases_expired} (gave up {self.gave_up}), "
            f"lost hand-offs returned {self.hand_offs_returned}, "
            f"retry messages re-sent {self.retries_resent}, "
            f"bulk changes re-sent {self.bulk_changes_resent}, "
            f"completed {self.bulk_changes_completed}, "
            f"unanswered calls closed {self.unanswered_calls}, "
            f"scheduled bulk changes released {self.scheduled_released}, "
            f"stalled previews re-enqueued {self.previews_resent}"
        )


def reap(*, enqueue: Enqueue, process_by: str, now: datetime | None = None) -> ReapReport:
    """One pass. Idempotent across concurrent passes (one per host): every re-send is a
    compare-and-set on the value this pass read, so each lost item is re-sent once."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.BULKCHANGE_REAPER_GRACE_SECONDS)
    report = ReapReport()
    touched: set[int] = set()
    # Stalled first: the reaper's own writes below move ``updated_at`` and are not progress.
    _resend_stalled_bulk_changes(now, now - grace, report)
    _expire_leases(now, enqueue, process_by, report, touched)
    _return_lost_hand_offs(now, enqueue, report)
    _resend_overdue_retries(now - grace, report)
    # Due SCHEDULED bulk changes: at most one reaper interval late (docs/operator-features.md).
    report.scheduled_released += bulk_changes_release_due(now=now)
    _resend_stalled_previews(now, now - grace, report)
    report.unanswered_calls += logs.call_rows_unanswered_close(
        started_before=now - grace - _longest_call()
    )
    # Running or CANCELLING with nothing left: a completion (or a cancel's finish) was missed.
    runnable_without_work = BulkChange.objects.filter(status__in=transitions.RELEASED).exclude(
        Exists(
            DeviceChange.objects.filter(
                bulk_change=OuterRef("pk"), status__in=DeviceChange.UNFINISHED
            )
        )
    )
    for bulk_change_id in set(runnable_without_work.values_list("pk", flat=True)) | touched:
        if bulk_change_complete_if_done(bulk_change_id=bulk_change_id, process_by=process_by):
            report.bulk_changes_completed += 1
    if any(vars(report).values()):
        logger.info("reaper: %s", report)
    return report


# The reads of a pass, each a function of its own: the writes after them are compare-and-sets
# on what they returned (tests make two passes read the same rows before either writes).


def _expired_leases(now: datetime) -> list[tuple[int, int, int, str, str]]:
    return list(
        DeviceChange.objects.filter(status=Status.PROCESSING, claimed_until__lt=now).values_list(
            "pk", "bulk_change_id", "attempts", "last_error", "bulk_change__integration"
        )[:5000]
    )


def _lost_hand_offs(now: datetime) -> list[uuid.UUID | None]:
    return list(
        DeviceChange.objects.filter(
            status=Status.PENDING,
            claim_token__isnull=False,
            claimed_until__lt=now,
            bulk_change__status__in=transitions.RELEASED,
        )
        .values_list("claim_token", flat=True)
        .distinct()[:1000]
    )


def _overdue_retries(
    overdue_before: datetime,
) -> list[tuple[int, int, int, str, datetime | None]]:
    return list(
        DeviceChange.objects.filter(
            status__in=(Status.RETRY_SCHEDULED, Status.AWAITING_CARRIER),
            next_attempt_at__lt=overdue_before,
            bulk_change__status__in=transitions.RELEASED,
        ).values_list("pk", "bulk_change_id", "attempts", "status", "next_attempt_at")[:5000]
    )


def _stalled_bulk_changes(stalled_before: datetime) -> list[tuple[int, datetime | None]]:
    recent = DeviceChange.objects.filter(bulk_change=OuterRef("pk"), updated_at__gte=stalled_before)
    pending = DeviceChange.objects.filter(bulk_change=OuterRef("pk"), status=Status.PENDING)
    return list(
        BulkChange.objects.filter(status__in=transitions.RELEASED, queued_at__lt=stalled_before)
        .filter(Exists(pending))
        .exclude(Exists(recent))
        .values_list("pk", "queued_at")[:1000]
    )


def _longest_call() -> timedelta:
    """How long a live worker's call can take once its row is written (connect + read)."""
    return timedelta(
        seconds=settings.BULKCHANGE_HTTP_CONNECT_TIMEOUT + settings.BULKCHANGE_HTTP_READ_TIMEOUT
    )


def _expire_leases(
    now: datetime,
    enqueue: Enqueue,
    process_by: str,
    report: ReapReport,
    touched: set[int],
) -> None:
    """PROCESSING rows whose lease expired (a dead worker) go back to RETRY_SCHEDULED — the
    expiry counts as an attempt — or, with no retries left, end ERROR. The dead worker's call
    rows still in flight are closed as having had no response."""
    expired = _expired_leases(now)
    requeue: list[int] = []
    for pk, bulk_change_id, attempts, last_error, integration in expired:
        gave_up = attempts >= settings.BULKCHANGE_MAX_RETRIES
        reason = "worker lease expired (worker died or stalled mid-device)"
        with transaction.atomic():
            won = transitions.device_change_expire_lease(
                device_change_id=pk,
                now=now,
                give_up=gave_up,
                last_error=(
                    f"gave up after {attempts} retries: {reason}"
                    if gave_up
                    else last_error or reason
                ),
            )
            if won:
                report.unanswered_calls += logs.call_rows_unanswered_close(device_change_id=pk)
                logs.log_write(
                    bulk_change_id=bulk_change_id,
                    device_change_id=pk,
                    description=logs.LEASE_EXPIRED,
                    process_by=process_by,
                    error_text=reason + ("; gave up" if gave_up else "; requeued"),
                )
        if won:
            device_outcome_count(
                carrier=integration, status=Status.ERROR if gave_up else Status.RETRY_SCHEDULED
            )
            touched.add(bulk_change_id)
            report.leases_expired += 1
            if gave_up:
                report.gave_up += 1
            else:
                requeue.append(pk)
    size = max(1, settings.BULKCHANGE_CHUNK_SIZE)
    for start in range(0, len(requeue), size):
        enqueue(requeue[start : start + size])


def _return_lost_hand_offs(now: datetime, enqueue: Enqueue, report: ReapReport) -> None:
    """PENDING rows handed to a process (a cluster took their chunk off the queue, or a worker
    started it) whose hand-off lease expired: that process died before claiming them. Taken
    back token by token (a compare-and-set) and enqueued again at once."""
    size = max(1, settings.BULKCHANGE_CHUNK_SIZE)
    for token in _lost_hand_offs(now):
        if token is None:
            continue
        with transaction.atomic():
            ids = transitions.device_changes_take_lost_hand_off(
                token=token, before=now, reaper_token=uuid.uuid4()
            )
        for start in range(0, len(ids), size):
            enqueue(ids[start : start + size])
        report.hand_offs_returned += len(ids)


def _resend_overdue_retries(overdue_before: datetime, report: ReapReport) -> None:
    """A RETRY_SCHEDULED or AWAITING_CARRIER row is recorded before its message is sent; if the
    message was lost, send it again (and restart its grace period). A retry's message carries
    the next RetryNumber; another carrier check keeps the current one."""
    now = timezone.now()
    for pk, bulk_change_id, attempts, status, read_at in _overdue_retries(overdue_before):
        # Compare-and-set on what this pass read: a concurrent pass that re-sent it first
        # moved next_attempt_at, so this one re-sends nothing.
        mine = DeviceChange.objects.filter(pk=pk, status=status, next_attempt_at=read_at)
        if mine.update(next_attempt_at=now):
            sqs.send_device_retry(
                bulk_change_id=bulk_change_id,
                device_change_id=pk,
                retry_number=attempts + 1 if status == Status.RETRY_SCHEDULED else attempts,
                delay_seconds=0,
                request_id="reaper",
            )
            report.retries_resent += 1


def _resend_stalled_bulk_changes(
    now: datetime, stalled_before: datetime, report: ReapReport
) -> None:
    """A queued bulk change whose PENDING devices have seen no progress for the grace period
    (a lost message, or a fan-out that died half-way) is sent again."""
    for bulk_change_id, read_at in _stalled_bulk_changes(stalled_before):
        mine = BulkChange.objects.filter(
            pk=bulk_change_id, status__in=transitions.RELEASED, queued_at=read_at
        )
        if mine.update(queued_at=now):
            BulkChangeLog.objects.bulk_create(
                [
                    logs.log_row(
                        bulk_change_id=bulk_change_id,
                        description="Bulk change re-queued",
                        process_by="reaper",
                        response_text="no progress within the grace period; message sent again",
                    )
                ]
            )
            sqs.send_bulk_change(bulk_change_id, request_id="reaper")
            report.bulk_changes_resent += 1


def _resend_stalled_previews(now: datetime, stalled_before: datetime, report: ReapReport) -> None:
    """Previews whose reads stopped (a dead worker's chunk, a lost task) are started again;
    their fan-out hands out only the devices nobody holds (services.previews)."""
    from bulkchanges.services.previews import previews_stalled_resend

    report.previews_resent += previews_stalled_resend(now=now, stalled_before=stalled_before)
