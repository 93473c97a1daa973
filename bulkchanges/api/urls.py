"""Routes of the partner API, mounted under /api/<version>/ (only v1 exists)."""

from django.urls import path

from bulkchanges.api import actions, exports, gates, previews, views

app_name = "api"

urlpatterns = [
    path("bulk-changes/", views.BulkChangeListCreateApi.as_view(), name="bulk-change-list"),
    path("bulk-changes/<int:pk>/", views.BulkChangeDetailApi.as_view(), name="bulk-change-detail"),
    path(
        "bulk-changes/<int:pk>/devices/",
        views.BulkChangeDevicesApi.as_view(),
        name="bulk-change-devices",
    ),
    path("bulk-changes/<int:pk>/logs/", views.BulkChangeLogsApi.as_view(), name="bulk-change-logs"),
    path(
        "bulk-changes/<int:pk>/retry/",
        actions.BulkChangeRetryApi.as_view(),
        name="bulk-change-retry",
    ),
    path(
        "bulk-changes/<int:pk>/cancel/",
        actions.BulkChangeCancelApi.as_view(),
        name="bulk-change-cancel",
    ),
    path(
        "bulk-changes/<int:pk>/approve/",
        gates.BulkChangeApproveApi.as_view(),
        name="bulk-change-approve",
    ),
    path(
        "bulk-changes/<int:pk>/reject/",
        gates.BulkChangeRejectApi.as_view(),
        name="bulk-change-reject",
    ),
    path(
        "bulk-changes/<int:pk>/reschedule/",
        gates.BulkChangeRescheduleApi.as_view(),
        name="bulk-change-reschedule",
    ),
    path(
        "bulk-changes/<int:pk>/export.csv",
        exports.BulkChangeExportApi.as_view(),
        name="bulk-change-export",
    ),
    path("webhook-secret/", actions.WebhookSecretApi.as_view(), name="webhook-secret"),
    # Previews (dry runs) and reverts: bulkchanges/api/previews.py
    path("previews/", previews.PreviewListCreateApi.as_view(), name="preview-list"),
    path("previews/<int:pk>/", previews.PreviewDetailApi.as_view(), name="preview-detail"),
    path(
        "previews/<int:pk>/devices/", previews.PreviewDevicesApi.as_view(), name="preview-devices"
    ),
    path(
        "previews/<int:pk>/bulk-change/",
        previews.PreviewBulkChangeApi.as_view(),
        name="preview-bulk-change",
    ),
    path("previews/<int:pk>/revert/", previews.PreviewRevertApi.as_view(), name="preview-revert"),
    path(
        "bulk-changes/<int:pk>/preview/",
        previews.BulkChangePreviewApi.as_view(),
        name="bulk-change-preview",
    ),
    path(
        "bulk-changes/<int:pk>/revert-preview/",
        previews.BulkChangeRevertPreviewApi.as_view(),
        name="bulk-change-revert-preview",
    ),
]
