"""Partner API for the gates before the queue (docs/operator-features.md): approve or reject a
bulk change awaiting approval (a key with the approve role, never the creator's own user), and
reschedule one that has not started (submit role). Each parses, calls one service, renders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from bulkchanges.api.auth import Role, partner_scope
from bulkchanges.api.base import ID, TAG, PartnerApi
from bulkchanges.api.schema import errors
from bulkchanges.api.serializers import AwareDateTimeField, BulkChangeDetailSerializer
from bulkchanges.models import BulkChange
from bulkchanges.services.approvals import MAX_NOTE, bulk_change_approve, bulk_change_reject
from bulkchanges.services.scheduling import bulk_change_reschedule


class DecisionSerializer(serializers.Serializer):
    note = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=MAX_NOTE,
        help_text="Why: kept with the decision and in the audit log.",
    )


class RescheduleSerializer(serializers.Serializer):
    scheduled_for = AwareDateTimeField(
        help_text="The new start (ISO 8601 with a UTC offset), at most "
        "BULKCHANGE_MAX_SCHEDULE_DAYS (180) days ahead, at most a minute in the past. Now (or "
        "that last minute) releases a scheduled bulk change to the queue at once."
    )


class DecisionApi(PartnerApi):
    """Approve or reject: a key with the approve role; the service refuses the creator."""

    required_role = Role.APPROVE

    def decide(self, request: Request, service: Callable[..., BulkChange]) -> Response:
        bulk_change = self.bulk_change()  # another tenant's is a 404, before any 400
        body = DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        bulk_change = service(
            bulk_change=bulk_change,
            actor=partner_scope(request).actor,
            note=body.validated_data["note"],
        )
        return Response(self.render_detail(bulk_change))


class BulkChangeApproveApi(DecisionApi):
    """Approve another user's bulk change."""

    @extend_schema(
        tags=[TAG],
        summary="Approve a bulk change awaiting approval",
        description="Four-eyes approval: a bulk change with a destructive target or more "
        "devices than the tenant's approval threshold waits in AWAITING_APPROVAL until a key "
        "with the `approve` role of a different user approves it. It is then QUEUED, or "
        "SCHEDULED while its `scheduled_for` is ahead. 403: the key lacks the approve role, or "
        "its user created the bulk change; 409: it is not awaiting approval (another decision "
        "came first).",
        parameters=[ID],
        request=DecisionSerializer,
        responses={200: BulkChangeDetailSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.decide(request, bulk_change_approve)


class BulkChangeRejectApi(DecisionApi):
    """Reject another user's bulk change."""

    @extend_schema(
        tags=[TAG],
        summary="Reject a bulk change awaiting approval",
        description="The bulk change becomes CANCELLED with every device; no carrier call was "
        "made. Same rules as approve (403: role or own user; 409: already decided).",
        parameters=[ID],
        request=DecisionSerializer,
        responses={200: BulkChangeDetailSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.decide(request, bulk_change_reject)


class BulkChangeRescheduleApi(PartnerApi):
    """Move a scheduled bulk change to another time."""

    @extend_schema(
        tags=[TAG],
        summary="Reschedule a bulk change that has not started",
        description="Only a SCHEDULED bulk change, or one AWAITING_APPROVAL, can be "
        "rescheduled (else 409).",
        parameters=[ID],
        request=RescheduleSerializer,
        responses={200: BulkChangeDetailSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        bulk_change = self.bulk_change()  # another tenant's is a 404, before any 400
        body = RescheduleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        bulk_change = bulk_change_reschedule(
            bulk_change=bulk_change,
            actor=partner_scope(request).actor,
            scheduled_for=body.validated_data["scheduled_for"],
        )
        return Response(self.render_detail(bulk_change))
