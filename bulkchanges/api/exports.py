"""The devices of a bulk change as CSV (``export.csv``), filterable like the devices list and
streamed from a server-side cursor in constant memory."""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from bulkchanges.api import selectors
from bulkchanges.api.base import ID, TAG, PartnerApi
from bulkchanges.api.filters import ICCID_FRAGMENT_SCHEMA, DeviceChangeFilter
from bulkchanges.api.schema import errors
from bulkchanges.errors import ApplicationError
from bulkchanges.models import DeviceChange
from bulkchanges.selectors import DEVICE_CHANGE_OUTCOME
from bulkchanges.services.exports import csv_lines, export_header

# The DeviceChange fields exported, in order.
EXPORT_FIELDS = (*DEVICE_CHANGE_OUTCOME, "rev_service_id")
EXPORT_COLUMNS = export_header(EXPORT_FIELDS)


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
        rows = filterset.qs.values_list(*EXPORT_FIELDS)
        # A server-side cursor: constant memory for any bulk change.
        lines = csv_lines(EXPORT_COLUMNS, rows.iterator(chunk_size=2000))
        response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="bulk-change-{bulk_change.pk}.csv"'
        return response
