"""What staff do to bulk changes in the console: retry the failed devices (all of them, or one
group of the same error message: ``<id>/retry/?group=<key>``), resubmit, cancel, export the
devices as CSV — from the buttons on a bulk change's page (``<id>/retry/``, ``<id>/cancel/``,
``<id>/export/``) or from the list's action menu. Retry, resubmit and cancel show a
confirmation page first (a retry's lists which devices and why); export downloads at once — it
changes nothing. Each calls one service, logged under the staff member's name, and is recorded
in the admin's history."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from bulkchanges.admin import display
from bulkchanges.admin.audit import actor
from bulkchanges.admin.confirm import confirm_page
from bulkchanges.admin.history import history_record
from bulkchanges.console_selectors import failure_group_device_ids, failure_group_get
from bulkchanges.errors import ApplicationError
from bulkchanges.models import BulkChange, DeviceChange
from bulkchanges.selectors import (
    RESUBMITTABLE,
    CancelImpact,
    bulk_change_cancel_impact,
    bulk_change_progress_map,
)
from bulkchanges.services import bulk_change_cancel, bulk_change_retry
from bulkchanges.services.exports import bulk_change_export

# A retry's confirmation lists at most this many of its devices (and says how many in all).
CONFIRM_DEVICES = 100


class BulkChangeActions(admin.ModelAdmin):
    """The action views and list actions of BulkChangeAdmin (which routes the views)."""

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bulkchanges.retry_bulkchange")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bulkchanges.cancel_bulkchange")

    def _get_viewable(self, request: HttpRequest, object_id: str) -> BulkChange:
        """The bulk change a page or an action is about: 404 if there is none, 403 if the
        staff member may not view it."""
        bulk_change = self.get_object(request, object_id)
        if bulk_change is None:
            raise Http404(f"bulk change {object_id!r} does not exist")
        if not self.has_view_permission(request, bulk_change):
            raise PermissionDenied
        return bulk_change

    # --- Per-bulk-change actions (buttons on the page, each confirmed) -------------------

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """All failed devices, or with ``group`` those failed with one error message."""
        bulk_change = self._get_viewable(request, object_id)
        if not self.has_retry_permission(request):
            raise PermissionDenied
        key = request.GET.get("group") or request.POST.get("group") or ""
        group = None
        if key:
            group = failure_group_get(bulk_change_id=bulk_change.pk, key=key)
            if group is None:
                messages.warning(
                    request,
                    f"Bulk change {bulk_change.pk}: no failed device has that error any more "
                    "(retried or changed meanwhile).",
                )
                return HttpResponseRedirect(display.bulk_change_url(bulk_change.pk))
        if request.method == "POST":
            ids = (
                failure_group_device_ids(bulk_change_id=bulk_change.pk, group=group)
                if group is not None
                else None
            )
            self._retry(request, [bulk_change], device_change_ids=ids)
            return HttpResponseRedirect(display.bulk_change_url(bulk_change.pk))
        devices = DeviceChange.objects.filter(
            bulk_change=bulk_change, status=DeviceChange.Status.ERROR
        )
        if group is not None:
            devices = devices.filter(last_error__in=group.messages)
        return self._confirm(
            request,
            title=(
                f"Retry {group.count} failed device{pluralize(group.count)} of bulk change "
                f"{bulk_change.pk}?"
                if group is not None
                else f"Retry the failed devices of bulk change {bulk_change.pk}?"
            ),
            bulk_changes=[bulk_change],
            explanation=(
                "The devices below, which failed with this error, are queued again with a "
                "fresh retry count"
                if group is not None
                else "Every device in ERROR (below) is queued again with a fresh retry count"
            )
            + "; each resumes after its last completed step. The retry is logged under your "
            "name.",
            submit="Yes, retry these devices" if group is not None else "Yes, retry failed devices",
            devices=devices,
            group=key if group is not None else "",
        )

    def resubmit_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        bulk_change = self._get_viewable(request, object_id)
        if not self.has_retry_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            self._retry(request, [bulk_change], resubmit=True)
            return HttpResponseRedirect(display.bulk_change_url(bulk_change.pk))
        return self._confirm(
            request,
            title=f"Submit the unconfirmed devices of bulk change {bulk_change.pk} again?",
            bulk_changes=[bulk_change],
            explanation="Every device in ERROR whose change the carrier accepted but never "
            "confirmed is submitted to the carrier again, as a new request. Check the carrier "
            "first: a change it applied late would be sent twice (and, on ThingSpace, spend "
            "another of the line's daily actions). A plain retry confirms the old request "
            "instead. The resubmit is logged under your name, with each old request id.",
            submit="Yes, submit them again",
            devices=DeviceChange.objects.filter(RESUBMITTABLE, bulk_change=bulk_change),
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
            explanation=cancel_explanation(
                bulk_change_cancel_impact(bulk_change_id=bulk_change.pk),
                with_rev=bool((bulk_change.request or {}).get("RevService")),
            ),
            submit="Yes, cancel it",
            danger=True,
        )

    def export_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        """Downloads at once: an export changes nothing, so it asks nothing (it is audited)."""
        bulk_change = self._get_viewable(request, object_id)
        return self._export(request, [bulk_change])

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
            explanation="Devices that have not sent their change to the carrier yet become "
            "CANCELLED now. Devices that already have finish with their real outcome "
            "(PROCESSED or ERROR), Rev.io steps included where the change has them; each bulk "
            "change stays CANCELLING "
            "until they have, then becomes CANCELLED. Only bulk changes not yet final or "
            "cancelling can be cancelled. This cannot be undone; each cancellation is logged "
            "under your name.",
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
        """Downloads at once, like the page's button."""
        return self._export(request, list(queryset))

    # --- Confirming, then acting -----------------------------------------------------------

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
        devices: QuerySet[DeviceChange] | None = None,
        group: str = "",
    ) -> TemplateResponse:
        """From a page (no ``action``), "back" returns to that bulk change; from the list,
        to the list. ``devices``: the devices the action takes, listed (ICCID, status, last
        error; the first CONFIRM_DEVICES of them, with their count) so staff see which and
        why before they confirm."""
        progress = bulk_change_progress_map(bulk_change_ids=[bc.pk for bc in bulk_changes])
        device_context: dict[str, object] = {}
        if devices is not None:
            shown = list(devices.order_by("id")[:CONFIRM_DEVICES])
            device_context = {
                "device_rows": [
                    {
                        "device_change": device_change,
                        "badge": display.status_badge(device_change.status),
                    }
                    for device_change in shown
                ],
                "device_count": (count := devices.count()),
                "device_more": max(0, count - len(shown)),
                "group": group,
            }
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
            **device_context,
        )

    def _retry(
        self,
        request: HttpRequest,
        bulk_changes: list[BulkChange],
        *,
        resubmit: bool = False,
        device_change_ids: list[int] | None = None,
    ) -> None:
        what = (
            "unconfirmed devices re-queued to submit again"
            if resubmit
            else ("failed devices re-queued")
        )
        for bulk_change in bulk_changes:
            try:
                queued = bulk_change_retry(
                    bulk_change=bulk_change,
                    actor=actor(request),
                    resubmit=resubmit,
                    device_change_ids=device_change_ids,
                )
            except ApplicationError as error:
                messages.error(request, f"Bulk change {bulk_change.pk}: {error}")
                continue
            if queued:
                history_record(
                    request,
                    bulk_change,
                    f"{'Resubmitted' if resubmit else 'Retried'}: {len(queued)} {what}",
                )
                messages.success(request, f"Bulk change {bulk_change.pk}: {len(queued)} {what}.")
            else:
                nothing = (
                    "no unconfirmed devices to resubmit"
                    if resubmit
                    else ("no failed devices to retry")
                )
                messages.warning(request, f"Bulk change {bulk_change.pk}: {nothing}.")

    def _cancel(self, request: HttpRequest, bulk_changes: list[BulkChange]) -> None:
        for bulk_change in bulk_changes:
            try:
                outcome = bulk_change_cancel(bulk_change=bulk_change, actor=actor(request))
            except ApplicationError as error:
                messages.error(request, f"Bulk change {bulk_change.pk}: {error}")
                continue
            described = outcome.describe()
            history_record(request, bulk_change, f"Cancelled: {described}")
            messages.success(request, f"Bulk change {bulk_change.pk}: {described}")

    def _export(
        self, request: HttpRequest, bulk_changes: list[BulkChange]
    ) -> StreamingHttpResponse:
        ids = [bulk_change.pk for bulk_change in bulk_changes]
        lines = bulk_change_export(bulk_change_ids=ids, actor=actor(request))
        history_record(request, bulk_changes, "Exported the devices as CSV")
        name = (
            f"bulk-change-{ids[0]}-devices.csv"
            if len(ids) == 1
            else f"bulk-changes-devices-{timezone.now():%Y%m%d-%H%M%S}.csv"
        )
        response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


def cancel_explanation(impact: CancelImpact, *, with_rev: bool) -> str:
    """The confirm page's words for what a cancel will do to this bulk change right now."""
    now = (
        f"Right now {impact.cancel_now} device{'s' if impact.cancel_now != 1 else ''} "
        f"{'has' if impact.cancel_now == 1 else 'have'} not sent the change to the carrier "
        "yet: they become CANCELLED now."
    )
    if impact.finishing:
        later = (
            f" {impact.finishing} device{'s' if impact.finishing != 1 else ''} "
            f"{'has' if impact.finishing == 1 else 'have'} already sent the change to the "
            "carrier: they are not stopped (a half-applied change is worse than a finished "
            "one) and finish with their real outcome, PROCESSED or ERROR"
            f"{', Rev.io steps included' if with_rev else ''}. The bulk change stays "
            "CANCELLING until they have, then becomes CANCELLED."
        )
    else:
        later = " No device is in flight, so the bulk change becomes CANCELLED at once."
    return f"{now}{later} This cannot be undone. The cancellation is logged under your name."
