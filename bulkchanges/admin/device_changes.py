"""A bulk change's devices: the DeviceChange list (filtered to one bulk change from its page —
never an inline of thousands of rows — or by status and carrier, searched by ICCID or MSISDN
prefix) with a confirmed "retry selected failed devices" action, and each device's own page:
who it is, what was asked, how it ended, every attempt and its audit trail, with Retry and
Resubmit buttons."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from bulkchanges.admin import display
from bulkchanges.admin.audit import actor
from bulkchanges.admin.confirm import confirm_page
from bulkchanges.admin.filters import BulkChangeFilter, CarrierFilter, IdentifierPrefixSearch
from bulkchanges.admin.history import history_record
from bulkchanges.admin.readonly import ReadOnlyAdmin
from bulkchanges.admin.tenancy import TenantScopedAdmin, is_superuser
from bulkchanges.errors import ApplicationError
from bulkchanges.models import BulkChange, DeviceChange
from bulkchanges.selectors import RESUBMITTABLE, device_change_trail
from bulkchanges.services import bulk_change_retry

PAGE_TEMPLATE = "admin/bulkchanges/devicechange/page.html"
TRAIL_SHOWN = 200  # the page's trail; the audit log list, filtered to the device, has the rest


class DeviceCarrierFilter(CarrierFilter):
    field = "bulk_change__integration"


@admin.register(DeviceChange)
class DeviceChangeAdmin(IdentifierPrefixSearch, TenantScopedAdmin, ReadOnlyAdmin):
    tenant_path = "bulk_change__tenant"
    list_display = ("device_link", "bulk_change_link", "outcome", "processed")
    list_display_links = None
    list_filter = (BulkChangeFilter, "status", DeviceCarrierFilter)
    prefix_search_fields = ("iccid", "msisdn")
    search_help_text = "The start of an ICCID or MSISDN (digits; spaces are ignored)."
    list_per_page = 50
    list_select_related = ("bulk_change",)
    actions = ("retry_failed_action",)

    class Media:
        css = {"all": ("bulkchanges/pondops.css",)}

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bulkchanges.retry_bulkchange")

    # --- The list --------------------------------------------------------------------------

    @admin.display(description="device (ICCID)", ordering="iccid")
    def device_link(self, device_change: DeviceChange) -> SafeString:
        """The ICCID, linking to the device's page, the MSISDN below it when there is one."""
        url = reverse("admin:bulkchanges_devicechange_change", args=[device_change.pk])
        msisdn = (
            format_html('<span class="pondops-quiet">MSISDN {}</span>', device_change.msisdn)
            if device_change.msisdn
            else ""
        )
        return format_html(
            '<a href="{}" class="pondops-iccid">{}</a>{}', url, device_change.iccid, msisdn
        )

    @admin.display(description="bulk change", ordering="bulk_change_id")
    def bulk_change_link(self, device_change: DeviceChange) -> SafeString:
        return format_html(
            '{}<span class="pondops-quiet">{}</span>',
            display.bulk_change_link(device_change.bulk_change_id),
            device_change.bulk_change.integration,
        )

    @admin.display(description="outcome", ordering="status")
    def outcome(self, device_change: DeviceChange) -> SafeString:
        """The status badge, the retry count when there were retries, and the last error in
        short (all of it on hover and on the device's page)."""
        retries = (
            format_html(
                ' <span class="pondops-retries">{} {}</span>',
                device_change.attempts,
                "retry" if device_change.attempts == 1 else "retries",
            )
            if device_change.attempts
            else ""
        )
        error = (
            format_html(
                '<span class="pondops-list-error" title="{}">{}</span>',
                device_change.last_error,
                Truncator(device_change.last_error).chars(90),
            )
            if device_change.last_error
            else ""
        )
        return format_html("{}{}{}", display.status_badge(device_change.status), retries, error)

    @admin.display(description="processed", ordering="processed_at")
    def processed(self, device_change: DeviceChange) -> SafeString | str:
        return display.timestamp(device_change.processed_at)

    # --- The device's page -----------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/retry/",
                view(self.retry_view),
                name="bulkchanges_devicechange_retry",
            ),
            path(
                "<path:object_id>/resubmit/",
                view(self.resubmit_view),
                name="bulkchanges_devicechange_resubmit",
            ),
            *super().get_urls(),
        ]

    def _get_viewable(self, request: HttpRequest, object_id: str) -> DeviceChange:
        """The device change a page is about, within the operator's tenants: 404 if there is
        none, 403 if the staff member may not view it."""
        device_change = self.get_object(request, unquote(object_id))
        if device_change is None:
            raise Http404(f"device change {object_id!r} does not exist")
        if not self.has_view_permission(request, device_change):
            raise PermissionDenied
        return device_change

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """A designed read-only page in place of the admin's field dump."""
        device_change = self._get_viewable(request, object_id)
        bulk_change = device_change.bulk_change
        trail = list(device_change_trail(device_change_id=device_change.pk)[: TRAIL_SHOWN + 1])
        may_retry = self.has_retry_permission(request)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Device change {device_change.pk}",
            "subtitle": device_change.iccid,
            "device_change": device_change,
            "bulk_change": bulk_change,
            "badge": display.status_badge(device_change.status),
            "facts": display.device_change_facts(device_change),
            "request_lines": display.change_request_in_words(
                device_change.change_request or bulk_change.request or {},
                integration=bulk_change.integration,
            ),
            "attempts": display.device_attempts(trail[:TRAIL_SHOWN]),
            "trail": [display.log_entry(row) for row in trail[:TRAIL_SHOWN]],
            "trail_more": len(trail) > TRAIL_SHOWN,
            "trail_url": display.logs_url(device_change=device_change.pk),
            "can_retry": may_retry and device_change.status == DeviceChange.Status.ERROR,
            "can_resubmit": may_retry
            and DeviceChange.objects.filter(RESUBMITTABLE, pk=device_change.pk).exists(),
            "internals": display.device_change_internals(device_change)
            if is_superuser(request)
            else [],
            **(extra_context or {}),
        }
        return TemplateResponse(request, PAGE_TEMPLATE, context)

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._retry_one(request, object_id, resubmit=False)

    def resubmit_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._retry_one(request, object_id, resubmit=True)

    def _retry_one(self, request: HttpRequest, object_id: str, *, resubmit: bool) -> HttpResponse:
        """GET: the confirmation page; POST: ``bulk_change_retry`` for this one device —
        audited under the staff member's name and recorded in the admin's history."""
        device_change = self._get_viewable(request, object_id)
        if not self.has_retry_permission(request):
            raise PermissionDenied
        page_url = reverse("admin:bulkchanges_devicechange_change", args=[device_change.pk])
        if request.method != "POST":
            return confirm_page(
                self,
                request,
                title=(
                    f"Submit device {device_change.iccid} to the carrier again?"
                    if resubmit
                    else f"Retry device {device_change.iccid}?"
                ),
                explanation=(
                    "The carrier never confirmed this device's request: it is submitted "
                    "again, and the old carrier request id is kept in its audit trail."
                    if resubmit
                    else "The device is queued again with a fresh retry count and resumes "
                    "after its last completed step."
                )
                + " This is logged under your name.",
                submit="Yes, submit it again" if resubmit else "Yes, retry it",
                back_url=page_url,
                device_rows=[
                    {
                        "device_change": device_change,
                        "badge": display.status_badge(device_change.status),
                    }
                ],
            )
        verb = "Resubmitted" if resubmit else "Retried"
        try:
            queued = bulk_change_retry(
                bulk_change=device_change.bulk_change,
                actor=actor(request),
                device_change_ids=[device_change.pk],
                resubmit=resubmit,
            )
        except ApplicationError as error:
            messages.error(request, f"Device {device_change.iccid} was not re-queued: {error}")
            return HttpResponseRedirect(page_url)
        if not queued:
            messages.warning(request, f"Device {device_change.iccid} was not re-queued.")
            return HttpResponseRedirect(page_url)
        note = f"{verb} device {device_change.iccid} (was {device_change.status})"
        history_record(request, [device_change, device_change.bulk_change], note)
        messages.success(request, f"{note}: it is queued again.")
        return HttpResponseRedirect(page_url)

    # --- The list action ---------------------------------------------------------------------

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
            history_record(
                request,
                [bulk_change, *DeviceChange.objects.filter(pk__in=queued)],
                f"Retried: {len(queued)} failed devices re-queued",
            )
            messages.success(
                request, f"Bulk change {bulk_change.pk}: {len(queued)} failed devices re-queued."
            )
        if others:
            messages.info(request, f"{others} selected devices were not in ERROR; left alone.")
        return None
