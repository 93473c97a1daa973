"""Audit rows (BulkChangeLog): one per external call, device outcome, operator action and
completion. Rows are only ever created here, never updated."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from functools import cache

from django.utils import timezone

from bulkchanges.models import BulkChangeLog
from integrations.base import CallRecord, redact

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


@cache
def worker_identity() -> str:
    return f"worker:{socket.gethostname()}/{os.getpid()}"


def process_by_worker(*, automated: bool = False) -> str:
    """``worker:<host>/<pid>``, suffixed ``[automated]`` for automated producers' messages."""
    return worker_identity() + (" [automated]" if automated else "")


def log_row(
    *,
    bulk_change_id: int,
    description: str,
    process_by: str,
    device_change_id: int | None = None,
    request_id: str = "",
    error_text: str = "",
    has_errors: bool | None = None,
    request_text: str = "",
    response_text: str = "",
    response_status: int | None = None,
) -> BulkChangeLog:
    """An unsaved row; callers save it or bulk_create many."""
    return BulkChangeLog(
        bulk_change_id=bulk_change_id,
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
        failed = call is failed_call or call.response_status is None or call.response_status >= 400
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


def log_write(**kwargs: object) -> BulkChangeLog:
    row = log_row(**kwargs)  # type: ignore[arg-type]
    row.save(force_insert=True)
    return row
