"""Routes of the partner API, mounted under /api/<version>/ (only v1 exists)."""

from django.urls import path

from bulkchanges.api import actions, exports, gates, views

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
]
