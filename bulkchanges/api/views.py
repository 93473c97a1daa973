"""Partner API views that read bulk changes, and the one that creates them: each parses its
input, calls one service or selector, and renders. The retry / cancel / webhook-secret
actions are in ``actions``, the CSV export in ``exports``, what they all share in ``base``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import Model, QuerySet
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from bulkchanges.api import selectors
from bulkchanges.api.auth import partner_scope
from bulkchanges.api.base import ID, TAG, PartnerApi, PartnerListApi
from bulkchanges.api.filters import BulkChangeFilter, BulkChangeLogFilter, DeviceChangeFilter
from bulkchanges.api.parsers import BoundedJSONParser
from bulkchanges.api.schema import errors
from bulkchanges.api.serializers import (
    BulkChangeCreateSerializer,
    BulkChangeDetailSerializer,
    BulkChangeLogSerializer,
    BulkChangeSerializer,
    BulkChangeUploadSerializer,
    DeviceChangeSerializer,
)
from bulkchanges.errors import ApplicationError
from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from bulkchanges.selectors import bulk_change_progress_map
from bulkchanges.services.partners import partner_bulk_change_create
from bulkchanges.uploads import FORM_FIELDS_BYTES, upload_refusal


def _check_body_size(request: Request) -> None:
    """413 before the body is read: over PONDOPS_API_MAX_BODY_BYTES, or (an upload) over
    PONDOPS_MAX_UPLOAD_BYTES plus room for the form fields. The upload handler enforces the
    file's cap again while reading, whatever the Content-Length said."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    limit = settings.PONDOPS_API_MAX_BODY_BYTES
    if request.content_type.startswith("multipart/"):
        limit = min(limit, settings.PONDOPS_MAX_UPLOAD_BYTES + FORM_FIELDS_BYTES)
    if length > limit:
        raise ApplicationError(
            f"the request body is {length:,} bytes; at most {limit:,} are accepted; split the "
            "list into several bulk changes",
            code="request_too_large",
            status=413,
        )


def _uploaded_file(request: Request) -> Any:
    """The multipart create's device list (an UploadedFile, read later as a stream)."""
    data = request.data  # parsing the body runs the upload handlers
    refusal = upload_refusal(request)
    if refusal:
        raise ApplicationError(
            refusal, code="request_too_large", fields={"file": [refusal]}, status=413
        )
    upload = BulkChangeUploadSerializer(data=data)
    upload.is_valid(raise_exception=True)
    return upload


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Makes retries safe: the same key and request return the original bulk change "
    "(200); the same key with a different request is a 409. Scoped to your tenant; at most 200 "
    "characters; kept as long as the bulk change (at least 24 h).",
)
CREATE_EXAMPLE = OpenApiExample(
    "Suspend two SIMs on POND",
    value={
        "integration": "POND",
        "target_status": "Suspended",
        "callback_url": "https://partner.example/pondops/webhook",
        "devices": [{"iccid": "89148000000000000001"}, {"iccid": "89148000000000000002"}],
    },
    request_only=True,
)


class BulkChangeListCreateApi(PartnerListApi):
    """List the bulk changes of your tenant, or create one."""

    serializer_class = BulkChangeSerializer
    filterset_class = BulkChangeFilter
    parser_classes = [BoundedJSONParser, MultiPartParser]

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return BulkChange.objects.none()
        return selectors.bulk_changes_visible(tenant=partner_scope(self.request).tenant)

    @extend_schema(
        tags=[TAG],
        summary="List bulk changes",
        responses={200: BulkChangeSerializer(many=True), **errors(400, 404)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = list(page if page is not None else queryset)
        progress = bulk_change_progress_map(bulk_change_ids=[row.pk for row in rows])
        data = BulkChangeSerializer(
            rows, many=True, context={"request": request, "progress": progress}
        ).data
        return self.get_paginated_response(data)

    @extend_schema(
        tags=[TAG],
        summary="Create a bulk change",
        description="From a JSON list of devices, or a multipart upload of a CSV device list "
        "(with the other fields as form fields; options and rev_service as JSON). Validated "
        "exactly as the admin validates. The bulk change is QUEUED at once — or SCHEDULED "
        "until `scheduled_for`, or AWAITING_APPROVAL (`approval_reason` says why) when its "
        "target is destructive or it has more devices than the tenant's approval threshold.",
        parameters=[IDEMPOTENCY_KEY],
        request={
            "application/json": BulkChangeCreateSerializer,
            "multipart/form-data": BulkChangeUploadSerializer,
        },
        examples=[CREATE_EXAMPLE],
        responses={
            201: OpenApiResponse(
                BulkChangeDetailSerializer,
                description="Created: queued, scheduled or awaiting approval (its `status`).",
            ),
            200: OpenApiResponse(
                BulkChangeDetailSerializer,
                description="A repeat of an earlier request with the same Idempotency-Key: "
                "the original bulk change.",
            ),
            **errors(400, 404, 409, 413, 415),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        _check_body_size(request)
        scope = partner_scope(request)
        device_rows = device_file = None
        if request.content_type.startswith("multipart/"):
            fields = dict(_uploaded_file(request).validated_data)
            device_file = fields.pop("file")
        else:
            body = BulkChangeCreateSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            fields = dict(body.validated_data)
            device_rows = fields.pop("devices")
        tenant = scope.tenant_for_write(fields.pop("tenant", None))
        bulk_change, created = partner_bulk_change_create(
            tenant=tenant,
            actor=scope.actor,
            request=fields,
            device_rows=device_rows,
            device_file=device_file,
            idempotency_key=request.headers.get("Idempotency-Key", ""),
        )
        location = reverse(
            "api:bulk-change-detail", kwargs={"version": request.version, "pk": bulk_change.pk}
        )
        headers = {"Location": location}
        if not created:
            headers["Idempotent-Replayed"] = "true"
        return Response(
            self.render_detail(bulk_change), status=201 if created else 200, headers=headers
        )


class BulkChangeDetailApi(PartnerApi):
    """One bulk change: status, progress counts per device status, timing and webhook state."""

    @extend_schema(
        tags=[TAG],
        summary="A bulk change with its progress and timing",
        parameters=[ID],
        responses={200: BulkChangeDetailSerializer, **errors(404)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(self.render_detail(self.bulk_change()))


class BulkChangeRowsApi(PartnerListApi):
    """A paginated, filterable list of one bulk change's rows (its devices, its log), found
    through the caller's scope: another tenant's bulk change is a 404. Each list names its
    ``model`` and the selector of its rows, and is documented by :func:`rows_schema`."""

    model: type[Model]
    rows_of: Callable[[BulkChange], QuerySet[Any]]

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return self.model._default_manager.none()
        return self.rows_of(self.bulk_change())


_RowsApi = TypeVar("_RowsApi", bound=type[BulkChangeRowsApi])


def rows_schema(summary: str, serializer: type[Serializer]) -> Callable[[_RowsApi], _RowsApi]:
    """The OpenAPI operation of a BulkChangeRowsApi: a page of ``serializer`` rows of the
    bulk change in the path; 400 for a bad filter or page, 404 for an unknown bulk change."""
    return extend_schema_view(
        get=extend_schema(
            tags=[TAG],
            summary=summary,
            parameters=[ID],
            responses={200: serializer(many=True), **errors(400, 404)},
        )
    )


@rows_schema("The devices of a bulk change", DeviceChangeSerializer)
class BulkChangeDevicesApi(BulkChangeRowsApi):
    """The devices of a bulk change, filterable by status and ICCID, paginated."""

    model = DeviceChange
    serializer_class = DeviceChangeSerializer
    filterset_class = DeviceChangeFilter

    def rows_of(self, bulk_change: BulkChange) -> QuerySet[DeviceChange]:
        return selectors.device_changes_of(bulk_change=bulk_change)


@rows_schema(
    "The audit log of a bulk change (newest first, secrets redacted)", BulkChangeLogSerializer
)
class BulkChangeLogsApi(BulkChangeRowsApi):
    """The audit log of a bulk change, newest first, paginated; secrets redacted."""

    model = BulkChangeLog
    serializer_class = BulkChangeLogSerializer
    filterset_class = BulkChangeLogFilter

    def rows_of(self, bulk_change: BulkChange) -> QuerySet[BulkChangeLog]:
        return selectors.logs_of(bulk_change=bulk_change)
