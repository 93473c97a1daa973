"""The bulk change console: the list (badges, progress from one aggregate query per page,
refreshed in place) and the bulk change page — its summary first (status in words, timings
that a retry never rewrites, counts, throughput and ETA), then its failures grouped by message
(each group retried on its own), its devices (25 a page, by status, with their attempts) and
its latest log rows, every panel refreshed live while it runs — with the routes of every bulk
change view, the live endpoints of the list and the dashboard among them. The retry / cancel /
export actions come from ``bulk_change_actions``, the new-bulk-change views from ``creation``.
Each view parses input, calls one service or selector, and renders."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from bulkchanges.admin import display, filters, tenancy
from bulkchanges.admin.bulk_change_actions import BulkChangeActions
from bulkchanges.admin.creation import BulkChangeCreation
from bulkchanges.admin.dashboard import dashboard_context
from bulkchanges.admin.gates import BulkChangeGates, awaiting_my_approval_tile
from bulkchanges.admin.readonly import ReadOnlyAdmin
from bulkchanges.admin.tenancy import TenantScopedAdmin
from bulkchanges.console_selectors import (
    LOG_LATEST,
    RunFigures,
    bulk_change_devices,
    bulk_change_failure_groups,
    bulk_change_log_latest,
    bulk_change_run_figures,
    device_changes_attempts,
)
from bulkchanges.models import BulkChange, DeviceChange
from bulkchanges.selectors import (
    Progress,
    bulk_change_progress,
    bulk_change_progress_map,
    bulk_change_resubmittable_count,
    bulk_change_search,
)
from bulkchanges.services.logs import OPERATOR_RETRY

DEVICES_PAGE_SIZE = 25
FRAGMENTS = "admin/bulkchanges/bulkchange/"
# The bulk change page's live panels: element id → the template that renders its content.
LIVE_FRAGMENTS = {
    "pondops-summary": FRAGMENTS + "live_summary.html",
    "pondops-failures": FRAGMENTS + "live_failures.html",
    "pondops-devices": FRAGMENTS + "live_devices.html",
    "pondops-log": FRAGMENTS + "live_log.html",
}
# The list's columns its live refresh rewrites in place.
LIVE_LIST_FIELDS = ("status_badge", "progress", "errors", "timing")
DASHBOARD_BODY_TEMPLATE = "bulkchanges/admin/dashboard_body.html"


def _ids(text: str) -> list[int]:
    """``"3,2,x,1"`` → ``[3, 2, 1]``: what is no positive number is ignored."""
    return [int(part) for part in text.split(",") if part.strip().isdigit() and int(part) > 0]


class BulkChangeChangeList(ChangeList):
    """Attaches each listed bulk change's device counts, fetched for the whole page in one
    aggregate query."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        progress = bulk_change_progress_map(
            bulk_change_ids=[bulk_change.pk for bulk_change in self.result_list]
        )
        for bulk_change in self.result_list:
            bulk_change._progress = progress[bulk_change.pk]


def _progress(bulk_change: BulkChange) -> Progress:
    listed: Progress | None = getattr(bulk_change, "_progress", None)
    return listed or bulk_change_progress(bulk_change_id=bulk_change.pk)


@admin.register(BulkChange)
class BulkChangeAdmin(
    TenantScopedAdmin, BulkChangeCreation, BulkChangeActions, BulkChangeGates, ReadOnlyAdmin
):
    tenant_path = "tenant"
    # Compact enough for a laptop screen with the admin's navigation and filter sidebars open:
    # carrier, type and target share one column, age and time to complete another.
    list_display = (
        "id",
        "tenant",
        "change",
        "status_badge",
        "progress",
        "errors",
        "created_by",
        "timing",
    )
    list_display_links = ("id",)
    list_filter = ("status", filters.CarrierFilter, "tenant", "created_at")
    search_fields = ("=id",)  # shows the search box; get_search_results does the searching
    search_help_text = "A bulk change id, or the ICCID or MSISDN of any of its devices."
    list_select_related = ("tenant",)
    list_per_page = 50
    ordering = ("-id",)
    actions = ("retry_failed_action", "cancel_action", "export_action")  # BulkChangeActions
    change_form_template = "admin/bulkchanges/bulkchange/change_form.html"
    change_list_template = "admin/bulkchanges/bulkchange/change_list.html"
    readonly_fields = [field.name for field in BulkChange._meta.fields]

    class Media:
        css = {"all": ("bulkchanges/pondops.css",)}

    # --- The list ------------------------------------------------------------------------

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return BulkChangeChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[BulkChange], search_term: str
    ) -> tuple[QuerySet[BulkChange], bool]:
        if not search_term.strip():
            return queryset, False
        return bulk_change_search(queryset=queryset, term=search_term), False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {
            "has_create_permission": self.has_create_permission(request),
            "title": "Bulk changes",
            "live_url": reverse("admin:bulkchanges_bulkchange_live"),
        }
        return super().changelist_view(request, {**context, **(extra_context or {})})

    @admin.display(description="change", ordering="integration")
    def change(self, bulk_change: BulkChange) -> SafeString:
        return format_html(
            '<span class="pondops-change">{} → {}</span><span class="pondops-quiet">{}</span>',
            bulk_change.integration,
            bulk_change.target_status or display.EMPTY,
            bulk_change.get_change_request_type_display(),
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, bulk_change: BulkChange) -> SafeString:
        return display.status_badge(bulk_change.status)

    @admin.display(description="progress")
    def progress(self, bulk_change: BulkChange) -> SafeString:
        return display.progress_bar(_progress(bulk_change), compact=True)

    @admin.display(description="errors")
    def errors(self, bulk_change: BulkChange) -> SafeString | str:
        count = _progress(bulk_change).failed
        if not count:
            return "0"
        return format_html(
            '<a class="pondops-errors" href="{}">{}</a>',
            display.device_changes_url(bulk_change.pk, status__exact="ERROR"),
            count,
        )

    @admin.display(description="age · took", ordering="created_at")
    def timing(self, bulk_change: BulkChange) -> SafeString:
        """Age, and below it the time to complete (or how long it has been running)."""
        took = display.time_to_complete(bulk_change)
        return format_html(
            '{}<span class="pondops-quiet">{}</span>',
            display.age(bulk_change.created_at),
            f"took {took}" if bulk_change.processed_at else took,
        )

    # --- The bulk change page ------------------------------------------------------------

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        bulk_change = self.get_object(request, object_id)
        if bulk_change is None or not self.has_view_permission(request, bulk_change):
            return super().change_view(request, object_id, form_url, extra_context)
        context = {
            **self._live_context(request, bulk_change),
            "request_lines": display.request_in_words(bulk_change),
            "credentials": bulk_change.integration_authentication,
            "live_url": reverse("admin:bulkchanges_bulkchange_progress", args=[bulk_change.pk]),
            # The model's str() carries the status at load time; the live part shows it.
            "title": f"Bulk change {bulk_change.pk}",
            "subtitle": f"{bulk_change.integration} devices to "
            f"{bulk_change.target_status or display.EMPTY}, created by {bulk_change.created_by}",
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)

    def _live_context(self, request: HttpRequest, bulk_change: BulkChange) -> dict[str, Any]:
        """Everything the page's live panels show (summary, failures, devices, log): rendered
        into the page, and again by ``progress_view`` for each refresh."""
        progress = bulk_change_progress(bulk_change_id=bulk_change.pk)
        figures = bulk_change_run_figures(bulk_change=bulk_change, progress=progress)
        may_retry = self.has_retry_permission(request) and bulk_change.status not in (
            BulkChange.Status.CANCELLED,
            BulkChange.Status.CANCELLING,
        )
        resubmittable = bulk_change_resubmittable_count(bulk_change_id=bulk_change.pk)
        return {
            "bulk_change": bulk_change,
            "progress": progress,
            "progress_bar": display.progress_bar(progress),
            "status_badge": display.status_badge(bulk_change.status),
            "status_words": display.status_explanation(bulk_change),
            "is_final": bulk_change.status in BulkChange.TERMINAL,
            "timestamps": self._timestamps(bulk_change, figures),
            "retries": [
                {
                    "at": display.timestamp(retry.at),
                    "by": retry.by,
                    "note": retry.note,
                    "resubmit": retry.description != OPERATOR_RETRY,
                }
                for retry in figures.retries
            ],
            "time_to_complete": display.time_to_complete(bulk_change),
            "throughput": display.throughput(figures.devices_per_minute),
            "eta": display.eta(figures.eta_seconds),
            "status_rows": [
                {
                    "status": status,
                    "badge": display.status_badge(status),
                    "count": count,
                    "url": display.device_changes_url(bulk_change.pk, status__exact=status),
                }
                for status, count in progress.counts.items()
                if status != DeviceChange.Status.AWAITING_CARRIER
            ],
            "failures": bulk_change_failure_groups(bulk_change_id=bulk_change.pk),
            "can_retry": may_retry and progress.failed > 0,
            "resubmittable": resubmittable,
            "can_resubmit": may_retry and resubmittable > 0,
            "can_cancel": self.has_cancel_permission(request)
            and bulk_change.status in BulkChange.OPEN
            and bulk_change.status != BulkChange.Status.CANCELLING,
            **self._devices_context(request, bulk_change, progress),
            **self._log_context(bulk_change),
        }

    @staticmethod
    def _timestamps(bulk_change: BulkChange, figures: RunFigures) -> list[tuple[str, Any]]:
        return [
            ("Created", display.timestamp(bulk_change.created_at)),
            ("Queued", display.timestamp(bulk_change.queued_at)),
            ("Started", display.timestamp(figures.started_at)),
            ("First finished", display.timestamp(bulk_change.first_processed_at)),
            ("Last finished", display.timestamp(bulk_change.processed_at)),
        ]

    def _devices_context(
        self, request: HttpRequest, bulk_change: BulkChange, progress: Progress
    ) -> dict[str, Any]:
        status = request.GET.get("devices_status", "")
        if status not in DeviceChange.Status.values:
            status = ""
        paginator = Paginator(
            bulk_change_devices(bulk_change_id=bulk_change.pk, status=status), DEVICES_PAGE_SIZE
        )
        page = paginator.get_page(request.GET.get("devices_page"))
        devices = list(page.object_list)
        attempts = device_changes_attempts(device_changes=devices)
        return {
            "devices_page": page,
            "devices_status": status,
            "devices_filters": [
                {"status": value, "label": label, "count": progress.counts.get(value, 0)}
                for value, label in DeviceChange.Status.choices
                if progress.counts.get(value, 0)
            ],
            "device_rows": [
                {
                    "device_change": device_change,
                    "badge": display.status_badge(device_change.status),
                    "attempts": attempts[device_change.pk],
                    "finished": display.timestamp(device_change.processed_at),
                }
                for device_change in devices
            ],
            "devices_url": display.device_changes_url(bulk_change.pk),
        }

    @staticmethod
    def _log_context(bulk_change: BulkChange) -> dict[str, Any]:
        rows = bulk_change_log_latest(bulk_change_id=bulk_change.pk)
        return {
            "log_rows": [
                {"entry": display.log_entry(row), "at": display.timestamp(row.processed_at)}
                for row in rows
            ],
            "log_more": len(rows) >= LOG_LATEST,
            "log_all_url": display.logs_url(bulk_change=bulk_change.pk),
            "log_errors_url": display.logs_url(bulk_change=bulk_change.pk, has_errors__exact=1),
        }

    def progress_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """The page's live panels, polled by progress.js while the bulk change is open: its
        status, progress figures and each panel's HTML (the devices panel for the filter and
        page in the query string). ``final`` tells the script to stop."""
        bulk_change = self._get_viewable(request, object_id)
        context = self._live_context(request, bulk_change)
        # admin_view marks every admin view never_cache: polling always sees fresh counts.
        return JsonResponse(
            {
                "status": bulk_change.status,
                "final": context["is_final"],
                "progress": context["progress"].as_dict(),
                "fragments": {
                    element_id: render_to_string(template, context, request=request)
                    for element_id, template in LIVE_FRAGMENTS.items()
                },
            }
        )

    # --- Live refresh of the list and the dashboard ----------------------------------------

    def list_live_view(self, request: HttpRequest) -> JsonResponse:
        """The list's live cells: status, progress, errors and timing of the listed bulk
        changes (``ids``, at most a page), within the staff member's tenants, and how many
        bulk changes are newer than the newest listed (``newest``)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        ids = _ids(request.GET.get("ids", ""))[: self.list_per_page]
        visible = self.get_queryset(request)
        listed = list(visible.filter(pk__in=ids))
        progress = bulk_change_progress_map(bulk_change_ids=[row.pk for row in listed])
        rows: dict[str, dict[str, str]] = {}
        for bulk_change in listed:
            bulk_change._progress = progress[bulk_change.pk]
            rows[str(bulk_change.pk)] = {
                field: str(getattr(self, field)(bulk_change)) for field in LIVE_LIST_FIELDS
            }
        newest = _ids(request.GET.get("newest", ""))
        newer = visible.filter(pk__gt=newest[0]).count() if newest else 0
        return JsonResponse(
            {
                "final": False,
                "rows": rows,
                "newer": newer,
                "all_final": all(row.status in BulkChange.TERMINAL for row in listed),
            }
        )

    def dashboard_live_view(self, request: HttpRequest) -> JsonResponse:
        """The dashboard's figures again, for the index's live refresh; the same scope as the
        index itself (``admin/site.py``)."""
        if not request.user.has_perm("bulkchanges.view_bulkchange"):
            raise PermissionDenied
        dashboard = dashboard_context(
            tenant_ids=tenancy.request_tenant_ids(request),
            show_dead_letters=tenancy.is_superuser(request),
        )
        html = render_to_string(
            DASHBOARD_BODY_TEMPLATE,
            {"dashboard": dashboard, "awaiting_my_approval": awaiting_my_approval_tile(request)},
            request=request,
        )
        return JsonResponse({"final": False, "fragments": {"pondops-dashboard": html}})

    # --- URLs ------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        own = [
            path("new/", wrap(self.new_view), name="bulkchanges_bulkchange_new"),
            path(
                "new/confirm/",
                wrap(require_POST(self.new_confirm_view)),
                name="bulkchanges_bulkchange_new_confirm",
            ),
            path("live/", wrap(self.list_live_view), name="bulkchanges_bulkchange_live"),
            path(
                "dashboard/live/",
                wrap(self.dashboard_live_view),
                name="bulkchanges_bulkchange_dashboard_live",
            ),
            path(
                "<path:object_id>/progress/",
                wrap(self.progress_view),
                name="bulkchanges_bulkchange_progress",
            ),
            path(
                "<path:object_id>/retry/",
                wrap(self.retry_view),
                name="bulkchanges_bulkchange_retry",
            ),
            path(
                "<path:object_id>/resubmit/",
                wrap(self.resubmit_view),
                name="bulkchanges_bulkchange_resubmit",
            ),
            path(
                "<path:object_id>/cancel/",
                wrap(self.cancel_view),
                name="bulkchanges_bulkchange_cancel",
            ),
            path(
                "<path:object_id>/export/",
                wrap(self.export_view),
                name="bulkchanges_bulkchange_export",
            ),
        ]
        return own + super().get_urls()
