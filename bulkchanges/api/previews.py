"""Partner API for previews (dry runs) and reverts (docs/operator-features.md): create a preview
of a request or of a bulk change, read it and its devices, create a bulk change from it; a
revert preview of a finished bulk change and the revert created from it. Each view parses its
input, calls one service and renders; every lookup is scoped to the key's tenant (another
tenant's id is a 404)."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from bulkchanges.api.auth import partner_scope
from bulkchanges.api.base import ID, PartnerApi, PartnerListApi
from bulkchanges.api.filters import MAX_ID, IccidFilter, StrictFilterSet
from bulkchanges.api.schema import errors
from bulkchanges.api.serializers import BulkChangeCreateSerializer, BulkChangeDetailSerializer
from bulkchanges.api.views import IDEMPOTENCY_KEY
from bulkchanges.errors import ApplicationError, NotFound
from bulkchanges.models import Preview, PreviewDevice
from bulkchanges.services.partners import IDEMPOTENCY_KEY_MAX
from bulkchanges.services.previews import (
    partner_preview_create,
    preview_bulk_change_create,
    preview_get,
    preview_of_bulk_change_create,
    preview_progress,
)
from bulkchanges.services.reverts import revert_create, revert_preview_create
from bulkchanges.services.webhooks import callback_url_validate

TAG = "previews and reverts"
PREVIEW_ID = OpenApiParameter(
    "id",
    {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    OpenApiParameter.PATH,
    description="Preview id",
)


# --- Serializers -----------------------------------------------------------------------------


class PreviewCreateSerializer(BulkChangeCreateSerializer):
    """The same body as a bulk change's create (JSON); ``callback_url`` is not used."""


class PreviewProgressSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    read = serializers.IntegerField(help_text="Devices with a verdict.")
    percent = serializers.IntegerField(help_text="read / total, in percent.")
    counts = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Devices per verdict (only the verdicts some device has).",
    )


class PreviewSerializer(serializers.ModelSerializer):
    """A preview with its progress and verdict counts, and what was created from it."""

    status = serializers.ChoiceField(choices=Preview.Status.choices)
    target_status = serializers.CharField(
        help_text="The request's target (a revert's devices each have their own)."
    )
    credentials = serializers.IntegerField(source="integration_authentication_id")
    bulk_change = serializers.IntegerField(
        source="bulk_change_id", allow_null=True, help_text="The bulk change previewed, if any."
    )
    revert_of = serializers.IntegerField(
        source="revert_of_id", allow_null=True, help_text="A revert preview: the bulk change."
    )
    error = serializers.CharField(source="error_text")
    progress = serializers.SerializerMethodField()
    bulk_changes = serializers.SerializerMethodField()

    class Meta:
        model = Preview
        fields: tuple[str, ...] = (
            "id",
            "tenant",
            "integration",
            "credentials",
            "target_status",
            "status",
            "bulk_change",
            "revert_of",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "error",
            "request",
            "progress",
            "bulk_changes",
        )
        read_only_fields = fields

    @extend_schema_field(PreviewProgressSerializer)
    def get_progress(self, preview: Preview) -> dict[str, Any]:
        progress = preview_progress(preview_id=preview.pk)
        return {
            "total": progress.total,
            "read": progress.read,
            "percent": progress.percent,
            "counts": progress.counts,
        }

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_bulk_changes(self, preview: Preview) -> list[int]:
        """The bulk changes created from this preview (a revert: one per previous status)."""
        return list(preview.bulk_changes.order_by("pk").values_list("pk", flat=True))


class PreviewDeviceSerializer(serializers.ModelSerializer):
    verdict = serializers.ChoiceField(
        choices=PreviewDevice.Verdict.choices, allow_blank=True, help_text='"" while not read.'
    )

    class Meta:
        model = PreviewDevice
        fields = (
            "id",
            "iccid",
            "msisdn",
            "eid",
            "target_status",
            "status_read",
            "verdict",
            "message",
            "rev_service_id",
            "read_at",
        )
        read_only_fields = fields


class PreviewBulkChangeSerializer(serializers.Serializer):
    include_already_in_target = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Also the devices already in the target (the run skips them unless the "
        "request sets is_ignore_current_status).",
    )
    callback_url = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=500,
        help_text="https URL to POST the signed completion summary to.",
    )


class RevertResultSerializer(serializers.Serializer):
    bulk_changes = BulkChangeDetailSerializer(many=True)


class PreviewDeviceFilter(StrictFilterSet):
    verdict = django_filters.MultipleChoiceFilter(
        choices=PreviewDevice.Verdict.choices,
        help_text="One or more verdicts (repeat the parameter).",
    )
    iccid = IccidFilter(method="filter_iccid", help_text="All or part of an ICCID.")

    class Meta:
        model = PreviewDevice
        fields = ("verdict", "iccid")

    def filter_iccid(
        self, queryset: QuerySet[PreviewDevice], name: str, value: str
    ) -> QuerySet[PreviewDevice]:
        digits = "".join(value.split())
        return queryset.filter(iccid__contains=digits) if digits else queryset


# --- Views -----------------------------------------------------------------------------------


class _PreviewApi(PartnerApi):
    def preview(self) -> Preview:
        pk = int(self.kwargs["pk"])
        if pk > MAX_ID:
            raise NotFound(f"preview {pk} does not exist")
        return preview_get(preview_id=pk, tenant=partner_scope(self.request).tenant)

    def created(self, preview: Preview) -> Response:
        location = reverse(
            "api:preview-detail", kwargs={"version": self.request.version, "pk": preview.pk}
        )
        return Response(PreviewSerializer(preview).data, status=201, headers={"Location": location})


class PreviewListCreateApi(_PreviewApi, PartnerListApi):
    """List your tenant's previews, or start one."""

    serializer_class = PreviewSerializer
    query_parameters = frozenset({"page", "page_size"})

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return Preview.objects.none()
        return Preview.objects.filter(tenant=partner_scope(self.request).tenant)

    @extend_schema(
        tags=[TAG],
        summary="List previews",
        responses={200: PreviewSerializer(many=True), **errors(400, 404)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)

    @extend_schema(
        tags=[TAG],
        summary="Preview a request (dry run)",
        description="The same body as creating a bulk change. Each device's current status is "
        "read from the carrier in the background (no carrier write is ever made) and judged: "
        "WOULD_CHANGE, ALREADY_IN_TARGET, UNKNOWN_TO_CARRIER, TRANSITION_REFUSED, "
        "MISSING_IDENTIFIER or COULD_NOT_READ. Poll the preview until it is DONE.",
        request=PreviewCreateSerializer,
        examples=[
            OpenApiExample(
                "Preview suspending two SIMs on POND",
                value={
                    "integration": "POND",
                    "target_status": "Suspended",
                    "devices": [
                        {"iccid": "89148000000000000001"},
                        {"iccid": "89148000000000000002"},
                    ],
                },
                request_only=True,
            )
        ],
        responses={201: PreviewSerializer, **errors(400, 404, 413, 415)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = PreviewCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = dict(body.validated_data)
        device_rows = fields.pop("devices")
        scope = partner_scope(request)
        preview = partner_preview_create(
            tenant=scope.tenant_for_write(fields.pop("tenant", None)),
            actor=scope.actor,
            request=fields,
            device_rows=device_rows,
        )
        return self.created(preview)


class PreviewDetailApi(_PreviewApi):
    @extend_schema(
        tags=[TAG],
        summary="A preview, with its progress and verdict counts",
        parameters=[PREVIEW_ID],
        responses={200: PreviewSerializer, **errors(404)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(PreviewSerializer(self.preview()).data)


@extend_schema_view(
    get=extend_schema(
        tags=[TAG],
        summary="The devices of a preview, with their verdicts",
        parameters=[PREVIEW_ID],
        responses={200: PreviewDeviceSerializer(many=True), **errors(400, 404)},
    )
)
class PreviewDevicesApi(_PreviewApi, PartnerListApi):
    serializer_class = PreviewDeviceSerializer
    filterset_class = PreviewDeviceFilter

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return PreviewDevice.objects.none()
        return self.preview().devices.order_by("pk")


class PreviewBulkChangeApi(_PreviewApi):
    @extend_schema(
        tags=[TAG],
        summary="Create a bulk change from a preview",
        description="From a DONE preview (not a revert's): a bulk change with the devices that "
        "would change (and, if asked, those already in the target), validated and gated like "
        "any new bulk change; the run checks each device again. Idempotency-Key works as on "
        "create.",
        parameters=[PREVIEW_ID, IDEMPOTENCY_KEY],
        request=PreviewBulkChangeSerializer,
        responses={
            201: OpenApiResponse(BulkChangeDetailSerializer, description="Created."),
            200: OpenApiResponse(
                BulkChangeDetailSerializer,
                description="A repeat with the same Idempotency-Key: the original bulk change.",
            ),
            **errors(400, 404, 409),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = PreviewBulkChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > IDEMPOTENCY_KEY_MAX:
            raise ApplicationError(
                f"Idempotency-Key is longer than {IDEMPOTENCY_KEY_MAX} characters",
                fields={"Idempotency-Key": [f"at most {IDEMPOTENCY_KEY_MAX} characters"]},
            )
        bulk_change, created = preview_bulk_change_create(
            preview=self.preview(),
            actor=partner_scope(request).actor,
            include_already_in_target=body.validated_data["include_already_in_target"],
            idempotency_key=key or None,
            callback_url=callback_url_validate(body.validated_data.get("callback_url") or ""),
        )
        location = reverse(
            "api:bulk-change-detail", kwargs={"version": request.version, "pk": bulk_change.pk}
        )
        return Response(
            self.render_detail(bulk_change),
            status=201 if created else 200,
            headers={"Location": location},
        )


class BulkChangePreviewApi(_PreviewApi):
    @extend_schema(
        tags=[TAG],
        summary="Preview an existing bulk change",
        description="Reads each of its devices' current status against its request.",
        parameters=[ID],
        request=None,
        responses={201: PreviewSerializer, **errors(404)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        preview = preview_of_bulk_change_create(
            bulk_change=self.bulk_change(), actor=partner_scope(request).actor
        )
        return self.created(preview)


class BulkChangeRevertPreviewApi(_PreviewApi):
    @extend_schema(
        tags=[TAG],
        summary="Preview reverting a finished bulk change",
        description="A revert preview: each device the bulk change changed, to be set back to "
        "its previous status (read first), those left out (NOT_REVERTIBLE) and the Rev.io "
        "service each change created, which a revert does not undo (rev_service_id). Only "
        "for a bulk change in a final status (else 409).",
        parameters=[ID],
        request=None,
        responses={201: PreviewSerializer, **errors(404, 409)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        preview = revert_preview_create(
            bulk_change=self.bulk_change(), actor=partner_scope(request).actor
        )
        return self.created(preview)


class PreviewRevertApi(_PreviewApi):
    @extend_schema(
        tags=[TAG],
        summary="Create the revert from a revert preview",
        description="One bulk change per distinct previous status, with the devices that would "
        "change, `reverts` set, no RevService. Once per preview (a second call is a 409).",
        parameters=[PREVIEW_ID],
        request=None,
        responses={201: RevertResultSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        created = revert_create(preview=self.preview(), actor=partner_scope(request).actor)
        return Response(
            {"bulk_changes": [self.render_detail(bulk_change) for bulk_change in created]},
            status=201,
        )
