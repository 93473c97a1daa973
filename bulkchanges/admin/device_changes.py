"""A bulk change's devices: the DeviceChange list, filtered to one bulk change from its page
(never an inline of thousands of rows), with a confirmed "retry selected failed devices"
action."""

from __future__ import annotations

from collections import defaultdict

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from bulkchanges.admin import display
from bulkchanges.admin.audit import actor
from bulkchanges.admin.confirm import confirm_page
from bulkchanges.admin.filters import BulkChangeFilter
from bulkchanges.admin.history import history_record
from bulkchanges.admin.readonly import ReadOnlyAdmin
from bulkchanges.admin.tenancy import TenantScopedAdmin
from bulkchanges.errors import ApplicationError
from bulkchanges.models import BulkChange, DeviceChange
from bulkchanges.services import bulk_change_retry


@admin.register(DeviceChange)
class DeviceChangeAdmin(TenantScopedAdmin, ReadOnlyAdmin):
    tenant_path = "bulk_change__tenant"
    list_display = (
        "id",
        "bulk_change_link",
        "iccid",
        "msisdn",
        "status_badge",
        "attempts",
        "error",
        "processed_at",
        "log_link",
    )
    list_filter = (BulkChangeFilter, "status")
    search_fields = ("=iccid", "=msisdn")
    search_help_text = "An ICCID or MSISDN (exact)."
    list_per_page = 100
    readonly_fields = [field.name for field in DeviceChange._meta.fields]
    actions = ("retry_failed_action",)

    class Media:
        css = {"all": ("bulkchanges/pondops.css",)}

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bulkchanges.retry_bulkchange")

    @admin.display(description="bulk change", ordering="bulk_change_id")
    def bulk_change_link(self, device_change: DeviceChange) -> SafeString:
        return display.bulk_change_link(device_change.bulk_change_id)

    @admin.display(description="status", ordering="status")
    def status_badge(self, device_change: DeviceChange) -> SafeString:
        return display.status_badge(device_change.status)

    @admin.display(description="last error")
    def error(self, device_change: DeviceChange) -> str:
        return Truncator(device_change.last_error).chars(120) or display.EMPTY

    @admin.display(description="log")
    def log_link(self, device_change: DeviceChange) -> SafeString:
        return format_html(
            '<a href="{}">log</a>',
            display.logs_url(
                bulk_change=device_change.bulk_change_id, device_change=device_change.pk
            ),
        )

    @admin.action(description="Retry selected failed devices", permissions=["retry"])
    def retry_failed_action(
        self, request: HttpRequest, queryset: QuerySet[DeviceChange]
    ) -> HttpResponse | None:
        failed = queryset.filter(status=DeviceChange.Status.ERROR)
        others = queryset.exclude(status=DeviceChange.Status.ERROR).count()
        if request.POST.get("post") != "yes":
            return confirm_page(
                self,
                request,
                title="Retry these failed devices?",
                explanation="Each device in ERROR is queued again with a fresh retry count "
                "and resumes after its last completed step. The retry is logged under your "
                "name."
                + (
                    f" {others} selected devices are not in ERROR and are left alone."
                    if others
                    else ""
                ),
                submit="Yes, retry them",
                action="retry_failed_action",
                back_url=reverse("admin:bulkchanges_devicechange_changelist"),
                device_rows=[
                    {
                        "device_change": device_change,
                        "badge": display.status_badge(device_change.status),
                    }
                    for device_change in queryset.order_by("id")[:500]
                ],
                selected_ids=list(queryset.values_list("pk", flat=True)),
            )
        by_bulk_change: dict[int, list[int]] = defaultdict(list)
        for pk, bulk_change_id in failed.values_list("pk", "bulk_change_id"):
            by_bulk_change[bulk_change_id].append(pk)
        if not by_bulk_change:
            messages.warning(request, "None of the selected devices is in ERROR; nothing retried.")
        for bulk_change in BulkChange.objects.filter(pk__in=by_bulk_change).order_by("pk"):
            try:
                queued = bulk_change_retry(
                    bulk_change=bulk_change,
                    actor=actor(request),
                    device_change_ids=by_bulk_change[bulk_change.pk],
                )
            except ApplicationError as error:
                messages.error(request, f"Bulk change {bulk_change.pk}: {error}")
                continue
            history_record(request, bulk_change, f"Retried: {len(queued)} failed devices re-queued")
            messages.success(
                request, f"Bulk change {bulk_change.pk}: {len(queued)} failed devices re-queued."
            )
        if others:
            messages.info(request, f"{others} selected devices were not in ERROR; left alone.")
        return None
