"""List filters and searches shared by the console's lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from integrations.base import Integration, carrier_integrations

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


class IdBoxFilter(IdFilter):
    """An :class:`IdFilter` whose sidebar entry is a small form: type an id, press Enter — the
    list's other filters and search are kept (hidden fields)."""

    template = "bulkchanges/admin/id_filter.html"

    def has_output(self) -> bool:
        return True

    def choices(self, changelist: Any) -> Any:
        kept = [
            (name, value)
            for name, value in changelist.get_filters_params().items()
            if name != self.parameter_name
        ]
        if changelist.query:
            kept.append(("q", changelist.query))
        yield {
            "box": True,
            "parameter_name": self.parameter_name,
            "value": self.value() or "",
            "active": f"{self.label} {self.value()}" if self.value() else "",
            "kept": [(name, value) for name, values in kept for value in _as_list(values)],
            "all_url": changelist.get_query_string(remove=[self.parameter_name]),
        }


def _as_list(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list | tuple) else [str(value)]


class BulkChangeFilter(IdBoxFilter):
    title = "bulk change"
    parameter_name = "bulk_change"
    field = "bulk_change_id"
    label = "Bulk change"


class DeviceChangeFilter(IdFilter):
    title = "device change"
    parameter_name = "device_change"
    field = "device_change_id"
    label = "Device change"


class CarrierFilter(admin.SimpleListFilter):
    """The carriers that process bulk changes — never Rev.io, which is billing — by the
    integration at ``field`` (a bulk change's, seen from its devices or its audit rows)."""

    title = "carrier"
    parameter_name = "carrier"
    field = "integration"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, Integration(value).label) for value in carrier_integrations()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{self.field: value}) if value else queryset


def identifier_prefix_q(term: str, *, fields: Sequence[str]) -> Q | None:
    """Rows whose identifier in any of ``fields`` (ICCID, MSISDN, EID: digits) starts with
    ``term``, whitespace ignored — so a pasted "8901 2600 …" or the first digits of a batch
    find their devices. None for a term that holds anything but digits (it matches nothing).
    Case-sensitive ``startswith``: identifiers are digits, and PostgreSQL can then answer it
    from the column's index when its collation allows."""
    digits = "".join(term.split())
    if not digits.isdigit():
        return None
    query = Q()
    for name in fields:
        query |= Q(**{f"{name}__startswith": digits})
    return query


class IdentifierPrefixSearch(admin.ModelAdmin):
    """The list's search box finds rows by the start of an identifier (``identifier_prefix_q``
    over ``prefix_search_fields``); a term that is no number finds nothing rather than
    scanning every text column."""

    prefix_search_fields: tuple[str, ...] = ()

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        # Non-empty so the admin shows its search box; the search itself is ours, below.
        return self.prefix_search_fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        if not search_term.strip():
            return queryset, False
        query = identifier_prefix_q(search_term, fields=self.prefix_search_fields)
        return (queryset.none() if query is None else queryset.filter(query)), False
