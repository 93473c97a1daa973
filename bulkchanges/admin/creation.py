"""New bulk change, in the admin: choose tenant and carrier, fill in the request and the device
list, see a preview (valid, duplicate, malformed and unknown ICCIDs) — nothing is created yet —
then confirm, which creates and queues it through the same services as the API and commands."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode

from bulkchanges.admin import display
from bulkchanges.admin.audit import actor
from bulkchanges.admin.drafts import Draft, draft_discard, draft_load, draft_save
from bulkchanges.admin.forms import SERVICE_FIELDS, NewBulkChangeForm, TargetForm
from bulkchanges.admin.history import history_record
from bulkchanges.admin.tenancy import operator_tenants
from bulkchanges.devicelists import (
    REJECTED_KEPT,
    DeviceListError,
    TooManyDevices,
    parse_device_list,
)
from bulkchanges.errors import ApplicationError
from bulkchanges.models import BulkChange, Tenant
from bulkchanges.services import (
    bulk_change_create,
    bulk_change_gates,
    credentials_resolve,
    device_list_preview,
    status_update_request_validate,
)
from bulkchanges.uploads import upload_refusal
from integrations.base import Integration

PREVIEW_LINES = REJECTED_KEPT  # offending lines shown per kind; the counts are always complete


class BulkChangeCreation:
    """The ``new/`` and ``new/confirm/`` views of BulkChangeAdmin (which routes them)."""

    admin_site: Any
    opts: Any

    def has_create_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bulkchanges.add_bulkchange")

    def new_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_create_permission(request):
            raise PermissionDenied
        target = TargetForm(request.GET or None, tenants=operator_tenants(request))
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "New bulk change",
            "target_form": target,
        }
        if not target.is_valid():
            return TemplateResponse(request, "admin/bulkchanges/bulkchange/new.html", context)
        tenant: Tenant = target.cleaned_data["tenant"]
        integration: str = target.cleaned_data["integration"]
        form = (
            NewBulkChangeForm(
                request.POST,
                request.FILES,
                tenant=tenant,
                integration=integration,
                upload_refusal=upload_refusal(request),
            )
            if request.method == "POST"
            else NewBulkChangeForm(tenant=tenant, integration=integration)
        )
        context.update(
            tenant=tenant,
            integration=integration,
            integration_label=Integration(integration).label,
            form=form,
            has_credentials=form.has_credentials,
            rev_fields=[form[name] for name in NewBulkChangeForm.REV_FIELDS],
            option_fields=[form[name] for name in form.option_field_names],
        )
        if request.method == "POST" and form.is_valid():
            preview = self._preview(request, form)
            if preview is not None:
                context.update(preview)
                context["title"] = "Preview the new bulk change"
                return TemplateResponse(
                    request, "admin/bulkchanges/bulkchange/new_preview.html", context
                )
        return TemplateResponse(request, "admin/bulkchanges/bulkchange/new.html", context)

    def _preview(self, request: HttpRequest, form: NewBulkChangeForm) -> dict[str, Any] | None:
        """Parse the list and validate the request; on success keep both as a draft and
        return the preview's context, else put the problems on the form and return None."""
        devices_field = "devices_file" if form.cleaned_data.get("devices_file") else "devices_text"
        try:
            parsed = parse_device_list(
                form.devices_content(), max_devices=settings.BULKCHANGE_MAX_DEVICES_PER_REQUEST
            )
        except TooManyDevices as error:
            form.add_error(devices_field, f"The device list has {error}.")
            return None
        except DeviceListError as error:
            form.add_error(devices_field, f"The device list cannot be read: {error}.")
            return None
        cleaned = form.cleaned_data
        try:
            rev_credentials = cleaned.get("rev_credentials")
            if form.wants_rev and rev_credentials is None:
                rev_credentials = credentials_resolve(
                    tenant=form.tenant, integration=Integration.REV, credentials_id=None
                )
            post_update = cleaned.get("post_update_status")
            request_kwargs: dict[str, Any] = {
                "credentials_id": cleaned["credentials"].pk,
                "update_status": cleaned["update_status"],
                "is_ignore_current_status": bool(cleaned.get("is_ignore_current_status")),
                "post_update_status": post_update.code if post_update else None,
                "account_number": cleaned.get("account_number", "").strip(),
                "options": form.options(),
                "rev_service": form.rev_service(
                    rev_credentials_id=rev_credentials.pk if rev_credentials else None
                ),
            }
            validated = status_update_request_validate(
                tenant=form.tenant, integration=form.integration, **request_kwargs
            )
        except ApplicationError as error:
            self._form_errors(form, error, devices_field=devices_field)
            return None
        try:
            gates = bulk_change_gates(
                tenant=form.tenant,
                validated=validated,
                device_count=len(parsed.devices),
                scheduled_for=cleaned.get("scheduled_for"),
            )
        except ApplicationError as error:
            form.add_error("scheduled_for", error.detail[:1].upper() + error.detail[1:] + ".")
            return None
        preview = device_list_preview(
            tenant=form.tenant, integration=form.integration, parsed=parsed
        )
        draft: Draft | None = None
        if preview.devices:
            draft = draft_save(
                request.session,
                tenant_id=form.tenant.pk,
                integration=form.integration,
                request=request_kwargs,
                devices=preview.devices,
                scheduled_for=gates.scheduled_for,
            )
        return {
            "preview": preview,
            "draft": draft,
            "gates": gates,
            "gates_scheduled_for": display.timestamp(gates.scheduled_for),
            "request_lines": display.describe_request(
                validated.request, integration=form.integration
            ),
            "counts": {
                "valid": len(preview.devices),
                "duplicates": preview.duplicate_count,
                "malformed": preview.malformed_count,
                "unknown": len(preview.unknown_iccids),
            },
            "shown": PREVIEW_LINES,
            "duplicates_shown": preview.duplicates[:PREVIEW_LINES],
            "malformed_shown": preview.malformed[:PREVIEW_LINES],
            "unknown_shown": preview.unknown_iccids[:PREVIEW_LINES],
            "back_url": self._new_url(form.tenant.pk, form.integration),
        }

    def _form_errors(
        self, form: NewBulkChangeForm, error: ApplicationError, *, devices_field: str
    ) -> None:
        placed = False
        for name, problems in error.fields.items():
            field = SERVICE_FIELDS.get(name, None)
            if field == "devices_file":
                field = devices_field
            for problem in problems:
                form.add_error(field, f"{problem}" if field else f"{name}: {problem}")
                placed = True
        if not placed or not error.fields:
            form.add_error(None, error.detail)
        elif error.detail:
            form.add_error(None, error.detail[:1].upper() + error.detail[1:] + ".")

    def _new_url(self, tenant_id: int, integration: str) -> str:
        query = urlencode({"tenant": str(tenant_id), "integration": integration})
        return f"{reverse('admin:bulkchanges_bulkchange_new')}?{query}"

    def new_confirm_view(self, request: HttpRequest) -> HttpResponse:
        """Create and queue the previewed bulk change (re-validating its request)."""
        if not self.has_create_permission(request):
            raise PermissionDenied
        token = request.POST.get("draft", "")
        draft = draft_load(request.session, token)
        if draft is None:
            messages.error(
                request,
                "This preview is no longer available (it was confirmed already, or replaced by "
                "a newer preview). Nothing was created; upload the list again.",
            )
            return HttpResponseRedirect(reverse("admin:bulkchanges_bulkchange_new"))
        # The operator may have left the draft's tenant since the preview.
        tenant = get_object_or_404(operator_tenants(request), pk=draft.tenant_id)
        try:
            validated = status_update_request_validate(
                tenant=tenant, integration=draft.integration, **draft.validate_kwargs()
            )
            bulk_change, created = bulk_change_create(
                tenant=tenant,
                created_by=actor(request),
                validated=validated,
                devices=draft.device_refs(),
                idempotency_key=draft.idempotency_key,
                scheduled_for=draft.scheduled_for_moment,
            )
        except ApplicationError as error:
            messages.error(request, f"Nothing was created: {error}")
            return HttpResponseRedirect(self._new_url(draft.tenant_id, draft.integration))
        draft_discard(request.session)
        if created:
            history_record(
                request,
                bulk_change,
                f"Created: {draft.device_count} devices to {validated.request.update_status} "
                f"on {draft.integration}, {bulk_change.status}",
                added=True,
            )
            messages.success(
                request,
                f"Bulk change {bulk_change.pk} {_first_status_words(bulk_change)}: "
                f"{draft.device_count} devices to {validated.request.update_status} on "
                f"{draft.integration}.",
            )
        return HttpResponseRedirect(display.bulk_change_url(bulk_change.pk))


def _first_status_words(bulk_change: BulkChange) -> str:
    """How the success message names where the new bulk change stands."""
    if bulk_change.status == BulkChange.Status.AWAITING_APPROVAL:
        return f"awaits approval (because {bulk_change.approval_reason})"
    if bulk_change.status == BulkChange.Status.SCHEDULED and bulk_change.scheduled_for:
        return f"scheduled for {bulk_change.scheduled_for:%Y-%m-%d %H:%M} UTC"
    return "queued"
