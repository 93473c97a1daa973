"""Audit rows (BulkChangeLog): one per external call, device outcome, operator action and
completion. Rows are only ever created here, never updated — with one exception: an outbound
call's row is written *before* the call (``in_flight``) and completed here once its answer is in,
so no call is ever without its row. A row whose worker died before the answer was recorded is
closed as :data:`NO_RESPONSE` by the reaper."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from datetime import datetime
from functools import cache

from django.utils import timezone

from bulkchanges.models import BulkChangeLog
from integrations.base import CallRecord, CallStart, redact

COMPLETION = "Bulk change completed"
DEVICE_OUTCOME = "Device status change result"
RETRY_SCHEDULED = "Retry scheduled"
AWAITING_CARRIER = "Waiting for carrier"
CARRIER_CALLBACK = "Carrier callback received"
OPERATOR_RESUBMIT = "Resubmit requested"
OPERATOR_RETRY = "Retry requested"
OPERATOR_CANCEL = "Bulk change cancelled"
WRITES_DISABLED = "Writes disabled"
LEASE_EXPIRED = "Worker lease expired"
NO_RESPONSE = "no response: worker stopped"
# Scheduled bulk changes and four-eyes approval (bulkchanges.services.approvals, .scheduling).
OPERATOR_APPROVE = "Bulk change approved"
OPERATOR_REJECT = "Bulk change rejected"
OPERATOR_RESCHEDULE = "Bulk change rescheduled"
RELEASED_SCHEDULED = "Released scheduled bulk change"


@cache
def worker_identity() -> str:
    return f"worker:{socket.gethostname()}/{os.getpid()}"


def process_by_worker(*, automated: bool = False) -> str:
    """``worker:<host>/<pid>``, suffixed ``[automated]`` for automated producers' messages."""
    return worker_identity() + (" [automated]" if automated else "")


def log_row(
    *,
    bulk_change_id: int | None = None,
    description: str,
    process_by: str,
    device_change_id: int | None = None,
    request_id: str = "",
    error_text: str = "",
    has_errors: bool | None = None,
    request_text: str = "",
    response_text: str = "",
    response_status: int | None = None,
    preview_id: int | None = None,
) -> BulkChangeLog:
    """An unsaved row of a bulk change, or of a preview (``preview_id``; exactly one of the
    two, a check constraint); callers save it or bulk_create many."""
    return BulkChangeLog(
        bulk_change_id=bulk_change_id,
        preview_id=preview_id,
        device_change_id=device_change_id,
        log_entry_description=description,
        request_text=redact(request_text),
        response_text=redact(response_text),
        response_status=response_status,
        has_errors=bool(error_text) if has_errors is None else has_errors,
        error_text=redact(error_text),
        process_by=process_by,
        request_id=request_id[:200],
        processed_at=timezone.now(),
    )


def call_rows(
    calls: Iterable[CallRecord],
    *,
    bulk_change_id: int,
    device_change_id: int,
    process_by: str,
    request_id: str,
    failed_call: CallRecord | None = None,
    error_text: str = "",
) -> list[BulkChangeLog]:
    """One row per external HTTP call (already redacted by the integration client)."""
    rows = []
    for call in calls:
        failed = _call_failed(call, failed_call)
        rows.append(
            log_row(
                bulk_change_id=bulk_change_id,
                device_change_id=device_change_id,
                description=call.description,
                process_by=process_by,
                request_id=request_id,
                request_text=call.request_text,
                response_text=call.response_text,
                response_status=call.response_status,
                has_errors=failed,
                error_text=error_text if call is failed_call else "",
            )
        )
    return rows


def _call_failed(call: CallRecord, failed_call: CallRecord | None) -> bool:
    return call is failed_call or call.response_status is None or call.response_status >= 400


def call_started_write(
    start: CallStart,
    *,
    bulk_change_id: int,
    device_change_id: int,
    process_by: str,
    request_id: str,
) -> int:
    """Write a call's row before the call is sent (committed at once: the caller holds no
    transaction); returns its id for :func:`call_row_complete`."""
    row = log_row(
        bulk_change_id=bulk_change_id,
        device_change_id=device_change_id,
        description=start.description,
        process_by=process_by,
        request_id=request_id,
        request_text=start.request_text,
    )
    row.in_flight = True
    row.save(force_insert=True)
    return int(row.pk)


def call_row_complete(
    row_id: int, call: CallRecord, *, failed_call: CallRecord | None = None, error_text: str = ""
) -> None:
    """Complete the row :func:`call_started_write` wrote with the call's answer."""
    BulkChangeLog.objects.filter(pk=row_id).update(
        response_text=redact(call.response_text),
        response_status=call.response_status,
        has_errors=_call_failed(call, failed_call),
        error_text=redact(error_text if call is failed_call else ""),
        in_flight=False,
    )


def call_rows_unanswered_close(
    *, device_change_id: int | None = None, started_before: datetime | None = None
) -> int:
    """Close the in-flight call rows of a device change whose worker is gone (or every one
    started before ``started_before``): their answer never reached the audit log."""
    rows = BulkChangeLog.objects.filter(in_flight=True)
    if device_change_id is not None:
        rows = rows.filter(device_change_id=device_change_id)
    if started_before is not None:
        rows = rows.filter(processed_at__lt=started_before)
    return rows.update(in_flight=False, has_errors=True, response_text=NO_RESPONSE)


def log_write(**kwargs: object) -> BulkChangeLog:
    row = log_row(**kwargs)  # type: ignore[arg-type]
    row.save(force_insert=True)
    return row


# --- Previews and reverts (docs/operator-features.md) ----------------------------------------

PREVIEW_CREATED = "Preview requested"
PREVIEW_DEVICE_VERDICT = "Preview verdict"
PREVIEW_FINISHED = "Preview finished"
PREVIEW_FAILED = "Preview failed"
PREVIEW_BULK_CHANGE_CREATED = "Bulk change created from preview"
REVERT_PREVIEW_CREATED = "Revert previewed"
REVERT_CREATED = "Revert created"


def preview_call_started_write(start: CallStart, *, preview_id: int, process_by: str) -> int:
    """A preview's read call, written before it is sent (as :func:`call_started_write` does
    for a bulk change); completed by :func:`call_row_complete`."""
    row = log_row(
        preview_id=preview_id,
        description=start.description,
        process_by=process_by,
        request_text=start.request_text,
    )
    row.in_flight = True
    row.save(force_insert=True)
    return int(row.pk)
