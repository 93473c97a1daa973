"""The operations console's admin site: Django's admin under PondOps' name, with the
operations dashboard on its index.

It is the project's default admin site (``bulkchanges.apps.PondOpsAdminConfig`` stands in
INSTALLED_APPS for ``django.contrib.admin``), so ``admin.site``, ``@admin.register`` and the
admin's autodiscovery all mean this site, and ``pondops/urls.py`` mounts it at ``/admin/``.

Every model admin registered here is scoped to the operator's tenants or fails closed to
superusers only (``bulkchanges.admin.tenancy``).
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin import AdminSite, ModelAdmin
from django.http import HttpRequest
from django.template.response import TemplateResponse

from bulkchanges.admin import tenancy
from bulkchanges.admin.dashboard import dashboard_context
from bulkchanges.admin.gates import awaiting_my_approval_tile

NO_TENANT_NOTICE = (
    "You belong to no tenant yet, so the console shows you no tenant's bulk changes, devices "
    "or credentials. Ask a superuser of this console to add you to your tenants (on your "
    "user's page, under Operator memberships)."
)


class PondOpsAdminSite(AdminSite):
    site_header = "PondOps operations console"
    site_title = "PondOps"
    index_title = "Dashboard"

    def register(
        self, model_or_iterable: Any, admin_class: type[ModelAdmin] | None = None, **options: Any
    ) -> None:
        """An admin that does not say how its rows are scoped to tenants is superuser-only."""
        super().register(
            model_or_iterable, tenancy.fail_closed(admin_class or ModelAdmin), **options
        )

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        """The app list, below the operations dashboard for staff who may view bulk
        changes (``pondops/templates/admin/index.html``) — counted within their tenants — and a
        notice for staff who belong to no tenant."""
        tenant_ids = tenancy.request_tenant_ids(request)
        context: dict[str, Any] = {}
        if tenant_ids is not None and not tenant_ids:
            context["tenancy_notice"] = NO_TENANT_NOTICE
        if request.user.has_perm("bulkchanges.view_bulkchange"):
            context["dashboard"] = dashboard_context(
                tenant_ids=tenant_ids, show_dead_letters=tenancy.is_superuser(request)
            )
            context["awaiting_my_approval"] = awaiting_my_approval_tile(request)
        return super().index(request, {**context, **(extra_context or {})})
