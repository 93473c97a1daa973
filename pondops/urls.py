"""URL routes: the admin (operations console) and the health check."""

from django.contrib import admin
from django.urls import path

from bulkchanges.views import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]
