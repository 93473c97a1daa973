"""Operator actions on an existing bulk change — cancel and retry — shared by the admin, the
API and the commands, each logged with the actor. Status changes go through
:mod:`bulkchanges.transitions`. A cancel is truthful: it stops what has not reached the
carrier and lets what has run to its end (docs/architecture.md §6, "Cancel")."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bulkchanges import sqs, transitions
from bulkchanges.errors import Conflict, NotFound
from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange, Tenant
from bulkchanges.selectors import RESUBMITTABLE, device_status_counts
from bulkchanges.services.logs import (
    OPERATOR_CANCEL,
    OPERATOR_RESUBMIT,
    OPERATOR_RETRY,
    log_row,
    log_write,
)
from bulkchanges.services.processing.completion import (
    bulk_change_complete_if_done,
    bulk_change_completion_record,
    completion_time,
)
from pondops.metrics import device_outcome_count

BATCH = 1000


def bulk_change_get(*, bulk_change_id: int, tenant: Tenant | None = None) -> BulkChange:
    rows = BulkChange.objects.all() if tenant is None else BulkChange.objects.filter(tenant=tenant)
    found = rows.filter(pk=bulk_change_id).first()
    if found is None:
        raise NotFound(f"bulk change {bulk_change_id} does not exist")
    return found


@dataclass(frozen=True)
class CancelOutcome:
    """What a cancel did: ``cancelled`` devices (none had sent a carrier write) became CANCELLED
    at once; ``finishing`` devices had already sent their change to the carrier and run to
    their end with their real outcome, the bulk change ``status`` CANCELLING until they have
    (CANCELLED at once when there were none)."""

    bulk_change_id: int
    status: str
    cancelled: int
    finishing: int
    with_rev: bool = False  # the request creates Rev.io services: they are finished too

    def describe(self) -> str:
        """The words the console, the API and the audit row use for it."""
        now = (
            f"{self.cancelled} device{'s' if self.cancelled != 1 else ''} cancelled now "
            "(no change sent to the carrier)"
        )
        if not self.finishing:
            return f"{now}; no device was in flight, so the bulk change is CANCELLED."
        verb = "has" if self.finishing == 1 else "have"
        return (
            f"{now}; {self.finishing} device{'s' if self.finishing != 1 else ''} {verb} "
            "already sent the change to the carrier and will finish with their real outcome "
            f"(PROCESSED or ERROR){', Rev.io steps included' if self.with_rev else ''}; the "
            "bulk change stays CANCELLING until they have, then becomes CANCELLED."
        )


def bulk_change_cancel(*, bulk_change: BulkChange, actor: str) -> CancelOutcome:
    """Cancel an open bulk change. Devices that have sent no carrier write become CANCELLED at
    once (a worker that claimed one loses its write start and stops without calling the
    carrier); devices that have run to their end — all remaining steps, Rev.io included — and
    end PROCESSED or ERROR. The bulk change is CANCELLING until the last of them ends, then
    CANCELLED with its completion row and webhook (at once if none was in flight). One audit
    row with the actor. Conflict when it is not cancellable (final, or already cancelling)."""
    pk = bulk_change.pk
    cancellable = transitions.BULK_CHANGE["cancel"].sources
    with transaction.atomic():
        status = (
            BulkChange.objects.select_for_update()
            .filter(pk=pk)
            .values_list("status", flat=True)
            .first()
        )
        if status not in cancellable:
            raise Conflict(
                f"bulk change {pk} is {status}; only "
                + ", ".join(s for s in BulkChange.Status.values if s in cancellable)
                + " bulk changes can be cancelled"
            )
        cancelled = transitions.device_changes_cancel(bulk_change_id=pk, now=timezone.now())
        finishing = DeviceChange.objects.filter(
            bulk_change_id=pk, status__in=DeviceChange.UNFINISHED
        ).count()
        if not transitions.bulk_change_cancel(
            bulk_change_id=pk,
            now=completion_time(bulk_change_id=pk),
            by=actor,
            in_flight=bool(finishing),
        ):
            raise Conflict(f"bulk change {pk} changed meanwhile; it was not cancelled")
        outcome = CancelOutcome(
            bulk_change_id=pk,
            status=BulkChange.Status.CANCELLING if finishing else BulkChange.Status.CANCELLED,
            cancelled=cancelled,
            finishing=finishing,
            with_rev=bool((bulk_change.request or {}).get("RevService")),
        )
        log_write(
            bulk_change_id=pk,
            description=OPERATOR_CANCEL,
            process_by=actor,
            response_text=outcome.describe(),
        )
        if not finishing:
            bulk_change_completion_record(
                bulk_change_id=pk,
                final=BulkChange.Status.CANCELLED,
                counts=device_status_counts(bulk_change_id=pk),
                process_by=actor,
            )
    device_outcome_count(
        carrier=bulk_change.integration, status=DeviceChange.Status.CANCELLED, count=cancelled
    )
    if finishing:
        # The last device in flight may have ended between the count and the commit, its own
        # completion check still seeing the bulk change running: finish the cancel for it.
        bulk_change_complete_if_done(bulk_change_id=pk, process_by=actor)
    bulk_change.refresh_from_db()
    return outcome


def _stuck(now: datetime) -> Q:
    grace = timedelta(seconds=settings.BULKCHANGE_REAPER_GRACE_SECONDS)
    return (
        Q(status=DeviceChange.Status.PROCESSING, claimed_until__lt=now)
        | Q(
            status__in=(DeviceChange.Status.RETRY_SCHEDULED, DeviceChange.Status.AWAITING_CARRIER),
            next_attempt_at__lt=now - grace,
        )
        | Q(status=DeviceChange.Status.PENDING, updated_at__lt=now - grace)
    )


def bulk_change_retry(
    *,
    bulk_change: BulkChange,
    actor: str,
    device_change_ids: Iterable[int] | None = None,
    include_stuck: bool = False,
    resubmit: bool = False,
    dry_run: bool = False,
) -> list[int]:
    """Re-queue failed devices (ERROR; with ``include_stuck`` also expired leases, overdue retries
    and carrier checks, and PENDING devices without progress) with a fresh RetryNumber.
    Completed steps are kept, so each device resumes where it stopped — a change the carrier
    accepted resumes at CONFIRM. ``resubmit`` (an operator's explicit choice) takes the ERROR
    devices whose carrier request was never confirmed and submits them again: the old request
    id goes to each device's audit row. Logs the actor and each device's old attempt count.
    Returns the device change ids (re-)queued, or that would be with ``dry_run``."""
    if bulk_change.status == BulkChange.Status.CANCELLING:
        raise Conflict(
            f"bulk change {bulk_change.pk} is cancelling (its devices in flight are finishing); "
            "it cannot be retried"
        )
    if bulk_change.status == BulkChange.Status.CANCELLED:
        raise Conflict(f"bulk change {bulk_change.pk} is cancelled; it cannot be retried")
    now = timezone.now()
    eligible = RESUBMITTABLE if resubmit else Q(status=DeviceChange.Status.ERROR)
    if include_stuck and not resubmit:
        eligible |= _stuck(now)
    rows = DeviceChange.objects.filter(bulk_change=bulk_change)
    if device_change_ids is not None:
        wanted = sorted(set(device_change_ids))
        rows = rows.filter(pk__in=wanted)
        found = set(rows.values_list("pk", flat=True))
        missing = [pk for pk in wanted if pk not in found]
        if missing:
            raise NotFound(f"device changes {missing} are not part of bulk change {bulk_change.pk}")
        not_eligible = list(rows.exclude(eligible).values_list("pk", "status"))
        if not_eligible:
            described = ", ".join(f"{pk} ({status})" for pk, status in not_eligible)
            action = "resubmit" if resubmit else "retry"
            raise Conflict(f"device changes not eligible for {action}: {described}")
    chosen = list(
        rows.filter(eligible).values_list("pk", "attempts", "status", "carrier_request_id")
    )
    if dry_run or not chosen:
        return [pk for pk, *_ in chosen]
    description = OPERATOR_RESUBMIT if resubmit else OPERATOR_RETRY
    with transaction.atomic():
        if not transitions.bulk_change_reopen(bulk_change_id=bulk_change.pk):
            raise Conflict(
                f"bulk change {bulk_change.pk} was cancelled meanwhile; it cannot be retried"
            )
        transitions.device_changes_requeue(
            ids=[pk for pk, *_ in chosen], eligible=eligible, resubmit=resubmit
        )
        BulkChangeLog.objects.bulk_create(
            [
                log_row(
                    bulk_change_id=bulk_change.pk,
                    description=description,
                    process_by=actor,
                    response_text=f"{len(chosen)} devices "
                    + ("re-queued to submit again" if resubmit else "re-queued"),
                ),
                *(
                    log_row(
                        bulk_change_id=bulk_change.pk,
                        device_change_id=pk,
                        description=description,
                        process_by=actor,
                        response_text=f"re-queued from {status}; attempts was {attempts}, "
                        "reset to 0"
                        + (
                            f"; carrier request {request_id or '(none)'} forgotten, "
                            "the change is submitted again"
                            if resubmit
                            else ""
                        ),
                    )
                    for pk, attempts, status, request_id in chosen
                ),
            ],
            batch_size=BATCH,
        )
        transaction.on_commit(
            partial(sqs.send_bulk_change, bulk_change.pk, request_id=f"retry-by-{actor}")
        )
    bulk_change.refresh_from_db()
    return [pk for pk, *_ in chosen]
