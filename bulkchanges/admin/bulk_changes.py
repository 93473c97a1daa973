"""The bulk change console: the list (badges, progress from one aggregate query per page), the
detail page (request in words, counts, devices link, the audit log, live progress) and the
retry / cancel / export actions, each confirmed first; the new-bulk-change views come from
``creation``. Each view parses input, calls one service or selector, and renders."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from bulkchanges.admin import display
from bulkchanges.admin.audit import actor
from bulkchanges.admin.confirm import confirm_page
from bulkchanges.admin.creation import BulkChangeCreation
from bulkchanges.admin.readonly import ReadOnlyAdmin
from bulkchanges.errors import ApplicationError
from bulkchanges.models import BulkChange
from bulkchanges.selectors import (
    Progress,
    bulk_change_progress,
    bulk_change_progress_map,
    bulk_change_search,
    log_page,
)
from bulkchanges.services import bulk_change_cancel, bulk_change_retry
from bulkchanges.services.exports import bulk_change_export

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
class BulkChangeAdmin(BulkChangeCreation, ReadOnlyAdmin):
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
    actions = ("retry_failed_action", "cancel_action", "export_action")
    change_form_template = "admin/bulkchanges/bulkchange/change_form.html"
    change_list_template = "admin/bulkchanges/bulkchange/change_list.html"
    readonly_fields = [field.name for field in BulkChange._meta.fields]

    class Media:
        css = {"all": ("bulkchanges/pondops.css",)}

    # Bulk changes are created through the services (the "new" view below), never edited
    # and never deleted here (ReadOnlyAdmin).

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bulkchanges.retry_bulkchange")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bulkchanges.cancel_bulkchange")

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

    def _get_viewable(self, request: HttpRequest, object_id: str) -> BulkChange:
        bulk_change = self.get_object(request, object_id)
        if bulk_change is None:
            raise Http404(f"bulk change {object_id!r} does not exist")
        if not self.has_view_permission(request, bulk_change):
            raise PermissionDenied
        return bulk_change

    # --- Per-bulk-change actions (buttons on the page, each confirmed) -------------------

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        bulk_change = self._get_viewable(request, object_id)
        if not self.has_retry_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            self._retry(request, [bulk_change])
            return HttpResponseRedirect(display.bulk_change_url(bulk_change.pk))
        return self._confirm(
            request,
            title=f"Retry the failed devices of bulk change {bulk_change.pk}?",
            bulk_changes=[bulk_change],
            explanation="Every device in ERROR is queued again with a fresh retry count; "
            "each resumes after its last completed step. The retry is logged under your name.",
            submit="Yes, retry failed devices",
        )

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        bulk_change = self._get_viewable(request, object_id)
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            self._cancel(request, [bulk_change])
            return HttpResponseRedirect(display.bulk_change_url(bulk_change.pk))
        return self._confirm(
            request,
            title=f"Cancel bulk change {bulk_change.pk}?",
            bulk_changes=[bulk_change],
            explanation="Devices not yet started become CANCELLED; devices in flight finish "
            "their current step and end CANCELLED. This cannot be undone. The cancellation is "
            "logged under your name.",
            submit="Yes, cancel it",
            danger=True,
        )

    def export_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        bulk_change = self._get_viewable(request, object_id)
        if request.method == "POST":
            return self._export(request, [bulk_change.pk])
        return self._confirm(
            request,
            title=f"Export the devices of bulk change {bulk_change.pk} as CSV?",
            bulk_changes=[bulk_change],
            explanation="One line per device with its status, attempts, last error and "
            "completion time. The export is logged under your name.",
            submit="Download CSV",
        )

    # --- List actions (each shows a confirmation page first) -----------------------------

    @admin.action(
        description="Retry failed devices of selected bulk changes", permissions=["retry"]
    )
    def retry_failed_action(
        self, request: HttpRequest, queryset: QuerySet[BulkChange]
    ) -> HttpResponse | None:
        if request.POST.get("post") == "yes":
            self._retry(request, list(queryset))
            return None
        return self._confirm(
            request,
            title="Retry the failed devices of these bulk changes?",
            bulk_changes=list(queryset),
            explanation="Every device in ERROR is queued again with a fresh retry count. "
            "Each retry is logged under your name.",
            submit="Yes, retry failed devices",
            action="retry_failed_action",
        )

    @admin.action(description="Cancel selected bulk changes", permissions=["cancel"])
    def cancel_action(
        self, request: HttpRequest, queryset: QuerySet[BulkChange]
    ) -> HttpResponse | None:
        if request.POST.get("post") == "yes":
            self._cancel(request, list(queryset))
            return None
        return self._confirm(
            request,
            title="Cancel these bulk changes?",
            bulk_changes=list(queryset),
            explanation="Devices not yet started become CANCELLED; devices in flight end "
            "CANCELLED after their current step. Only NEW, QUEUED or PROCESSING bulk changes "
            "can be cancelled. Each cancellation is logged under your name.",
            submit="Yes, cancel them",
            action="cancel_action",
            danger=True,
        )

    @admin.action(
        description="Export devices of selected bulk changes as CSV", permissions=["view"]
    )
    def export_action(
        self, request: HttpRequest, queryset: QuerySet[BulkChange]
    ) -> HttpResponseBase | None:
        if request.POST.get("post") == "yes":
            return self._export(request, list(queryset.values_list("pk", flat=True)))
        return self._confirm(
            request,
            title="Export the devices of these bulk changes as CSV?",
            bulk_changes=list(queryset),
            explanation="One line per device with its bulk change, status, attempts, last "
            "error and completion time. The export is logged under your name.",
            submit="Download CSV",
            action="export_action",
        )

    def _confirm(
        self,
        request: HttpRequest,
        *,
        title: str,
        bulk_changes: list[BulkChange],
        explanation: str,
        submit: str,
        action: str = "",
        danger: bool = False,
    ) -> TemplateResponse:
        """From a page (no ``action``), "back" returns to that bulk change; from the list,
        to the list."""
        progress = bulk_change_progress_map(bulk_change_ids=[bc.pk for bc in bulk_changes])
        return confirm_page(
            self,
            request,
            title=title,
            explanation=explanation,
            submit=submit,
            action=action,
            danger=danger,
            back_url=(
                display.bulk_change_url(bulk_changes[0].pk)
                if not action and bulk_changes
                else reverse("admin:bulkchanges_bulkchange_changelist")
            ),
            rows=[
                {
                    "bulk_change": bulk_change,
                    "badge": display.status_badge(bulk_change.status),
                    "progress": progress[bulk_change.pk],
                    "url": display.bulk_change_url(bulk_change.pk),
                }
                for bulk_change in bulk_changes
            ],
        )

    def _retry(self, request: HttpRequest, bulk_changes: list[BulkChange]) -> None:
        for bulk_change in bulk_changes:
            try:
                queued = bulk_change_retry(bulk_change=bulk_change, actor=actor(request))
            except ApplicationError as error:
                messages.error(request, f"Bulk change {bulk_change.pk}: {error}")
                continue
            if queued:
                messages.success(
                    request,
                    f"Bulk change {bulk_change.pk}: {len(queued)} failed devices re-queued.",
                )
            else:
                messages.warning(
                    request, f"Bulk change {bulk_change.pk}: no failed devices to retry."
                )

    def _cancel(self, request: HttpRequest, bulk_changes: list[BulkChange]) -> None:
        for bulk_change in bulk_changes:
            try:
                cancelled = bulk_change_cancel(bulk_change=bulk_change, actor=actor(request))
            except ApplicationError as error:
                messages.error(request, f"Bulk change {bulk_change.pk}: {error}")
                continue
            messages.success(
                request,
                f"Bulk change {bulk_change.pk} cancelled: {cancelled} devices cancelled now; "
                "devices in flight end CANCELLED after their current step.",
            )

    def _export(self, request: HttpRequest, bulk_change_ids: list[int]) -> StreamingHttpResponse:
        lines = bulk_change_export(bulk_change_ids=bulk_change_ids, actor=actor(request))
        name = (
            f"bulk-change-{bulk_change_ids[0]}-devices.csv"
            if len(bulk_change_ids) == 1
            else f"bulk-changes-devices-{timezone.now():%Y%m%d-%H%M%S}.csv"
        )
        response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

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
