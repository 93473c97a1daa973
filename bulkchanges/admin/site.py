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
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.text import capfirst

from bulkchanges.admin import tenancy
from bulkchanges.admin.dashboard import dashboard_context
from bulkchanges.admin.gates import awaiting_my_approval_tile

NO_TENANT_NOTICE = (
    "You belong to no tenant yet, so the console shows you no tenant's bulk changes, devices "
    "or credentials. Ask a superuser of this console to add you to your tenants (on your "
    "user's page, under Operator memberships)."
)


class PlainTitles(ModelAdmin):
    """A list's title in plain words — the model's plural, "Device changes", "Audit log" —
    not Django's "Select device change to change" (or "to view"); a page that passes its own
    ``title`` keeps it."""

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        title = capfirst(str(self.opts.verbose_name_plural))
        return super().changelist_view(request, {"title": title, **(extra_context or {})})


def _with_plain_titles(admin_class: type[ModelAdmin]) -> type[ModelAdmin]:
    if issubclass(admin_class, PlainTitles):
        return admin_class
    return type(
        admin_class.__name__, (PlainTitles, admin_class), {"__module__": admin_class.__module__}
    )


class PondOpsAdminSite(AdminSite):
    site_header = "PondOps operations console"
    site_title = "PondOps"
    index_title = "Dashboard"
    # No "View site" link: the console is the only site PondOps serves (the partner API has
    # no pages of its own but its documentation, linked from nowhere an operator needs).
    site_url = None

    def register(
        self, model_or_iterable: Any, admin_class: type[ModelAdmin] | None = None, **options: Any
    ) -> None:
        """An admin that does not say how its rows are scoped to tenants is superuser-only;
        every list is titled in plain words (:class:`PlainTitles`)."""
        scoped = tenancy.fail_closed(admin_class or ModelAdmin)
        super().register(model_or_iterable, _with_plain_titles(scoped), **options)

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
