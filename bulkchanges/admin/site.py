"""The operations console's admin site: Django's admin under PondOps' name, with the
operations dashboard on its index.

It is the project's default admin site (``bulkchanges.apps.PondOpsAdminConfig`` stands in
INSTALLED_APPS for ``django.contrib.admin``), so ``admin.site``, ``@admin.register`` and the
admin's autodiscovery all mean this site, and ``pondops/urls.py`` mounts it at ``/admin/``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin import AdminSite
from django.http import HttpRequest
from django.template.response import TemplateResponse

from bulkchanges.admin.dashboard import dashboard_context


class PondOpsAdminSite(AdminSite):
    site_header = "PondOps operations console"
    site_title = "PondOps"
    index_title = "Dashboard"

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        """The app list, below the operations dashboard for staff who may view bulk
        changes (``templates/admin/index.html``)."""
        if request.user.has_perm("bulkchanges.view_bulkchange"):
            extra_context = {"dashboard": dashboard_context(), **(extra_context or {})}
        return super().index(request, extra_context)
