"""Reads for the partner API: bulk changes scoped to a tenant, their devices and logs (their
progress is :func:`bulkchanges.selectors.bulk_change_progress`, shared with the admin and the
completion webhook). Another tenant's rows are simply absent, so a probe
for them is a 404 like any unknown id."""

from __future__ import annotations

from django.db.models import QuerySet

from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange, Tenant


def bulk_changes_visible(*, tenant: Tenant | None) -> QuerySet[BulkChange]:
    """Bulk changes a caller may see: its tenant's, or every tenant's for staff (None)."""
    rows = BulkChange.objects.select_related("tenant")
    return rows if tenant is None else rows.filter(tenant=tenant)


def device_changes_of(*, bulk_change: BulkChange) -> QuerySet[DeviceChange]:
    return DeviceChange.objects.filter(bulk_change=bulk_change).order_by("id")


def logs_of(*, bulk_change: BulkChange) -> QuerySet[BulkChangeLog]:
    return BulkChangeLog.objects.filter(bulk_change=bulk_change).order_by("-processed_at", "-id")
