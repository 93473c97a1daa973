"""Tenants are a boundary in the console: an operator sees and acts only on the rows of the
tenants they belong to (``OperatorMembership``); superusers see every tenant.

One mechanism serves every admin. ``TenantScopedAdmin`` scopes a model admin's queryset by
``tenant_path`` (the ORM path from its model to ``Tenant``), which Django then uses for the
list, every object lookup (change, history and delete pages, the custom views and the list
actions: an out-of-tenant id is the same 404 as a missing one), the foreign-key choices of its
forms (any foreign key to a model whose admin is scoped) and its related list filters. An admin
whose rows belong to no tenant is either ``ReferenceDataAdmin`` (shared reference data:
read-only for non-superusers) or ``SuperuserOnlyAdmin`` (rows that cross tenants: users,
tokens, task arguments, the dead-letter queue).

The site fails closed: ``PondOpsAdminSite.register`` makes any admin that is none of the three
superuser-only (``fail_closed``), so a model admin added without scoping — ours or a
library's — shows nothing to a tenant's operator until it says how it is scoped.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse

from bulkchanges.models import Tenant
from bulkchanges.selectors import operator_tenant_ids

_CACHE_ATTRIBUTE = "_pondops_tenant_ids"


def request_tenant_ids(request: HttpRequest) -> frozenset[int] | None:
    """``operator_tenant_ids`` for the request's user, read once per request (every scoped
    queryset, choice and filter of a page asks)."""
    if not hasattr(request, _CACHE_ATTRIBUTE):
        setattr(request, _CACHE_ATTRIBUTE, operator_tenant_ids(user=request.user))
    tenant_ids: frozenset[int] | None = getattr(request, _CACHE_ATTRIBUTE)
    return tenant_ids


def operator_tenants(request: HttpRequest) -> QuerySet[Tenant]:
    """The tenants the request's user operates, by name (every tenant for a superuser)."""
    return tenant_scope(
        Tenant.objects.order_by("name"), tenant_path="pk", tenant_ids=request_tenant_ids(request)
    )


def tenant_scope(
    queryset: QuerySet[Any], *, tenant_path: str, tenant_ids: frozenset[int] | None
) -> QuerySet[Any]:
    """``queryset`` narrowed to rows whose ``tenant_path`` is one of ``tenant_ids`` (None: all
    tenants, unchanged)."""
    if tenant_ids is None:
        return queryset
    return queryset.filter(**{f"{tenant_path}__in": tenant_ids})


def is_superuser(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_superuser)


class TenantScopedAdmin(admin.ModelAdmin):
    """A model admin whose rows belong to a tenant through ``tenant_path`` ("tenant",
    "bulk_change__tenant", "integration_authentication__tenant", "pk" for Tenant itself)."""

    tenant_path = "tenant"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return tenant_scope(
            super().get_queryset(request),
            tenant_path=self.tenant_path,
            tenant_ids=request_tenant_ids(request),
        )

    def get_field_queryset(self, db: Any, db_field: Any, request: HttpRequest) -> Any:
        """Foreign-key (and many-to-many) choices, raw-id lookups included: a related model
        whose admin is scoped offers only the operator's tenants' rows."""
        queryset = super().get_field_queryset(db, db_field, request)
        related = db_field.remote_field.model
        path = scoped_tenant_path(self.admin_site, related)
        if path is None:
            return queryset
        if queryset is None:
            queryset = related._default_manager.using(db).all()
        return tenant_scope(queryset, tenant_path=path, tenant_ids=request_tenant_ids(request))

    def get_list_filter(self, request: HttpRequest) -> Any:
        """A list filter on a foreign key to a scoped model (``"tenant"``) lists only the
        operator's rows of it, not every tenant's name."""
        from bulkchanges.admin.filters import ScopedRelatedFilter

        scoped = []
        for entry in super().get_list_filter(request):
            if isinstance(entry, str) and self._is_scoped_relation(entry):
                entry = (entry, ScopedRelatedFilter)
            scoped.append(entry)
        return scoped

    def _is_scoped_relation(self, name: str) -> bool:
        if "__" in name:
            return False
        try:
            field = self.model._meta.get_field(name)
        except Exception:  # a filter on something other than a field: left to Django
            return False
        related = getattr(field, "related_model", None)
        if not field.is_relation or not isinstance(related, type):
            return False
        return scoped_tenant_path(self.admin_site, related) is not None

    # An object outside the operator's tenants is the same 404 as one that does not exist —
    # Django's own pages answer a missing object with a redirect and a message instead.

    def _object_or_404(self, request: HttpRequest, object_id: str) -> None:
        if self.get_object(request, unquote(object_id)) is None:
            raise Http404(f"{self.opts.verbose_name} {object_id!r} does not exist")

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        self._object_or_404(request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self._object_or_404(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self._object_or_404(request, object_id)
        return super().delete_view(request, object_id, extra_context)


class ReferenceDataAdmin(admin.ModelAdmin):
    """Rows shared by every tenant (a carrier's device statuses): everyone with the view
    permission reads them; only superusers add, change or delete."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return is_superuser(request) and super().has_add_permission(request, *args)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_superuser(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_superuser(request) and super().has_delete_permission(request, obj)


class SuperuserOnlyAdmin(ReferenceDataAdmin):
    """Rows that cross tenants: only superusers see them at all."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_superuser(request) and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_superuser(request) and super().has_view_permission(request, obj)


TENANCY_AWARE = (TenantScopedAdmin, ReferenceDataAdmin)


def fail_closed(admin_class: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    """``admin_class`` itself when it says how its rows are scoped, else a superuser-only
    subclass of it."""
    if issubclass(admin_class, TENANCY_AWARE):
        return admin_class
    return type(
        f"SuperuserOnly{admin_class.__name__}",
        (SuperuserOnlyAdmin, admin_class),
        {"__module__": admin_class.__module__},
    )


def scoped_tenant_path(site: admin.AdminSite, model: type[Model]) -> str | None:
    """The tenant path of ``model``'s admin on ``site``, or None when its rows are not
    scoped (no admin, reference data, superuser-only)."""
    if not site.is_registered(model):
        return None
    model_admin = site.get_model_admin(model)
    return model_admin.tenant_path if isinstance(model_admin, TenantScopedAdmin) else None
