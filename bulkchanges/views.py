"""Operator-facing views outside the admin: the load balancer's health check."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from bulkchanges import sqs


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
