"""The audit log (BulkChangeLog): append-only, so nobody can add, change or delete a row here;
request and response text are shown redacted and readable. The list names each row's device by
its ICCID and its owner — a bulk change, or a preview's carrier reads — and is filtered by bulk
change, device, carrier, outcome and entry, searched by ICCID prefix."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from bulkchanges.admin import display
from bulkchanges.admin.filters import (
    BulkChangeFilter,
    CarrierFilter,
    DeviceChangeFilter,
    IdentifierPrefixSearch,
)
from bulkchanges.admin.readonly import ReadOnlyAdmin
from bulkchanges.admin.tenancy import TenantScopedAdmin, request_tenant_ids
from bulkchanges.models import BulkChangeLog


class LogCarrierFilter(CarrierFilter):
    """A row's carrier is its bulk change's, or its preview's."""

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[BulkChangeLog]
    ) -> QuerySet[BulkChangeLog]:
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(Q(bulk_change__integration=value) | Q(preview__integration=value))


class OutcomeFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "has_errors"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("1", "with errors"), ("0", "without errors")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[BulkChangeLog]
    ) -> QuerySet[BulkChangeLog]:
        if self.value() in ("1", "0"):
            return queryset.filter(has_errors=self.value() == "1")
        return queryset


class EntryFilter(admin.AllValuesFieldListFilter):
    """The entries (``log_entry_description``) that occur, titled as the list's column."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title = "entry"


@admin.register(BulkChangeLog)
class BulkChangeLogAdmin(IdentifierPrefixSearch, TenantScopedAdmin, ReadOnlyAdmin):
    tenant_path = "bulk_change__tenant"  # or the preview's tenant: get_queryset
    list_display = ("time", "device", "entry", "outcome", "process_by_short")
    list_display_links = ("time",)
    list_filter = (
        BulkChangeFilter,
        DeviceChangeFilter,
        LogCarrierFilter,
        OutcomeFilter,
        ("log_entry_description", EntryFilter),
    )
    list_select_related = ("device_change", "bulk_change", "preview")
    prefix_search_fields = ("device_change__iccid",)
    search_help_text = "The start of a device's ICCID (digits; spaces are ignored)."
    fields = (
        "device",
        "log_entry_description",
        "time",
        "process_by",
        "request_id",
        "response_status",
        "in_flight",
        "has_errors",
        "error_text",
        "request_readable",
        "response_readable",
    )
    readonly_fields = fields
    list_per_page = 50

    class Media:
        css = {"all": ("bulkchanges/pondops.css",)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[BulkChangeLog]:
        """Rows of the operator's tenants' bulk changes and previews (a preview's rows have no
        bulk change, so ``tenant_path`` alone would hide them)."""
        rows = admin.ModelAdmin.get_queryset(self, request)  # scoped here, not by tenant_path
        tenant_ids = request_tenant_ids(request)
        if tenant_ids is None:
            return rows
        return rows.filter(
            Q(bulk_change__tenant__in=tenant_ids) | Q(preview__tenant__in=tenant_ids)
        )

    @admin.display(description="time", ordering="processed_at")
    def time(self, row: BulkChangeLog) -> SafeString | str:
        return display.timestamp(row.processed_at)

    @admin.display(description="entry", ordering="log_entry_description")
    def entry(self, row: BulkChangeLog) -> str:
        return row.log_entry_description

    @admin.display(description="device · bulk change", ordering="device_change__iccid")
    def device(self, row: BulkChangeLog) -> SafeString:
        """The device's ICCID (to its page) over the row's bulk change or preview."""
        if row.device_change is None:
            device: SafeString | str = display.EMPTY
        else:
            url = reverse("admin:bulkchanges_devicechange_change", args=[row.device_change_id])
            device = format_html(
                '<a href="{}" class="pondops-iccid">{}</a>', url, row.device_change.iccid
            )
        return format_html('{}<span class="pondops-quiet">{}</span>', device, self.owner(row))

    @admin.display(description="bulk change", ordering="bulk_change_id")
    def owner(self, row: BulkChangeLog) -> SafeString | str:
        """The bulk change, or the preview whose carrier read this row records."""
        if row.bulk_change_id is not None:
            return format_html(
                'bulk change <a href="{}">{}</a>',
                display.bulk_change_url(row.bulk_change_id),
                row.bulk_change_id,
            )
        try:
            url = reverse("admin:bulkchanges_preview_change", args=[row.preview_id])
        except NoReverseMatch:  # no preview pages on this site
            return f"preview {row.preview_id}"
        return format_html('<a href="{}">preview {}</a>', url, row.preview_id)

    @admin.display(description="response status", ordering="response_status")
    def answer(self, row: BulkChangeLog) -> str:
        """The answer's status; a call whose row was written but whose answer is not (yet) in
        says so."""
        if row.in_flight:
            return "awaiting answer"
        return display.EMPTY if row.response_status is None else str(row.response_status)

    @admin.display(description="outcome", ordering="has_errors")
    def outcome(self, row: BulkChangeLog) -> SafeString:
        """The answer's HTTP status (or that none came yet), then the error in short — all of
        it on hover and on the row's page — or, for a row without one, its note when short
        (an outcome such as "PROCESSED: status set")."""
        answer = self.answer(row)
        status = (
            format_html('<span class="pondops-http">{}</span> ', answer)
            if answer != display.EMPTY
            else ""
        )
        if row.has_errors:
            text = (
                display.readable(row.error_text).strip()
                or display.readable(row.response_text).strip()
                or "error"
            )
            return format_html(
                '{}<span class="pondops-log-error" title="{}">{}</span>',
                status,
                text,
                Truncator(text).chars(100),
            )
        if not row.request_text and row.response_text and "\n" not in row.response_text.strip():
            text = display.readable(row.response_text).strip()
            return format_html(
                '{}<span title="{}">{}</span>', status, text, Truncator(text).chars(80)
            )
        return format_html("{}", status or display.EMPTY)

    @admin.display(description="by", ordering="process_by")
    def process_by_short(self, row: BulkChangeLog) -> SafeString:
        return display.process_by(Truncator(row.process_by).chars(60))

    @admin.display(description="request")
    def request_readable(self, row: BulkChangeLog) -> SafeString:
        return format_html('<pre class="pondops-pre">{}</pre>', display.readable(row.request_text))

    @admin.display(description="response")
    def response_readable(self, row: BulkChangeLog) -> SafeString:
        return format_html('<pre class="pondops-pre">{}</pre>', display.readable(row.response_text))
