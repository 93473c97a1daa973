"""Inbound carrier callbacks (CarrierCallback): written only by the receiver, so read-only
here. The unmatched ones — authenticated, but naming no request of ours — are what staff look
at: another system on the same carrier account, or a request we lost track of."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from bulkchanges.admin import display
from bulkchanges.admin.readonly import ReadOnlyAdmin
from bulkchanges.admin.tenancy import TenantScopedAdmin
from bulkchanges.models import CarrierCallback
from integrations.base import CallbackAuth, Integration, carrier_integrations, processor_class


class MatchedFilter(admin.SimpleListFilter):
    title = "matched"
    parameter_name = "matched"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "matched a device change"), ("no", "unmatched")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[CarrierCallback]
    ) -> QuerySet[CarrierCallback]:
        if self.value() == "yes":
            return queryset.filter(device_change__isnull=False)
        if self.value() == "no":
            return queryset.filter(device_change__isnull=True)
        return queryset


class CallbackCarrierFilter(admin.SimpleListFilter):
    """Only the carriers that send callbacks."""

    title = "carrier"
    parameter_name = "integration"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            (value, label)
            for value, label in Integration.choices
            if value in carrier_integrations()
            and processor_class(value).callback_auth is not CallbackAuth.NONE
        ]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[CarrierCallback]
    ) -> QuerySet[CarrierCallback]:
        return queryset.filter(integration=self.value()) if self.value() else queryset


@admin.register(CarrierCallback)
class CarrierCallbackAdmin(TenantScopedAdmin, ReadOnlyAdmin):
    # A callback, matched or not, belongs to the tenant of the credentials it authenticated as.
    tenant_path = "integration_authentication__tenant"
    list_display = (
        "request_id",
        "received",
        "integration",
        "outcome",
        "device_change_link",
        "copies",
    )
    list_display_links = ("request_id",)
    list_filter = (MatchedFilter, CallbackCarrierFilter, "outcome")
    list_select_related = ("device_change",)
    search_fields = ("=request_id", "=device_id")
    search_help_text = "A carrier request id or device identifier (exact)."
    fields = (
        "integration",
        "integration_authentication",
        "request_id",
        "device_kind",
        "device_id",
        "outcome",
        "reason",
        "device_change",
        "received",
        "last_received",
        "copies",
        "method",
        "path",
        "body",
    )
    readonly_fields = fields

    received = display.timestamp_column("received_at", "received")
    last_received = display.timestamp_column("last_received_at", "last received")

    @admin.display(description="device", ordering="device_change_id")
    def device_change_link(self, callback: CarrierCallback) -> SafeString | str:
        if callback.device_change_id is None:
            return format_html('<span class="pondops-log-error">{}</span>', "unmatched")
        url = reverse("admin:bulkchanges_devicechange_change", args=[callback.device_change_id])
        return format_html('<a href="{}">{}</a>', url, callback.device_change_id)
