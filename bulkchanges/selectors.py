"""Reads. The one place that derives a bulk change's counts and final status."""

from __future__ import annotations

from collections.abc import Mapping

from django.db.models import Count

from bulkchanges.models import BulkChange, DeviceChange


def device_status_counts(*, bulk_change_id: int) -> dict[str, int]:
    """Devices per DeviceChange status (every status present, zeros included)."""
    counts = dict.fromkeys(DeviceChange.Status.values, 0)
    rows = (
        DeviceChange.objects.filter(bulk_change_id=bulk_change_id)
        .order_by()
        .values_list("status")
        .annotate(n=Count("id"))
    )
    counts.update({status: n for status, n in rows})
    return counts


def final_status(counts: Mapping[str, int]) -> BulkChange.Status | None:
    """The final status for these device counts, or None while any device is unfinished.
    CANCELLED devices are ignored: all succeeded → PROCESSED, none → ERROR, a mix →
    PROCESSED_WITH_ERRORS."""
    if any(counts.get(status, 0) for status in DeviceChange.UNFINISHED):
        return None
    succeeded = sum(counts.get(status, 0) for status in DeviceChange.SUCCEEDED)
    failed = counts.get(DeviceChange.Status.ERROR, 0)
    if failed == 0 and succeeded > 0:
        return BulkChange.Status.PROCESSED
    if succeeded == 0:
        return BulkChange.Status.ERROR
    return BulkChange.Status.PROCESSED_WITH_ERRORS


def bulk_change_has_unfinished(*, bulk_change_id: int) -> bool:
    return DeviceChange.objects.filter(
        bulk_change_id=bulk_change_id, status__in=DeviceChange.UNFINISHED
    ).exists()
