"""The gates before the queue, in the console (docs/operator-features.md): approve or reject a
bulk change awaiting approval (staff with ``approve_bulkchange``, within their tenants, never
its creator), reschedule one that has not started (``reschedule_bulkchange``), and the list's
"Awaiting my approval" filter. A mixin of BulkChangeAdmin: it routes its own views, adds its
buttons and facts to the bulk change page's context and its filter to the list. Each view
shows a confirmation page, then calls one service, with an audit row (the service) and the
admin's history (:func:`history_record`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from bulkchanges.admin import display
from bulkchanges.admin.audit import actor
from bulkchanges.admin.forms import ScheduledForField
from bulkchanges.admin.history import history_record
from bulkchanges.admin.tenancy import request_tenant_ids, tenant_scope
from bulkchanges.errors import ApplicationError
from bulkchanges.models import BulkChange
from bulkchanges.services.approvals import (
    MAX_NOTE,
    actor_username,
    bulk_change_approve,
    bulk_change_reject,
)
from bulkchanges.services.scheduling import bulk_change_reschedule

# The prefixes of ``created_by`` (docs/architecture.md: ``process_by``) that name a person.
DOORS = ("admin", "api", "cli")
GATE_TEMPLATE = "admin/bulkchanges/bulkchange/gate_confirm.html"
Status = BulkChange.Status


class DecisionForm(forms.Form):
    note = forms.CharField(
        required=False,
        max_length=MAX_NOTE,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        label="Note",
        help_text="Why: kept with the decision and in the audit log.",
    )


class RescheduleForm(forms.Form):
    scheduled_for = ScheduledForField(required=True)


class AwaitingMyApprovalFilter(admin.SimpleListFilter):
    """Bulk changes awaiting approval that the viewer may decide: someone else's."""

    title = "approval"
    parameter_name = "approval"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("mine", "Awaiting my approval")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        if self.value() != "mine":
            return queryset
        return awaiting_approval_by(queryset, username=request.user.get_username())


def awaiting_approval_by(queryset: QuerySet[Any], *, username: str) -> QuerySet[Any]:
    """Those of ``queryset`` awaiting approval and not created by ``username`` (through any
    door: admin, API, CLI)."""
    own = Q()
    for door in DOORS:
        own |= Q(created_by__iexact=f"{door}:{username}")
    return queryset.filter(status=Status.AWAITING_APPROVAL).exclude(own)


def awaiting_my_approval_tile(request: HttpRequest) -> dict[str, Any] | None:
    """The dashboard's "awaiting my approval" figure: within the viewer's tenants, for staff
    who may approve (None otherwise: no tile)."""
    if not request.user.has_perm("bulkchanges.approve_bulkchange"):
        return None
    visible = tenant_scope(
        BulkChange.objects.all(), tenant_path="tenant", tenant_ids=request_tenant_ids(request)
    )
    changelist = reverse("admin:bulkchanges_bulkchange_changelist")
    return {
        "count": awaiting_approval_by(visible, username=request.user.get_username()).count(),
        "url": f"{changelist}?{AwaitingMyApprovalFilter.parameter_name}=mine",
    }


class BulkChangeGates(admin.ModelAdmin):
    """Approve / reject / reschedule views and what the bulk change page shows of the gates."""

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bulkchanges.approve_bulkchange")

    def has_reschedule_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bulkchanges.reschedule_bulkchange")

    def may_decide(self, request: HttpRequest, bulk_change: BulkChange) -> bool:
        """The buttons' rule (the service enforces the creator rule again)."""
        return (
            bulk_change.status == Status.AWAITING_APPROVAL
            and self.has_approve_permission(request)
            and actor_username(actor(request)).casefold()
            != actor_username(bulk_change.created_by).casefold()
        )

    def gates_context(self, request: HttpRequest, bulk_change: BulkChange) -> dict[str, Any]:
        awaiting = bulk_change.status == Status.AWAITING_APPROVAL
        return {
            "gates": {
                "scheduled_for": display.timestamp(bulk_change.scheduled_for),
                "is_scheduled": bulk_change.scheduled_for is not None,
                "approval_reason": bulk_change.approval_reason,
                "awaiting": awaiting,
                "decision": bulk_change.get_decision_display() if bulk_change.decision else "",
                "decided_by": bulk_change.decided_by,
                "decided_at": display.timestamp(bulk_change.decided_at),
                "decision_note": bulk_change.decision_note,
                "can_decide": self.may_decide(request, bulk_change),
                "is_creator": awaiting
                and actor_username(actor(request)).casefold()
                == actor_username(bulk_change.created_by).casefold(),
                "can_reschedule": bulk_change.status in BulkChange.GATED
                and self.has_reschedule_permission(request),
            }
        }

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        bulk_change = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if bulk_change is not None and self.has_view_permission(request, bulk_change):
            context.update(self.gates_context(request, bulk_change))
        return super().change_view(request, object_id, form_url, context)

    def get_list_filter(self, request: HttpRequest) -> Any:
        return (*super().get_list_filter(request), AwaitingMyApprovalFilter)

    # --- Views -------------------------------------------------------------------------------

    def _gated(self, request: HttpRequest, object_id: str) -> BulkChange:
        bulk_change = self.get_object(request, object_id)  # tenant-scoped: others' are a 404
        if bulk_change is None:
            raise Http404(f"bulk change {object_id!r} does not exist")
        if not self.has_view_permission(request, bulk_change):
            raise PermissionDenied
        return bulk_change

    def approve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._decide(request, object_id, approve=True)

    def reject_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._decide(request, object_id, approve=False)

    def _decide(self, request: HttpRequest, object_id: str, *, approve: bool) -> HttpResponse:
        bulk_change = self._gated(request, object_id)
        if not self.has_approve_permission(request):
            raise PermissionDenied
        if self.gates_context(request, bulk_change)["gates"]["is_creator"]:
            # Not even the confirmation page: the service refuses the creator through any door.
            messages.error(
                request,
                f"You created bulk change {bulk_change.pk}, so another person must approve or "
                "reject it.",
            )
            return HttpResponseRedirect(display.bulk_change_url(bulk_change.pk))
        form = DecisionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            service = bulk_change_approve if approve else bulk_change_reject
            try:
                bulk_change = service(
                    bulk_change=bulk_change, actor=actor(request), note=form.cleaned_data["note"]
                )
            except ApplicationError as error:
                messages.error(request, f"Nothing was changed: {error.detail}")
                return HttpResponseRedirect(display.bulk_change_url(bulk_change.pk))
            note = form.cleaned_data["note"].strip()
            verb = "Approved" if approve else "Rejected"
            history_record(
                request,
                bulk_change,
                f"{verb}: now {bulk_change.status}" + (f"; note: {note}" if note else ""),
            )
            messages.success(request, _decided_message(bulk_change, approve=approve))
            return HttpResponseRedirect(display.bulk_change_url(bulk_change.pk))
        if approve:
            then = (
                "it is scheduled and starts at its time"
                if bulk_change.scheduled_for and bulk_change.scheduled_for > timezone.now()
                else "it is queued and starts at once"
            )
            explanation = (
                f"It waits because {bulk_change.approval_reason}. Once you approve, {then}. "
                "The decision is logged under your name."
            )
        else:
            explanation = (
                f"It waits because {bulk_change.approval_reason}. Rejecting cancels it and "
                "all its devices; no carrier is called. The decision is logged under your name."
            )
        return self._gate_page(
            request,
            bulk_change,
            form=form,
            title=f"{'Approve' if approve else 'Reject'} bulk change {bulk_change.pk}?",
            explanation=explanation,
            submit="Yes, approve" if approve else "Yes, reject",
            danger=not approve,
        )

    def reschedule_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        bulk_change = self._gated(request, object_id)
        if not self.has_reschedule_permission(request):
            raise PermissionDenied
        form = RescheduleForm(
            request.POST or None, initial={"scheduled_for": bulk_change.scheduled_for}
        )
        if request.method == "POST" and form.is_valid():
            old = bulk_change.scheduled_for
            try:
                bulk_change = bulk_change_reschedule(
                    bulk_change=bulk_change,
                    actor=actor(request),
                    scheduled_for=form.cleaned_data["scheduled_for"],
                )
            except ApplicationError as error:
                if error.fields.get("scheduled_for"):
                    form.add_error("scheduled_for", error.detail[:1].upper() + error.detail[1:])
                else:
                    messages.error(request, f"Nothing was changed: {error.detail}")
                    return HttpResponseRedirect(display.bulk_change_url(bulk_change.pk))
            else:
                new = bulk_change.scheduled_for
                history_record(
                    request,
                    bulk_change,
                    f"Rescheduled: {_when(old)} → {_when(new)}; now {bulk_change.status}",
                )
                messages.success(
                    request,
                    f"Bulk change {bulk_change.pk} rescheduled to {_when(new)}"
                    + (
                        "; it was due and is queued now."
                        if bulk_change.status == Status.QUEUED
                        else "."
                    ),
                )
                return HttpResponseRedirect(display.bulk_change_url(bulk_change.pk))
        return self._gate_page(
            request,
            bulk_change,
            form=form,
            title=f"Reschedule bulk change {bulk_change.pk}",
            explanation="Choose when it starts. A time that is now (or in the last minute) "
            "releases a scheduled bulk change to the queue at once; one awaiting approval "
            "still waits for its approval. The change is logged under your name.",
            submit="Reschedule",
        )

    def _gate_page(
        self,
        request: HttpRequest,
        bulk_change: BulkChange,
        *,
        form: forms.Form,
        title: str,
        explanation: str,
        submit: str,
        danger: bool = False,
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "explanation": explanation,
            "bulk_change": bulk_change,
            "bulk_change_url": display.bulk_change_url(bulk_change.pk),
            "badge": display.status_badge(bulk_change.status),
            "created_at": display.timestamp(bulk_change.created_at),
            "scheduled_for": display.timestamp(bulk_change.scheduled_for),
            "form": form,
            "submit": submit,
            "danger": danger,
        }
        return TemplateResponse(request, GATE_TEMPLATE, context)

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        own = [
            path(
                "<path:object_id>/approve/",
                wrap(self.approve_view),
                name="bulkchanges_bulkchange_approve",
            ),
            path(
                "<path:object_id>/reject/",
                wrap(self.reject_view),
                name="bulkchanges_bulkchange_reject",
            ),
            path(
                "<path:object_id>/reschedule/",
                wrap(self.reschedule_view),
                name="bulkchanges_bulkchange_reschedule",
            ),
        ]
        return own + super().get_urls()


def _when(moment: datetime | None) -> str:
    """A moment in a message or the history: the console's format, in UTC (messages are plain
    text, so the page's script cannot show them in the viewer's zone)."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if moment else "not scheduled"


def _decided_message(bulk_change: BulkChange, *, approve: bool) -> str:
    if not approve:
        return f"Bulk change {bulk_change.pk} rejected: it and its devices are cancelled."
    if bulk_change.status == Status.SCHEDULED:
        return (
            f"Bulk change {bulk_change.pk} approved: scheduled for "
            f"{_when(bulk_change.scheduled_for)}."
        )
    return f"Bulk change {bulk_change.pk} approved and queued."
