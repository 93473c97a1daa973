"""Previews (dry runs) and reverts in the console (docs/operator-features.md): the previews list,
a preview's page (live progress while it reads, verdict counts, its devices filterable by
verdict, its audit rows), and the actions that start one — "Preview against the carrier" from
the new-bulk-change preview or a bulk change's page, "Revert" from a finished bulk change's
page — and those that act on a finished one: "Create bulk change from preview", "Create the
revert". Each view parses its input, calls one service, records the admin history and
redirects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from bulkchanges.admin import display
from bulkchanges.admin.audit import actor
from bulkchanges.admin.drafts import draft_load
from bulkchanges.admin.history import history_record
from bulkchanges.admin.readonly import ReadOnlyAdmin
from bulkchanges.admin.tenancy import TenantScopedAdmin, operator_tenants
from bulkchanges.errors import ApplicationError
from bulkchanges.models import BulkChange, BulkChangeLog, Preview, PreviewDevice
from bulkchanges.services import status_update_request_validate
from bulkchanges.services.previews import (
    PreviewProgress,
    preview_bulk_change_create,
    preview_create,
    preview_of_bulk_change_create,
    preview_progress,
)
from bulkchanges.services.reverts import revert_create, revert_preview_create

DEVICE_PAGE_SIZE = 100
LOG_ROWS = 20
PROGRESS_TEMPLATE = "bulkchanges/admin/preview_progress.html"
Verdict = PreviewDevice.Verdict
# Verdicts an operator reads as good, as "nothing to do" and as a problem.
VERDICT_TONE: dict[str, str] = {
    Verdict.WOULD_CHANGE: "ok",
    Verdict.ALREADY_IN_TARGET: "quiet",
}


def preview_url(preview_id: int, **query: str) -> str:
    url = reverse("admin:bulkchanges_preview_change", args=[preview_id])
    return f"{url}?{urlencode(query)}" if query else url


def verdict_badge(verdict: str) -> SafeString:
    if not verdict:
        return format_html(
            '<span class="pondops-verdict pondops-verdict--unread">{}</span>', "not read"
        )
    tone = VERDICT_TONE.get(verdict, "bad")
    return format_html(
        '<span class="pondops-verdict pondops-verdict--{}" data-verdict="{}">{}</span>',
        tone,
        verdict,
        Verdict(verdict).label,
    )


def preview_bar(progress: PreviewProgress, *, compact: bool = False) -> SafeString:
    """read/total as the console's progress bar (read devices green); ``compact`` (the list)
    leaves the percent to the tooltip."""
    suffix = "" if compact else f" read ({progress.percent}%)"
    return format_html(
        '<div class="pondops-progress" data-done="{}" data-total="{}" title="{}% read">'
        '<div class="pondops-progress__bar"><span class="pondops-progress__ok" '
        'style="width: {}%"></span></div>'
        '<span class="pondops-progress__label">{}/{}{}</span></div>',
        progress.read,
        progress.total,
        progress.percent,
        progress.percent,
        progress.read,
        progress.total,
        suffix,
    )


@admin.register(Preview)
class PreviewAdmin(TenantScopedAdmin, ReadOnlyAdmin):
    # Few columns: the list stays whole at 1024 px beside the navigation and the filter.
    list_display = ("preview", "tenant", "target", "status_badge", "progress", "created")
    list_filter = ("status",)
    search_fields = ("=id", "devices__iccid")
    list_select_related = ("tenant", "bulk_change", "revert_of")
    change_form_template = "admin/bulkchanges/preview/change_form.html"

    class Media:
        css = {"all": ("bulkchanges/pondops.css", "bulkchanges/previews.css")}

    # --- The list ------------------------------------------------------------------------

    @admin.display(description="Preview", ordering="id")
    def preview(self, preview: Preview) -> SafeString:
        return format_html(
            '<a href="{}">Preview {}</a><br><span class="pondops-quiet">{}</span>',
            preview_url(preview.pk),
            preview.pk,
            self.of(preview),
        )

    @staticmethod
    def of(preview: Preview) -> str:
        if preview.revert_of_id:
            return f"revert of bulk change {preview.revert_of_id}"
        if preview.bulk_change_id:
            return f"of bulk change {preview.bulk_change_id}"
        return "of a request"

    @admin.display(description="Target", ordering="integration")
    def target(self, preview: Preview) -> str:
        target = "previous statuses" if preview.revert_of_id else preview.target_status
        return f"{preview.integration} {target}"

    @admin.display(description="Status", ordering="status")
    def status_badge(self, preview: Preview) -> SafeString:
        return display.status_badge(preview.status)

    @admin.display(description="Progress")
    def progress(self, preview: Preview) -> SafeString:
        return preview_bar(preview_progress(preview_id=preview.pk), compact=True)

    @admin.display(description="Created", ordering="created_at")
    def created(self, preview: Preview) -> SafeString | str:
        return display.timestamp(preview.created_at)

    # --- The preview page ----------------------------------------------------------------

    def _get_viewable(self, request: HttpRequest, object_id: str) -> Preview:
        preview = self.get_object(request, object_id)
        if preview is None:
            raise Http404(f"preview {object_id!r} does not exist")
        if not self.has_view_permission(request, preview):
            raise PermissionDenied
        return preview

    def _progress_context(self, preview: Preview) -> dict[str, Any]:
        progress = preview_progress(preview_id=preview.pk)
        is_final = preview.status in Preview.TERMINAL
        return {
            "preview": preview,
            "progress": progress,
            "progress_bar": preview_bar(progress),
            "status_badge": display.status_badge(preview.status),
            "is_final": is_final,
            "started": display.timestamp(preview.started_at),
            "finished": display.timestamp(preview.finished_at),
            "verdict_rows": [
                {
                    "verdict": verdict,
                    "badge": verdict_badge(verdict),
                    "count": progress.counts.get(verdict, 0),
                    "url": preview_url(preview.pk, verdict=verdict) + "#devices",
                }
                for verdict in Verdict.values
                if progress.counts.get(verdict)
                or verdict in (Verdict.WOULD_CHANGE, Verdict.ALREADY_IN_TARGET)
            ],
            "progress_url": reverse("admin:bulkchanges_preview_progress", args=[preview.pk]),
        }

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        preview = self.get_object(request, object_id)
        if preview is None or not self.has_view_permission(request, preview):
            return super().change_view(request, object_id, form_url, extra_context)
        verdict = request.GET.get("verdict", "")
        if verdict not in Verdict.values:
            verdict = ""
        devices = preview.devices.order_by("pk")
        if verdict:
            devices = devices.filter(verdict=verdict)
        page = Paginator(devices, DEVICE_PAGE_SIZE).get_page(request.GET.get("page"))
        created = list(BulkChange.objects.filter(preview=preview).order_by("pk"))
        context = self._progress_context(preview)
        is_revert = preview.revert_of_id is not None
        done = preview.status == Preview.Status.DONE
        would_change = context["progress"].counts.get(Verdict.WOULD_CHANGE, 0)
        rev_services = [
            service_id
            for service_id in preview.devices.values_list("rev_service_id", flat=True)
            if service_id is not None
        ]
        context.update(
            {
                "title": f"{'Revert preview' if is_revert else 'Preview'} {preview.pk}",
                "subtitle": self._subtitle(preview),
                "is_revert": is_revert,
                "request_lines": self._request_lines(preview),
                "verdict": verdict,
                "verdict_label": Verdict(verdict).label if verdict else "",
                "device_page": page,
                "device_rows": [
                    {"row": row, "badge": verdict_badge(row.verdict)} for row in page.object_list
                ],
                "created": created,
                "created_links": [
                    {"id": bc.pk, "url": display.bulk_change_url(bc.pk), "target": bc.target_status}
                    for bc in created
                ],
                "rev_services": rev_services[:200],
                "rev_service_count": len(rev_services),
                "can_create": done
                and not is_revert
                and not created
                and would_change > 0
                and request.user.has_perm("bulkchanges.add_bulkchange"),
                "already_count": context["progress"].counts.get(Verdict.ALREADY_IN_TARGET, 0),
                "can_revert": done
                and is_revert
                and not created
                and would_change > 0
                and request.user.has_perm("bulkchanges.revert_bulkchange"),
                "would_change": would_change,
                "nothing_to_do": done and not created and would_change == 0,
                "revert_groups": self._revert_groups(preview) if is_revert else [],
                "log_rows": [
                    {"row": row, "time": display.timestamp(row.processed_at)}
                    for row in BulkChangeLog.objects.filter(preview=preview)
                    .exclude(log_entry_description="Preview verdict")
                    .order_by("-processed_at", "-id")[:LOG_ROWS]
                ],
                "created_at": display.timestamp(preview.created_at),
                "log_count": BulkChangeLog.objects.filter(preview=preview).count(),
                **(extra_context or {}),
            }
        )
        return super().change_view(request, object_id, form_url, context)

    @staticmethod
    def _subtitle(preview: Preview) -> str:
        if preview.revert_of_id:
            return (
                f"Reverting bulk change {preview.revert_of_id}: each device it changed back to "
                "its previous status. Reads only — nothing is changed until you create the revert."
            )
        what = f"bulk change {preview.bulk_change_id}" if preview.bulk_change_id else "a request"
        return (
            f"A dry run of {what}: {preview.integration} devices to {preview.target_status}. "
            "Reads only — no carrier write is made."
        )

    @staticmethod
    def _request_lines(preview: Preview) -> list[dict[str, str]]:
        lines = [
            {"label": "Tenant", "value": str(preview.tenant)},
            {"label": "Carrier", "value": preview.get_integration_display()},
            {"label": "Credentials", "value": str(preview.integration_authentication)},
            {"label": "Created by", "value": preview.created_by},
        ]
        if not preview.revert_of_id:
            lines.insert(2, {"label": "Target status", "value": preview.target_status})
        return lines

    @staticmethod
    def _revert_groups(preview: Preview) -> list[dict[str, Any]]:
        """One row per previous status: the bulk change the revert will create."""
        from django.db.models import Count

        return [
            {"target": target, "count": count}
            for target, count in preview.devices.filter(verdict=Verdict.WOULD_CHANGE)
            .order_by("target_status")
            .values_list("target_status")
            .annotate(n=Count("id"))
        ]

    def progress_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The page's live part, polled by previews.js while the preview reads."""
        preview = self._get_viewable(request, object_id)
        return TemplateResponse(request, PROGRESS_TEMPLATE, self._progress_context(preview))

    # --- Actions -------------------------------------------------------------------------

    def _require(self, request: HttpRequest, permission: str) -> None:
        if not request.user.has_perm(f"bulkchanges.{permission}"):
            raise PermissionDenied

    def _bulk_change(self, request: HttpRequest, bulk_change_id: str) -> BulkChange:
        """A bulk change of one of the operator's tenants (404 otherwise)."""
        return get_object_or_404(
            BulkChange.objects.filter(tenant__in=operator_tenants(request)), pk=bulk_change_id
        )

    def create_bulk_change_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        preview = self._get_viewable(request, object_id)  # another tenant's: 404, any method
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        self._require(request, "add_bulkchange")
        try:
            bulk_change, _ = preview_bulk_change_create(
                preview=preview,
                actor=actor(request),
                include_already_in_target=request.POST.get("include_already") == "1",
            )
        except ApplicationError as error:
            messages.error(request, f"Nothing was created: {error}")
            return HttpResponseRedirect(preview_url(preview.pk))
        count = bulk_change.device_changes.count()
        message = f"Bulk change {bulk_change.pk} created from preview {preview.pk}: {count} devices"
        history_record(request, [preview, bulk_change], message)
        messages.success(request, f"{message} to {bulk_change.target_status}.")
        return HttpResponseRedirect(display.bulk_change_url(bulk_change.pk))

    def revert_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        preview = self._get_viewable(request, object_id)  # another tenant's: 404, any method
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        self._require(request, "revert_bulkchange")
        try:
            created = revert_create(preview=preview, actor=actor(request))
        except ApplicationError as error:
            messages.error(request, f"Nothing was created: {error}")
            return HttpResponseRedirect(preview_url(preview.pk))
        summary = ", ".join(f"{bc.pk} (back to {bc.target_status})" for bc in created)
        history_record(
            request,
            [preview, preview.revert_of, *created],  # type: ignore[list-item]
            f"Revert of bulk change {preview.revert_of_id} created: bulk changes {summary}",
        )
        messages.success(
            request,
            f"Revert of bulk change {preview.revert_of_id} created: bulk changes {summary}.",
        )
        return HttpResponseRedirect(display.bulk_change_url(created[0].pk))

    def of_bulk_change_view(self, request: HttpRequest, bulk_change_id: str) -> HttpResponse:
        return self._start(
            request, bulk_change_id, "add_preview", preview_of_bulk_change_create, "Preview"
        )

    def revert_of_view(self, request: HttpRequest, bulk_change_id: str) -> HttpResponse:
        return self._start(
            request, bulk_change_id, "revert_bulkchange", revert_preview_create, "Revert preview"
        )

    def _start(
        self,
        request: HttpRequest,
        bulk_change_id: str,
        permission: str,
        start: Callable[..., Preview],
        label: str,
    ) -> HttpResponse:
        """Start a preview of one of the operator's bulk changes (``start``: the service) and
        show it; the service's refusal is a message on the bulk change's page."""
        self._require(request, permission)
        bulk_change = self._bulk_change(request, bulk_change_id)
        try:
            preview = start(bulk_change=bulk_change, actor=actor(request))
        except ApplicationError as error:
            messages.error(request, f"No {label.lower()} was started: {error}")
            return HttpResponseRedirect(display.bulk_change_url(bulk_change.pk))
        history_record(request, [bulk_change, preview], f"{label} {preview.pk} started")
        return HttpResponseRedirect(preview_url(preview.pk))

    def from_draft_view(self, request: HttpRequest) -> HttpResponse:
        """ "Preview against the carrier" on the new-bulk-change page: the draft it validated
        (kept for its own confirm, so the operator may still create it afterwards)."""
        self._require(request, "add_preview")
        draft = draft_load(request.session, request.POST.get("draft", ""))
        if draft is None:
            messages.error(
                request,
                "This device list is no longer available (confirmed already, or replaced by a "
                "newer one). Upload the list again.",
            )
            return HttpResponseRedirect(reverse("admin:bulkchanges_bulkchange_new"))
        tenant = get_object_or_404(operator_tenants(request), pk=draft.tenant_id)
        try:
            validated = status_update_request_validate(
                tenant=tenant, integration=draft.integration, **draft.validate_kwargs()
            )
            preview = preview_create(
                tenant=tenant,
                actor=actor(request),
                validated=validated,
                devices=draft.device_refs(),
            )
        except ApplicationError as error:
            messages.error(request, f"No preview was started: {error}")
            return HttpResponseRedirect(reverse("admin:bulkchanges_bulkchange_new"))
        history_record(request, preview, f"Preview {preview.pk} started")
        return HttpResponseRedirect(preview_url(preview.pk))

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        own = [
            path(
                "from-draft/",
                wrap(require_POST(self.from_draft_view)),
                name="bulkchanges_preview_from_draft",
            ),
            path(
                "of-bulk-change/<int:bulk_change_id>/",
                wrap(require_POST(self.of_bulk_change_view)),
                name="bulkchanges_preview_of_bulk_change",
            ),
            path(
                "revert-of/<int:bulk_change_id>/",
                wrap(require_POST(self.revert_of_view)),
                name="bulkchanges_preview_revert_of",
            ),
            path(
                "<path:object_id>/progress/",
                wrap(self.progress_view),
                name="bulkchanges_preview_progress",
            ),
            path(
                "<path:object_id>/create-bulk-change/",
                wrap(self.create_bulk_change_view),
                name="bulkchanges_preview_create_bulk_change",
            ),
            path(
                "<path:object_id>/revert/",
                wrap(self.revert_view),
                name="bulkchanges_preview_revert",
            ),
        ]
        return own + super().get_urls()
