"""django-filter FilterSets for bulk changes, their devices and their logs. Plain FilterSets over
querysets, so the admin console can share them with the API (NetBox's pattern)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.core.validators import RegexValidator
from django.db.models import QuerySet
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field

from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from integrations.base import Integration

MAX_ID = 2**63 - 1  # 64-bit ids; larger numbers never reach the database


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class IdFilter(django_filters.Filter):
    """A row id: a whole number from 1 to 2**63-1."""

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class StrictBooleanField(forms.Field):
    TRUE, FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        word = str(value).strip().lower()
        if word in self.TRUE | self.FALSE:
            return word in self.TRUE
        raise forms.ValidationError("must be true or false", code="invalid")


@extend_schema_field({"type": "boolean"})
class StrictBooleanFilter(django_filters.BooleanFilter):
    """true/false (or 1/0); anything else is a 400 rather than "no filter"."""

    field_class = StrictBooleanField


ICCID_FRAGMENT = r"^[0-9\s]*[0-9][0-9\s]*$"


ICCID_FRAGMENT_SCHEMA = {
    "type": "string",
    "pattern": ICCID_FRAGMENT,
    "maxLength": 64,
    "description": "All or part of an ICCID (whitespace ignored).",
}


@extend_schema_field(ICCID_FRAGMENT_SCHEMA)
class IccidFilter(django_filters.CharFilter):
    """All or part of an ICCID: digits (whitespace ignored)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault(
            "validators", [RegexValidator(ICCID_FRAGMENT, "must be digits (part of an ICCID)")]
        )
        super().__init__(*args, **kwargs)


class UtcIsoDateTimeField(IsoDateTimeField):
    """ISO 8601, converted to UTC here: PostgreSQL refuses offsets beyond ±15:59 and a date at
    the edge of the calendar may not convert at all (a 400, not a database error)."""

    def to_python(self, value: Any) -> datetime | None:
        parsed: datetime | None = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            raise forms.ValidationError("date-time out of range", code="invalid") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class StrictFilterSet(django_filters.FilterSet):
    """A parameter that is present must have a value: ``?status=`` is a 400, as the API's
    schema says, not a silent "no filter"."""

    def is_valid(self) -> bool:
        valid = super().is_valid()
        getlist = getattr(self.data, "getlist", None)
        for name, declared in self.filters.items():
            if name not in self.data:
                continue
            values = getlist(name) if getlist else [self.data.get(name)]
            if isinstance(declared, django_filters.filters.BaseCSVFilter):  # ?ordering=a,b
                values = [item for value in values for item in str(value).split(",")]
            if any(str(value).strip() == "" for value in values):
                self.form.add_error(name, "must not be empty")
                valid = False
        return valid


class BulkChangeFilter(StrictFilterSet):
    status = django_filters.MultipleChoiceFilter(
        choices=BulkChange.Status.choices, help_text="One or more statuses (repeat the parameter)."
    )
    integration = django_filters.ChoiceFilter(choices=Integration.choices)
    created_after = UtcDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="ISO 8601; inclusive."
    )
    created_before = UtcDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="ISO 8601; exclusive."
    )
    ordering = django_filters.OrderingFilter(
        fields=(("id", "id"), ("created_at", "created_at"), ("processed_at", "processed_at")),
        help_text="id, created_at or processed_at; prefix with - for descending (default -id).",
    )

    class Meta:
        model = BulkChange
        fields = ("status", "integration", "created_after", "created_before")


class DeviceChangeFilter(StrictFilterSet):
    status = django_filters.MultipleChoiceFilter(
        choices=DeviceChange.Status.choices,
        help_text="One or more statuses (repeat the parameter).",
    )
    iccid = IccidFilter(
        method="filter_iccid", help_text="All or part of an ICCID (whitespace ignored)."
    )

    class Meta:
        model = DeviceChange
        fields = ("status", "iccid")

    def filter_iccid(
        self, queryset: QuerySet[DeviceChange], name: str, value: str
    ) -> QuerySet[DeviceChange]:
        digits = "".join(value.split())
        return queryset.filter(iccid__contains=digits) if digits else queryset


class BulkChangeLogFilter(StrictFilterSet):
    has_errors = StrictBooleanFilter(help_text="Only rows with (true) or without (false) errors.")
    device_change = IdFilter(field_name="device_change_id", help_text="A device change id.")

    class Meta:
        model = BulkChangeLog
        fields = ("has_errors", "device_change")
