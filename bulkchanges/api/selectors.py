"""Reads for the partner API (and the completion webhook's summary): bulk changes scoped to a
tenant, their progress, devices and logs. Another tenant's rows are simply absent, so a probe
for them is a 404 like any unknown id."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, QuerySet
from django.utils import timezone

from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange, Tenant
from bulkchanges.selectors import device_status_counts


@dataclass(frozen=True)
class Progress:
    """Devices per status and the derived totals of one bulk change."""

    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        return sum(self.counts.get(status, 0) for status in DeviceChange.TERMINAL)

    @property
    def succeeded(self) -> int:
        return sum(self.counts.get(status, 0) for status in DeviceChange.SUCCEEDED)

    @property
    def failed(self) -> int:
        return self.counts.get(DeviceChange.Status.ERROR, 0)

    @property
    def percent(self) -> float:
        return round(100.0 * self.done / self.total, 1) if self.total else 100.0

    def as_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "done": self.done,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "percent": self.percent,
            "counts": dict(self.counts),
        }


def bulk_changes_visible(*, tenant: Tenant | None) -> QuerySet[BulkChange]:
    """Bulk changes a caller may see: its tenant's, or every tenant's for staff (None)."""
    rows = BulkChange.objects.select_related("tenant")
    return rows if tenant is None else rows.filter(tenant=tenant)


def bulk_change_progress(*, bulk_change_id: int) -> Progress:
    return Progress(device_status_counts(bulk_change_id=bulk_change_id))


def bulk_change_progress_many(*, bulk_change_ids: Iterable[int]) -> dict[int, Progress]:
    """Progress for a page of bulk changes in one grouped query (index bulk_change, status)."""
    ids = list(bulk_change_ids)
    counts: dict[int, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(DeviceChange.Status.values, 0)
    )
    rows = (
        DeviceChange.objects.filter(bulk_change_id__in=ids)
        .order_by()
        .values_list("bulk_change_id", "status")
        .annotate(n=Count("id"))
    )
    for bulk_change_id, status, n in rows:
        counts[bulk_change_id][status] = n
    return {pk: Progress(counts[pk]) for pk in ids}


def elapsed_seconds(bulk_change: BulkChange, *, now: datetime | None = None) -> float:
    """Seconds from creation to completion (or to now while it runs)."""
    end = bulk_change.processed_at or now or timezone.now()
    return round(max(0.0, (end - bulk_change.created_at).total_seconds()), 3)


def device_changes_of(*, bulk_change: BulkChange) -> QuerySet[DeviceChange]:
    return DeviceChange.objects.filter(bulk_change=bulk_change).order_by("id")


def logs_of(*, bulk_change: BulkChange) -> QuerySet[BulkChangeLog]:
    return BulkChangeLog.objects.filter(bulk_change=bulk_change).order_by("-processed_at", "-id")
