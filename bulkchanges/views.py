"""Views outside the admin and the partner API: the load balancer's health check and the
carriers' inbound callbacks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from bulkchanges import heartbeats
from bulkchanges.selectors import SqsStatus, sqs_status_get
from bulkchanges.services.callbacks import (
    MAX_CALLBACK_BODY_BYTES,
    callback_receive,
    callback_receive_oversized,
)

# A process whose youngest heartbeat is older than this is reported down.
HEARTBEAT_STALE = timedelta(seconds=60)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The database, the queue, a django-q2 cluster heartbeat, the ``poll_sqs`` and
    ``run_reaper`` heartbeats and the dead-letter queue.

    ``checks`` maps each to ``"ok"`` or ``"error: …"`` — or, for the dead-letter queue only,
    ``"warning: …"`` (messages are waiting there) or ``"unknown: …"`` (no DLQ configured, or
    SQS unreachable: the queue check says so). ``details`` holds each check's figures: the
    heartbeats' ``age_seconds``, the DLQ's ``depth`` and ``oldest_age_seconds``. 503 when any
    check is an error; dead letters are a problem for staff to look at, not an outage for the
    load balancer, so they only add to ``warnings`` and keep the status 200."""
    now = timezone.now()
    checks: dict[str, str] = {}
    details: dict[str, dict[str, Any]] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = f"error: {type(error).__name__}"
    status = sqs_status_get()
    checks["queue"] = "ok" if status.queue_depth is not None else f"error: {status.error}"
    details["queue"] = {"depth": dict(status.queue_depth or {})}
    checks["cluster"], details["cluster"] = _cluster_check(now)
    checks["poller"], details["poller"] = _process_check(heartbeats.POLLER, HEARTBEAT_STALE, now)
    checks["reaper"], details["reaper"] = _process_check(heartbeats.REAPER, _reaper_stale(), now)
    checks["dead_letter_queue"], details["dead_letter_queue"] = _dead_letter_check(status, now)
    healthy = not any(value.startswith("error") for value in checks.values())
    return JsonResponse(
        {
            "status": "ok" if healthy else "degraded",
            "checks": checks,
            "details": details,
            "warnings": [name for name, value in checks.items() if value.startswith("warning")],
        },
        status=200 if healthy else 503,
    )


def _cluster_check(now: datetime) -> tuple[str, dict[str, Any]]:
    try:
        from django_q.status import Stat

        beats = [stat.timestamp for stat in Stat.get_all() if stat.timestamp]
    except Exception as error:
        return f"error: {type(error).__name__}", {"age_seconds": None}
    age = (now - max(beats)).total_seconds() if beats else None
    if age is None or age >= HEARTBEAT_STALE.total_seconds():
        return "error: no cluster heartbeat in 60 s", {"age_seconds": age}
    return "ok", {"age_seconds": round(max(0.0, age), 1)}


def _process_check(kind: str, stale: timedelta, now: datetime) -> tuple[str, dict[str, Any]]:
    """A long-running process's heartbeat (``bulkchanges.heartbeats``): an error when none of
    its kind beat within ``stale``."""
    try:
        state = heartbeats.heartbeat_state(kind=kind, fresh=stale, now=now)
    except Exception as error:
        return f"error: {type(error).__name__}", {"age_seconds": None}
    age = state.age_seconds(now)
    figures = {
        "age_seconds": None if age is None else round(age, 1),
        "processes": state.processes,
        "detail": state.detail,
    }
    if age is None or age >= stale.total_seconds():
        return f"error: no {kind} heartbeat in {stale.total_seconds():.0f} s", figures
    return "ok", figures


def _reaper_stale() -> timedelta:
    """Four missed passes, and never less than the other heartbeats' minute."""
    interval = float(settings.BULKCHANGE_REAPER_INTERVAL_SECONDS)
    return max(HEARTBEAT_STALE, timedelta(seconds=4 * interval))


def _dead_letter_check(status: SqsStatus, now: datetime) -> tuple[str, dict[str, Any]]:
    age = status.oldest_dead_letter_age(now)
    figures = {
        "depth": status.dead_letters,
        "oldest_age_seconds": None if age is None else round(age),
    }
    if not status.dlq_configured:
        return "unknown: no dead-letter queue configured", figures
    if status.dead_letters is None:
        return "unknown: SQS unreachable", figures
    if status.dead_letters:
        oldest = f", oldest {round(age)} s" if age is not None else ""
        return f"warning: {status.dead_letters} messages{oldest}", figures
    return "ok", figures


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
