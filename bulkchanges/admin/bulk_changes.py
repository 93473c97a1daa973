"""The bulk change console: the list (badges, progress from one aggregate query per page) and
the detail page (request in words, counts, devices link, the audit log, live progress), with
the routes of every bulk change view. The retry / cancel / export actions come from
``bulk_change_actions``, the new-bulk-change views from ``creation``. Each view parses input,
calls one service or selector, and renders."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from bulkchanges.admin import display
from bulkchanges.admin.bulk_change_actions import BulkChangeActions
from bulkchanges.admin.creation import BulkChangeCreation
from bulkchanges.admin.gates import BulkChangeGates
from bulkchanges.admin.readonly import ReadOnlyAdmin
from bulkchanges.admin.tenancy import TenantScopedAdmin
from bulkchanges.models import BulkChange
from bulkchanges.selectors import (
    Progress,
    bulk_change_progress,
    bulk_change_progress_map,
    bulk_change_resubmittable_count,
    bulk_change_search,
    log_page,
)

LOG_PAGE_SIZE = 50
PROGRESS_TEMPLATE = "bulkchanges/admin/progress.html"


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
    list_filter = ("status", "integration", "tenant", "created_at")
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
        context = {"has_create_permission": self.has_create_permission(request)}
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
        progress = bulk_change_progress(bulk_change_id=bulk_change.pk)
        errors_only = request.GET.get("log_errors") == "1"
        paginator = Paginator(
            log_page(bulk_change_id=bulk_change.pk, errors_only=errors_only).select_related(
                "device_change"
            ),
            LOG_PAGE_SIZE,
        )
        page = paginator.get_page(request.GET.get("log_page"))
        context = {
            **self._progress_context(bulk_change, progress),
            "request_lines": display.request_in_words(bulk_change),
            "credentials": bulk_change.integration_authentication,
            "devices_url": display.device_changes_url(bulk_change.pk),
            "log_page": page,
            "log_rows": [display.log_entry(row) for row in page.object_list],
            "log_errors_only": errors_only,
            "log_all_url": display.logs_url(bulk_change=bulk_change.pk),
            "can_retry": self.has_retry_permission(request)
            and progress.failed > 0
            and bulk_change.status != BulkChange.Status.CANCELLED,
            "resubmittable": (
                resubmittable := bulk_change_resubmittable_count(bulk_change_id=bulk_change.pk)
            ),
            "can_resubmit": self.has_retry_permission(request)
            and resubmittable > 0
            and bulk_change.status != BulkChange.Status.CANCELLED,
            "can_cancel": self.has_cancel_permission(request)
            and bulk_change.status in BulkChange.OPEN,
            "time_to_complete": display.time_to_complete(bulk_change),
            "age": display.age(bulk_change.created_at),
            # The model's str() carries the status at load time; the live part shows it.
            "title": f"Bulk change {bulk_change.pk}",
            "subtitle": f"{progress.total} {bulk_change.integration} devices to "
            f"{bulk_change.target_status or display.EMPTY}, created by {bulk_change.created_by}",
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)

    def _progress_context(self, bulk_change: BulkChange, progress: Progress) -> dict[str, Any]:
        return {
            "bulk_change": bulk_change,
            "progress": progress,
            "progress_bar": display.progress_bar(progress),
            "status_badge": display.status_badge(bulk_change.status),
            "is_final": bulk_change.status in BulkChange.TERMINAL,
            "status_rows": [
                {
                    "status": status,
                    "badge": display.status_badge(status),
                    "count": count,
                    "url": display.device_changes_url(bulk_change.pk, status__exact=status),
                }
                for status, count in progress.counts.items()
            ],
            "progress_url": reverse("admin:bulkchanges_bulkchange_progress", args=[bulk_change.pk]),
            "time_to_complete": display.time_to_complete(bulk_change),
        }

    def progress_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The page's live part, polled while the bulk change runs: status, bar, counts."""
        bulk_change = self._get_viewable(request, object_id)
        progress = bulk_change_progress(bulk_change_id=bulk_change.pk)
        # admin_view marks every admin view never_cache: polling always sees fresh counts.
        return TemplateResponse(
            request, PROGRESS_TEMPLATE, self._progress_context(bulk_change, progress)
        )

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
