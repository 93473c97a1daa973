"""What partners do through the API beyond creating: retry a bulk change's failed devices,
cancel it, rotate their tenant's webhook signing secret. Each calls one service and answers
with the outcome (and the bulk change as it now stands)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from bulkchanges.api.auth import partner_scope
from bulkchanges.api.base import ID, TAG, PartnerApi
from bulkchanges.api.schema import errors
from bulkchanges.api.serializers import (
    CancelResultSerializer,
    RetryResultSerializer,
    RetrySerializer,
    WebhookSecretRequestSerializer,
    WebhookSecretSerializer,
)
from bulkchanges.services import bulk_change_cancel, bulk_change_retry
from bulkchanges.services.partners import tenant_webhook_secret_rotate
from bulkchanges.services.webhooks import SIGNATURE_HEADER, webhook_secret_for_receivers


class BulkChangeRetryApi(PartnerApi):
    """Re-queue failed devices."""

    @extend_schema(
        tags=[TAG],
        summary="Retry failed devices",
        description="Re-queues the bulk change's ERROR devices (or the ones listed) with a "
        "fresh retry count; each resumes after its last completed step (a change the carrier "
        "accepted resumes by confirming it). With `resubmit`, the unconfirmed ones are "
        "submitted to the carrier again.",
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
            resubmit=body.validated_data["resubmit"],
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
        description="Devices that have not sent their change to the carrier yet become "
        "CANCELLED at once (`cancelled`). Devices that already have (`finishing`) are not "
        "stopped: they run to their end, Rev.io steps included, and finish PROCESSED or ERROR; "
        "the bulk change stays `CANCELLING` until they have, then becomes `CANCELLED` and its "
        "completion webhook is sent. `status` is the bulk change's status after the call. Only "
        "bulk changes that are neither final nor already cancelling (else 409).",
        parameters=[ID],
        request=None,
        responses={200: CancelResultSerializer, **errors(404, 409)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        bulk_change = self.bulk_change()
        outcome = bulk_change_cancel(bulk_change=bulk_change, actor=partner_scope(request).actor)
        return Response(
            {
                "cancelled": outcome.cancelled,
                "finishing": outcome.finishing,
                "status": outcome.status,
                "detail": outcome.describe(),
                "bulk_change": self.render_detail(bulk_change),
            }
        )


class WebhookSecretApi(PartnerApi):
    """Rotate the tenant's webhook signing secret."""

    @extend_schema(
        tags=["webhooks"],
        summary="Rotate the webhook signing secret",
        description="Generates a new secret for your tenant and returns it once, as "
        "`whsec_<base64 key>`. Completion webhooks are signed per Standard Webhooks: "
        f"`webhook-id`, `webhook-timestamp` and `{SIGNATURE_HEADER}: v1,<base64>`, the "
        "HMAC-SHA256 of `id.timestamp.body` with the key; "
        "`standardwebhooks.Webhook(secret).verify(body, headers)` checks it.",
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
                "webhook_secret": webhook_secret_for_receivers(secret),
                "signature_header": SIGNATURE_HEADER,
                "algorithm": "HMAC-SHA256",
            },
            status=201,
        )
