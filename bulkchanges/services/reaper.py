"""The reaper: the database is the outbox, so nothing stays PROCESSING, QUEUED or
RETRY_SCHEDULED forever (docs/architecture.md §7). Run by ``run_reaper`` (its own process) and
``reap_once``."""

from __future__ import annotations

import logging
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

logger = logging.getLogger(__name__)
Status = DeviceChange.Status


@dataclass
class ReapReport:
    leases_expired: int = 0
    gave_up: int = 0
    retries_resent: int = 0
    bulk_changes_resent: int = 0
    bulk_changes_completed: int = 0
    unanswered_calls: int = 0

    def __str__(self) -> str:
        return (
            f"expired leases {self.leases_expired} (gave up {self.gave_up}), "
            f"retry messages re-sent {self.retries_resent}, "
            f"bulk changes re-sent {self.bulk_changes_resent}, "
            f"completed {self.bulk_changes_completed}, "
            f"unanswered calls closed {self.unanswered_calls}"
        )


def reap(*, enqueue: Enqueue, process_by: str, now: datetime | None = None) -> ReapReport:
    now = now or timezone.now()
    grace = timedelta(seconds=settings.BULKCHANGE_REAPER_GRACE_SECONDS)
    report = ReapReport()
    touched: set[int] = set()
    # Stalled first: the reaper's own writes below move ``updated_at`` and are not progress.
    _resend_stalled_bulk_changes(now, now - grace, report)
    _expire_leases(now, enqueue, process_by, report, touched)
    _resend_overdue_retries(now - grace, report)
    report.unanswered_calls += logs.call_rows_unanswered_close(
        started_before=now - grace - _longest_call()
    )
    runnable_without_work = BulkChange.objects.filter(status__in=BulkChange.RUNNABLE).exclude(
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
    expired = list(
        DeviceChange.objects.filter(status=Status.PROCESSING, claimed_until__lt=now).values_list(
            "pk", "bulk_change_id", "attempts", "last_error"
        )[:5000]
    )
    requeue: list[int] = []
    for pk, bulk_change_id, attempts, last_error in expired:
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
            touched.add(bulk_change_id)
            report.leases_expired += 1
            if gave_up:
                report.gave_up += 1
            else:
                requeue.append(pk)
    size = max(1, settings.BULKCHANGE_CHUNK_SIZE)
    for start in range(0, len(requeue), size):
        enqueue(requeue[start : start + size])


def _resend_overdue_retries(overdue_before: datetime, report: ReapReport) -> None:
    """A RETRY_SCHEDULED or AWAITING_CARRIER row is recorded before its message is sent; if the
    message was lost, send it again (and restart its grace period). A retry's message carries
    the next RetryNumber; another carrier check keeps the current one."""
    waiting = (Status.RETRY_SCHEDULED, Status.AWAITING_CARRIER)
    overdue = list(
        DeviceChange.objects.filter(
            status__in=waiting,
            next_attempt_at__lt=overdue_before,
            bulk_change__status__in=BulkChange.RUNNABLE,
        ).values_list("pk", "bulk_change_id", "attempts", "status")[:5000]
    )
    now = timezone.now()
    for pk, bulk_change_id, attempts, status in overdue:
        if DeviceChange.objects.filter(pk=pk, status=status).update(next_attempt_at=now):
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
    recent = DeviceChange.objects.filter(bulk_change=OuterRef("pk"), updated_at__gte=stalled_before)
    pending = DeviceChange.objects.filter(bulk_change=OuterRef("pk"), status=Status.PENDING)
    stalled = (
        BulkChange.objects.filter(status__in=BulkChange.RUNNABLE, queued_at__lt=stalled_before)
        .filter(Exists(pending))
        .exclude(Exists(recent))
        .values_list("pk", flat=True)
    )
    for bulk_change_id in list(stalled[:1000]):
        if BulkChange.objects.filter(pk=bulk_change_id, status__in=BulkChange.RUNNABLE).update(
            queued_at=now
        ):
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
