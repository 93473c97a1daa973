"""Partner API views: each parses its input, calls one service or selector, and renders. Every
lookup goes through the caller's scope, so another tenant's bulk change is a 404."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse
from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import generics
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bulkchanges.api import selectors
from bulkchanges.api.auth import (
    IsPartnerOrStaff,
    PartnerTokenAuthentication,
    PartnerTokenThrottle,
    partner_scope,
)
from bulkchanges.api.filters import (
    ICCID_FRAGMENT_SCHEMA,
    BulkChangeFilter,
    BulkChangeLogFilter,
    DeviceChangeFilter,
)
from bulkchanges.api.schema import errors
from bulkchanges.api.serializers import (
    BulkChangeCreateSerializer,
    BulkChangeDetailSerializer,
    BulkChangeLogSerializer,
    BulkChangeSerializer,
    BulkChangeUploadSerializer,
    CancelResultSerializer,
    DeviceChangeSerializer,
    RetryResultSerializer,
    RetrySerializer,
    WebhookSecretRequestSerializer,
    WebhookSecretSerializer,
)
from bulkchanges.errors import ApplicationError, NotFound
from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from bulkchanges.selectors import bulk_change_progress, bulk_change_progress_map
from bulkchanges.services import bulk_change_cancel, bulk_change_get, bulk_change_retry
from bulkchanges.services.partners import partner_bulk_change_create, tenant_webhook_secret_rotate
from bulkchanges.services.webhooks import SIGNATURE_HEADER

TAG = "bulk changes"


MAX_ID = 2**63 - 1  # ids are 64-bit; larger numbers are refused, not sent to the database
ID = OpenApiParameter(
    "id",
    {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    OpenApiParameter.PATH,
    description="Bulk change id",
)


class Pagination(PageNumberPagination):
    """Page numbers, strictly: a page or page size that is not a whole number in range is a
    400 (a page past the end is a 404), never silently the first page."""

    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int | None:
        self.page_size = settings.PONDOPS_API_PAGE_SIZE
        return _query_int(request, self.page_size_query_param, self.max_page_size) or self.page_size

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        _query_int(request, self.page_query_param, None)
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["maximum"] = self.max_page_size
                parameter["description"] = (
                    f"Results per page (default {settings.PONDOPS_API_PAGE_SIZE}, "
                    f"at most {self.max_page_size})."
                )
        return parameters


def _query_int(request: Request, name: str, maximum: int | None) -> int | None:
    if name not in request.query_params:
        return None
    raw = request.query_params[name]
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1 or (maximum is not None and value > maximum):
        limit = f" from 1 to {maximum}" if maximum else " of at least 1"
        raise ApplicationError(
            f"{name} must be a whole number{limit}", fields={name: [f"not valid: {raw[:50]!r}"]}
        )
    return value


class PartnerApi(APIView):
    """Token auth, tenant scope, per-token throttling, JSON out."""

    authentication_classes = [PartnerTokenAuthentication]
    permission_classes = [IsPartnerOrStaff]
    throttle_classes = [PartnerTokenThrottle]
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]
    # Query parameters this endpoint understands; any other is a 400 (a typo such as
    # ?stauts=ERROR must not silently mean "every device").
    query_parameters: frozenset[str] = frozenset()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        unknown = sorted(set(request.query_params) - self.query_parameters)
        if unknown:
            raise ApplicationError(
                f"unknown query parameters: {', '.join(repr(name[:50]) for name in unknown)}",
                fields={name[:50]: ["unknown query parameter"] for name in unknown},
            )

    def bulk_change(self) -> BulkChange:
        pk = int(self.kwargs["pk"])
        if pk > MAX_ID:
            raise NotFound(f"bulk change {pk} does not exist")
        return bulk_change_get(bulk_change_id=pk, tenant=partner_scope(self.request).tenant)

    def render_detail(self, bulk_change: BulkChange) -> dict[str, Any]:
        progress = bulk_change_progress(bulk_change_id=bulk_change.pk)
        context = {"request": self.request, "progress": {bulk_change.pk: progress}}
        data: dict[str, Any] = BulkChangeDetailSerializer(bulk_change, context=context).data
        return data


class PartnerListApi(PartnerApi, generics.ListAPIView):
    filter_backends = [DjangoFilterBackend]
    pagination_class = Pagination

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        filters = getattr(cls, "filterset_class", None)
        if filters is not None:
            cls.query_parameters = frozenset({*filters.base_filters, "page", "page_size"})


def _check_body_size(request: Request) -> None:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    limit = settings.PONDOPS_API_MAX_BODY_BYTES
    if length > limit:
        raise ApplicationError(
            f"the request body is {length:,} bytes; at most {limit:,} are accepted",
            code="request_too_large",
            status=413,
        )


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
    parser_classes = [JSONParser, MultiPartParser]

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
        "exactly as the admin validates; the bulk change is queued at once.",
        parameters=[IDEMPOTENCY_KEY],
        request={
            "application/json": BulkChangeCreateSerializer,
            "multipart/form-data": BulkChangeUploadSerializer,
        },
        examples=[CREATE_EXAMPLE],
        responses={
            201: OpenApiResponse(BulkChangeDetailSerializer, description="Created and queued."),
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
            upload = BulkChangeUploadSerializer(data=request.data)
            upload.is_valid(raise_exception=True)
            fields = dict(upload.validated_data)
            device_file = fields.pop("file").read()
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


class BulkChangeDevicesApi(PartnerListApi):
    """The devices of a bulk change, filterable by status and ICCID, paginated."""

    serializer_class = DeviceChangeSerializer
    filterset_class = DeviceChangeFilter

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return DeviceChange.objects.none()
        return selectors.device_changes_of(bulk_change=self.bulk_change())

    @extend_schema(
        tags=[TAG],
        summary="The devices of a bulk change",
        parameters=[ID],
        responses={200: DeviceChangeSerializer(many=True), **errors(400, 404)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class BulkChangeLogsApi(PartnerListApi):
    """The audit log of a bulk change, newest first, paginated; secrets redacted."""

    serializer_class = BulkChangeLogSerializer
    filterset_class = BulkChangeLogFilter

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return BulkChangeLog.objects.none()
        return selectors.logs_of(bulk_change=self.bulk_change())

    @extend_schema(
        tags=[TAG],
        summary="The audit log of a bulk change (newest first, secrets redacted)",
        parameters=[ID],
        responses={200: BulkChangeLogSerializer(many=True), **errors(400, 404)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class BulkChangeRetryApi(PartnerApi):
    """Re-queue failed devices."""

    @extend_schema(
        tags=[TAG],
        summary="Retry failed devices",
        description="Re-queues the bulk change's ERROR devices (or the ones listed) with a "
        "fresh retry count; each resumes after its last completed step.",
        parameters=[ID],
        request=RetrySerializer,
        responses={200: RetryResultSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = RetrySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        bulk_change = self.bulk_change()
        retried = bulk_change_retry(
            bulk_change=bulk_change,
            actor=partner_scope(request).actor,
            device_change_ids=body.validated_data.get("device_change_ids"),
        )
        return Response(
            {
                "retried": len(retried),
                "device_change_ids": retried,
                "bulk_change": self.render_detail(bulk_change),
            }
        )


class BulkChangeCancelApi(PartnerApi):
    """Cancel an open bulk change."""

    @extend_schema(
        tags=[TAG],
        summary="Cancel a bulk change",
        description="Devices not yet claimed become CANCELLED; devices in flight finish their "
        "current step and end CANCELLED. Only NEW, QUEUED or PROCESSING bulk changes (else 409).",
        parameters=[ID],
        request=None,
        responses={200: CancelResultSerializer, **errors(404, 409)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        bulk_change = self.bulk_change()
        cancelled = bulk_change_cancel(bulk_change=bulk_change, actor=partner_scope(request).actor)
        return Response({"cancelled": cancelled, "bulk_change": self.render_detail(bulk_change)})


class _Echo:
    def write(self, value: str) -> str:
        return value


EXPORT_COLUMNS = (
    "device_change_id",
    "iccid",
    "msisdn",
    "eid",
    "status",
    "attempts",
    "last_error",
    "processed_at",
    "rev_service_id",
)


def _cell(value: Any) -> Any:
    """Text cells that a spreadsheet would run as a formula are prefixed with a quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return "" if value is None else value


class CsvRenderer(BaseRenderer):
    """Declares text/csv so content negotiation accepts ``Accept: text/csv``; the CSV itself
    streams from the view."""

    media_type = "text/csv"
    format = "csv"

    def render(
        self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None
    ) -> Any:
        return JSONRenderer().render(data, "application/json", renderer_context)


class BulkChangeExportApi(PartnerApi):
    """The devices of a bulk change as CSV, streamed in constant memory."""

    renderer_classes = [JSONRenderer, CsvRenderer]
    query_parameters = frozenset(DeviceChangeFilter.base_filters)

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        # Errors are always JSON, whatever the client accepted.
        if isinstance(response, Response) and response.exception:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = "application/json"
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        tags=[TAG],
        summary="Export the devices as CSV (streamed)",
        operation_id="bulk_changes_export_csv",
        parameters=[
            ID,
            OpenApiParameter(
                "status",
                OpenApiTypes.STR,
                many=True,
                explode=True,
                enum=DeviceChange.Status.values,
                description="Only devices in these statuses (repeat the parameter).",
            ),
            OpenApiParameter(
                "iccid", ICCID_FRAGMENT_SCHEMA, description="All or part of an ICCID."
            ),
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description=f"Columns: {', '.join(EXPORT_COLUMNS)}."
            ),
            **errors(400, 404),
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> StreamingHttpResponse:
        bulk_change = self.bulk_change()
        filterset = DeviceChangeFilter(
            request.query_params, queryset=selectors.device_changes_of(bulk_change=bulk_change)
        )
        if not filterset.is_valid():
            raise ApplicationError(
                "the filters are invalid",
                fields={name: list(msgs) for name, msgs in filterset.errors.items()},
            )
        rows = filterset.qs.values_list(
            "id",
            "iccid",
            "msisdn",
            "eid",
            "status",
            "attempts",
            "last_error",
            "processed_at",
            "rev_service_id",
        )
        response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="bulk-change-{bulk_change.pk}.csv"'
        return response


def _csv_lines(rows: Any) -> Iterator[str]:
    """One line at a time from a server-side cursor: constant memory for any bulk change."""
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for row in rows.iterator(chunk_size=2000):
        yield writer.writerow([_cell(value) for value in row])


class WebhookSecretApi(PartnerApi):
    """Rotate the tenant's webhook signing secret."""

    @extend_schema(
        tags=["webhooks"],
        summary="Rotate the webhook signing secret",
        description="Generates a new secret for your tenant and returns it once. Completion "
        f"webhooks carry `{SIGNATURE_HEADER}: sha256=<hex>`, the HMAC-SHA256 of the raw body "
        "with this secret.",
        request=WebhookSecretRequestSerializer,
        responses={201: WebhookSecretSerializer, **errors(400, 404)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = WebhookSecretRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        scope = partner_scope(request)
        tenant = scope.tenant_for_write(body.validated_data.get("tenant"))
        secret = tenant_webhook_secret_rotate(tenant=tenant, actor=scope.actor)
        return Response(
            {
                "tenant": tenant.pk,
                "webhook_secret": secret,
                "signature_header": SIGNATURE_HEADER,
                "algorithm": "HMAC-SHA256",
            },
            status=201,
        )
