"""URL routes: the admin (operations console), the health check, the carriers' callbacks and
the partner API
(versioned in the path: /api/v1/; schema at /api/schema/, Swagger UI at /api/docs/)."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from bulkchanges.api.errors import api_not_found
from bulkchanges.metrics import metrics_view
from bulkchanges.views import carrier_callback, healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),  # Prometheus (docs/operations/observability.md)
    # Inbound carrier callbacks (docs/carriers/README.md)
    path(
        "carriers/<str:integration>/callbacks/<int:credentials_id>/",
        carrier_callback,
        name="carrier-callback",
    ),
    # Partner API
    re_path(r"^api/(?P<version>v1)/", include("bulkchanges.api.urls", namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(api_version="v1"), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    re_path(r"^api/", api_not_found),
]
