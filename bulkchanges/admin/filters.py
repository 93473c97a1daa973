"""List filters shared by the console's lists."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest


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
