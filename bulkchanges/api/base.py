"""What every partner API view shares: API key authentication, the caller's tenant scope and
role, per-key throttling, JSON out, strict query parameters and page numbers, and the lookup of
the bulk change a URL names (another tenant's is a 404)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter
from rest_framework import generics
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from bulkchanges.api.auth import (
    IsPartner,
    PartnerApiKeyAuthentication,
    PartnerApiKeyThrottle,
    partner_scope,
)
from bulkchanges.api.filters import MAX_ID
from bulkchanges.api.parsers import BoundedJSONParser
from bulkchanges.api.serializers import BulkChangeDetailSerializer
from bulkchanges.errors import ApplicationError, NotFound
from bulkchanges.models import BulkChange
from bulkchanges.selectors import bulk_change_progress
from bulkchanges.services import bulk_change_get

TAG = "bulk changes"  # the OpenAPI tag of every bulk change operation
# The path's bulk change id; ids are 64-bit, larger numbers are refused, not sent to the database.
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
    """API key auth, tenant scope, roles, per-key throttling, JSON out."""

    authentication_classes = [PartnerApiKeyAuthentication]
    permission_classes = [IsPartner]
    throttle_classes = [PartnerApiKeyThrottle]
    # The key role this view needs (PartnerApiKey.Role); None: read to read, submit to write.
    required_role: str | None = None
    renderer_classes = [JSONRenderer]
    parser_classes = [BoundedJSONParser]
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
