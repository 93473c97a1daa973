"""The operations dashboard on the admin index: bulk changes by status in the last 24 hours,
devices finished per carrier, devices in flight, the queue's approximate depth, the messages in
the dead-letter queue (with the age of the oldest) and the oldest unfinished bulk change — so
staff see at a glance whether processing is healthy. The site's index
(``bulkchanges/admin/site.py``) renders it above the app list, and polls it again every few
seconds (``BulkChangeAdmin.dashboard_live_view``, progress.js) to swap the figures in place.
An operator's figures count only their tenants' bulk changes and devices; the queue's depth is
the whole queue's (it has no tenant), and the dead-letter stat is shown to superusers only, as
its page is.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from bulkchanges.admin import display
from bulkchanges.models import BulkChange, DeviceChange
from bulkchanges.selectors import (
    FINISHED_ORDER,
    SqsStatus,
    bulk_change_progress,
    dashboard_get,
)

# An unfinished bulk change older than this is flagged on the dashboard.
STALE_AFTER = timedelta(hours=1)


def _dead_letters_context(status: SqsStatus) -> dict[str, Any] | None:
    """The dead-letter stat: None when no DLQ is configured; ``count`` None when unknown."""
    if not status.dlq_configured:
        return None
    age = status.oldest_dead_letter_age()
    return {
        "count": status.dead_letters,
        "oldest_age": display.duration(timedelta(seconds=age)) if age is not None else "",
        "url": reverse("admin:bulkchanges_refusedmessage_changelist"),
        "error": status.error,
    }


def dashboard_context(
    *, hours: int = 24, tenant_ids: frozenset[int] | None = None, show_dead_letters: bool = True
) -> dict[str, Any]:
    """The figures within ``tenant_ids`` (None: every tenant). The dead-letter stat only with
    ``show_dead_letters`` (superusers: the queue's messages belong to no one tenant)."""
    dashboard = dashboard_get(hours=hours, tenant_ids=tenant_ids)
    changelist = reverse("admin:bulkchanges_bulkchange_changelist")
    devices = reverse("admin:bulkchanges_devicechange_changelist")
    oldest = dashboard.oldest_unfinished
    oldest_context = None
    if oldest is not None:
        oldest_age = timezone.now() - oldest.created_at
        oldest_context = {
            "bulk_change": oldest,
            "url": display.bulk_change_url(oldest.pk),
            "badge": display.status_badge(oldest.status),
            "progress_bar": display.progress_bar(bulk_change_progress(bulk_change_id=oldest.pk)),
            "age": display.duration(oldest_age),
            "created": display.timestamp(oldest.created_at),
            "is_stale": oldest_age > STALE_AFTER,
        }
    return {
        "hours": hours,
        "by_status": [
            {
                "status": status,
                "badge": display.status_badge(status),
                "count": count,
                "url": f"{changelist}?{urlencode({'status__exact': status})}",
            }
            for status, count in dashboard.bulk_changes_by_status.items()
        ],
        "created_total": sum(dashboard.bulk_changes_by_status.values()),
        "finished_statuses": [status.label.lower() for status in FINISHED_ORDER],
        "by_carrier": [
            {"integration": integration, "counts": [counts[status] for status in FINISHED_ORDER]}
            for integration, counts in dashboard.devices_by_carrier.items()
        ],
        "unfinished": [
            {
                "badge": display.status_badge(status),
                "count": count,
                "url": f"{devices}?{urlencode({'status__exact': status})}",
            }
            for status, count in dashboard.devices_unfinished.items()
        ],
        "queue_depth": dashboard.sqs.queue_depth,
        "queue_total": (
            sum(dashboard.sqs.queue_depth.values()) if dashboard.sqs.queue_depth else None
        ),
        "queue_error": dashboard.sqs.error,
        "dead_letters": _dead_letters_context(dashboard.sqs) if show_dead_letters else None,
        "oldest": oldest_context,
        "open_statuses": sorted(BulkChange.OPEN),
        "device_unfinished_statuses": sorted(DeviceChange.UNFINISHED),
    }
