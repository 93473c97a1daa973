"""Every write PondOps makes goes through these services (HackSoft style: keyword-only,
``<entity>_<action>``)."""

from bulkchanges.services.bulk_change_actions import (
    CancelOutcome,
    bulk_change_cancel,
    bulk_change_get,
    bulk_change_retry,
)
from bulkchanges.services.bulk_changes import (
    Preview,
    ValidatedRequest,
    bulk_change_create,
    bulk_change_gates,
    credentials_resolve,
    device_list_preview,
    status_update_request_validate,
)

__all__ = [
    "CancelOutcome",
    "Preview",
    "ValidatedRequest",
    "bulk_change_cancel",
    "bulk_change_create",
    "bulk_change_gates",
    "bulk_change_get",
    "bulk_change_retry",
    "credentials_resolve",
    "device_list_preview",
    "status_update_request_validate",
]
