"""Routes of the partner API, mounted under /api/<version>/ (only v1 exists)."""

from django.urls import path

from bulkchanges.api import actions, exports, views

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
        "bulk-changes/<int:pk>/export.csv",
        exports.BulkChangeExportApi.as_view(),
        name="bulk-change-export",
    ),
    path("webhook-secret/", actions.WebhookSecretApi.as_view(), name="webhook-secret"),
]
