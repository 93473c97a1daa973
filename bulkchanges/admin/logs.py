"""The audit log (BulkChangeLog): append-only, so nobody can add, change or delete a row here;
request and response text are shown redacted and readable."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from bulkchanges.admin import display
from bulkchanges.admin.filters import BulkChangeFilter, DeviceChangeFilter
from bulkchanges.admin.readonly import ReadOnlyAdmin
from bulkchanges.admin.tenancy import TenantScopedAdmin
from bulkchanges.models import BulkChangeLog


@admin.register(BulkChangeLog)
class BulkChangeLogAdmin(TenantScopedAdmin, ReadOnlyAdmin):
    tenant_path = "bulk_change__tenant"
    list_display = (
        "id",
        "processed_at",
        "bulk_change_link",
        "device_change_id",
        "log_entry_description",
        "answer",
        "errors",
        "process_by",
    )
    list_filter = (BulkChangeFilter, DeviceChangeFilter, "has_errors", "log_entry_description")
    search_fields = ("=device_change__iccid",)
    search_help_text = "A device's ICCID (exact)."
    fields = (
        "bulk_change",
        "device_change",
        "log_entry_description",
        "processed_at",
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
    list_per_page = 100

    class Media:
        css = {"all": ("bulkchanges/pondops.css",)}

    @admin.display(description="bulk change", ordering="bulk_change_id")
    def bulk_change_link(self, row: BulkChangeLog) -> SafeString | str:
        if row.bulk_change_id is None:
            return f"preview {row.preview_id}"
        return display.bulk_change_link(row.bulk_change_id)

    @admin.display(description="response status", ordering="response_status")
    def answer(self, row: BulkChangeLog) -> str:
        """The answer's status; a call whose row was written but whose answer is not (yet) in
        says so."""
        if row.in_flight:
            return "awaiting answer"
        return display.EMPTY if row.response_status is None else str(row.response_status)

    @admin.display(description="errors", ordering="has_errors")
    def errors(self, row: BulkChangeLog) -> SafeString | str:
        if not row.has_errors:
            return display.EMPTY
        return format_html(
            '<span class="pondops-log-error">{}</span>',
            Truncator(row.error_text or "error").chars(120),
        )

    @admin.display(description="request")
    def request_readable(self, row: BulkChangeLog) -> SafeString:
        return format_html('<pre class="pondops-pre">{}</pre>', display.readable(row.request_text))

    @admin.display(description="response")
    def response_readable(self, row: BulkChangeLog) -> SafeString:
        return format_html('<pre class="pondops-pre">{}</pre>', display.readable(row.response_text))
