"""The API's human-readable docs, Swagger UI (``/api/docs/``) and ReDoc (``/api/redoc/``),
served from drf-spectacular-sidecar's static files (SPECTACULAR_SETTINGS ``*_DIST =
"SIDECAR"``) so they work on a network that reaches nothing else.

Both pages also send a Content-Security-Policy that lets them load only from our own origin:
ReDoc's bundle draws Redocly's logo from cdn.redoc.ly whatever its options, and any future
bundle that reaches for a CDN is stopped by the browser the same way (the logo's ``onError``
simply hides it). Inline script and style are allowed: drf-spectacular's Swagger page starts
the UI with an inline script and both UIs style inline.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

DOCS_CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ]
)


class _OwnOriginOnly:
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response: HttpResponse = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        response["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        return response


class ApiSwaggerView(_OwnOriginOnly, SpectacularSwaggerView):
    pass


class ApiRedocView(_OwnOriginOnly, SpectacularRedocView):
    # drf-spectacular's page less its Google Fonts links (ReDoc uses the system's fonts).
    template_name = "api/redoc.html"
