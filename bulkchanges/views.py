"""Views outside the admin and the partner API: the load balancer's health check and the
carriers' inbound callbacks."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from bulkchanges import sqs
from bulkchanges.services.callbacks import (
    MAX_CALLBACK_BODY_BYTES,
    callback_receive,
    callback_receive_oversized,
)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """DB, queue reachability and a django-q2 cluster heartbeat; 503 when any is down."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = f"error: {type(error).__name__}"
    try:
        sqs.queue_depth()
        checks["queue"] = "ok"
    except Exception as error:
        checks["queue"] = f"error: {type(error).__name__}"
    try:
        from django_q.status import Stat

        stats = Stat.get_all()
        recent = [
            s for s in stats if s.timestamp and timezone.now() - s.timestamp < timedelta(seconds=60)
        ]
        checks["cluster"] = "ok" if recent else "error: no cluster heartbeat in 60 s"
    except Exception as error:
        checks["cluster"] = f"error: {type(error).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "degraded", "checks": checks},
        status=200 if healthy else 503,
    )


@csrf_exempt
@require_http_methods(["GET", "POST"])
def carrier_callback(request: HttpRequest, integration: str, credentials_id: int) -> JsonResponse:
    """``/carriers/<integration>/callbacks/<credentials-id>/``: a carrier tells us a request it
    accepted has completed (docs/carriers/README.md). Authenticated by the carrier's own means,
    stored, answered at once; no carrier call is made here."""
    length = request.META.get("CONTENT_LENGTH") or "0"
    if length.isdigit() and int(length) > MAX_CALLBACK_BODY_BYTES:
        answer = callback_receive_oversized()
    else:
        answer = callback_receive(
            integration=integration,
            credentials_id=credentials_id,
            method=request.method or "POST",
            path=request.get_full_path(),
            query={key: request.GET.get(key, "") for key in request.GET},
            body=request.body,
            remote_addr=request.META.get("REMOTE_ADDR", ""),
        )
    return JsonResponse(dict(answer.body), status=answer.status)
