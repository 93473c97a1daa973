"""List filters shared by the console's lists."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

if TYPE_CHECKING:
    from django_stubs_ext import StrPromise


class ScopedRelatedFilter(admin.RelatedFieldListFilter):
    """A foreign-key filter (``"tenant"``) whose sidebar lists only the rows the operator may
    see of the related model (``TenantScopedAdmin.get_field_queryset``), not every tenant's
    name. Filtering by an id outside them still filters the already scoped list: nothing."""

    def field_choices(
        self, field: Any, request: HttpRequest, model_admin: Any
    ) -> list[tuple[str, str | StrPromise]]:
        queryset = model_admin.get_field_queryset(None, field, request)
        if queryset is None:
            return super().field_choices(field, request, model_admin)
        ordering = self.field_admin_ordering(field, request, model_admin)
        if ordering:
            queryset = queryset.order_by(*ordering)
        return [(str(row.pk), str(row)) for row in queryset]


class IdFilter(admin.SimpleListFilter):
    """Filters by one related object's id given in the URL (``?bulk_change=12``), without a
    sidebar listing every candidate; the sidebar shows the active one with a way back to all."""

    field = ""
    label = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, f"{self.label} {value}")] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(**{self.field: int(value)})


class BulkChangeFilter(IdFilter):
    title = "bulk change"
    parameter_name = "bulk_change"
    field = "bulk_change_id"
    label = "Bulk change"


class DeviceChangeFilter(IdFilter):
    title = "device change"
    parameter_name = "device_change"
    field = "device_change_id"
    label = "Device change"
