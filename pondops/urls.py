"""URL routes: the admin (operations console), the carriers' callbacks and the partner API
(versioned in the path: /api/v1/; schema at /api/schema/, Swagger UI at /api/docs/ and ReDoc at
/api/redoc/, served from drf-spectacular-sidecar's static files: bulkchanges/api/docs.py).
The health probes /livez, /readyz and /healthz have no route: bulkchanges.health's middleware
answers them before host validation."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from bulkchanges.api.docs import ApiRedocView, ApiSwaggerView
from bulkchanges.api.errors import api_not_found
from bulkchanges.metrics import metrics_view
from bulkchanges.views import carrier_callback

urlpatterns = [
    path("admin/", admin.site.urls),
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
    path("api/docs/", ApiSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", ApiRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    re_path(r"^api/", api_not_found),
]
