"""The health probes ``/livez``, ``/readyz`` and ``/healthz`` (docs/operations/health.md).

They answer in :class:`HealthProbeMiddleware`, early in MIDDLEWARE, before anything reads the
Host header or redirects to https: load balancers and orchestrators probe a web process by its
address or an internal name (which ALLOWED_HOSTS would turn into a 400) and over plain http
(which the TLS redirect would turn into a 301). Everything the probes answer is fixed JSON that
never echoes the request, so skipping host validation for them gives a forged Host header
nothing to work with; every other path goes through the full middleware stack as before.

- ``/livez``: the process is up and serving; touches nothing (restart the process when not).
- ``/readyz``: the database answers ``SELECT 1`` within PONDOPS_HEALTH_TIMEOUT_SECONDS; what a
  load balancer routes on. Deliberately blind to SQS, Redis and the workers: a web host that
  cannot reach those still serves the admin and the API, and taking every host out of service
  for a queue outage turns a delay into an outage.
- ``/healthz``: everything, for monitoring; never a load-balancer check.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.utils import load_backend
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.utils import timezone

from bulkchanges import heartbeats
from bulkchanges.selectors import SqsStatus, sqs_status_get

logger = logging.getLogger(__name__)

# A process whose youngest heartbeat is older than this is reported down.
HEARTBEAT_STALE = timedelta(seconds=60)
PROBE_METHODS = ("GET", "HEAD")


# --- The database, within a deadline ---------------------------------------------------------


@dataclass(eq=False)
class _Attempt:
    done: threading.Event = field(default_factory=threading.Event)
    result: str = "error: no answer"


class _DatabaseProbe:
    """``SELECT 1`` on a connection of its own, answered within a deadline whatever the
    database does.

    The driver's own timeouts bound most failures — PostgreSQL: libpq's ``connect_timeout``
    (whole seconds, at least 2) and a ``statement_timeout``; SQLite: the busy timeout, which
    bounds the wait for a locked file — but not a server that accepted the connection and then
    stopped answering. So the query runs on a daemon thread and the probe waits at most the
    deadline for it. One attempt at a time per process: a probe arriving while one is in
    flight waits for that one's answer instead of starting another, so a hung database holds
    at most one thread per process, however often it is probed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: _Attempt | None = None

    def check(self, *, timeout: float) -> str:
        with self._lock:
            attempt = self._current
            if attempt is None:
                attempt = self._current = _Attempt()
                threading.Thread(
                    target=self._run,
                    args=(attempt, timeout),
                    name="pondops-database-probe",
                    daemon=True,
                ).start()
        if not attempt.done.wait(timeout):
            return f"error: no answer within {timeout:g} s"
        return attempt.result

    def _run(self, attempt: _Attempt, timeout: float) -> None:
        try:
            database_select_one(timeout=timeout)
            attempt.result = "ok"
        except Exception as error:
            # The type only: the message names hosts, ports and users, and the probes are
            # public. The log has the rest.
            logger.warning("health probe: database check failed: %s", error)
            attempt.result = f"error: {type(error).__name__}"
        finally:
            with self._lock:
                if self._current is attempt:
                    self._current = None
            attempt.done.set()


_database_probe = _DatabaseProbe()


def database_select_one(*, timeout: float) -> None:
    """``SELECT 1`` on a new connection to the default database with short driver timeouts,
    closed afterwards. A new connection, not the request's: the request's has the deployment's
    (long) timeouts, and a probe must not leave a connection in a bad state for the next
    request."""
    params = dict(connections[DEFAULT_DB_ALIAS].settings_dict)
    options = dict(params.get("OPTIONS") or {})
    vendor = params["ENGINE"]
    if "postgresql" in vendor:
        options["connect_timeout"] = max(2, math.ceil(timeout))  # libpq: whole seconds, ≥ 2
    elif "sqlite" in vendor:
        options["timeout"] = timeout
    params["OPTIONS"] = options
    wrapper = load_backend(params["ENGINE"]).DatabaseWrapper(params, DEFAULT_DB_ALIAS)
    try:
        with wrapper.cursor() as cursor:
            if wrapper.vendor == "postgresql":
                # A SET, not a startup "options" parameter: poolers such as PgBouncer refuse those.
                cursor.execute("SET statement_timeout = %s", [max(1, int(timeout * 1000))])
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        wrapper.close()


def database_check() -> str:
    """``"ok"`` or ``"error: …"`` within PONDOPS_HEALTH_TIMEOUT_SECONDS."""
    return _database_probe.check(timeout=float(settings.PONDOPS_HEALTH_TIMEOUT_SECONDS))


# --- Redis -----------------------------------------------------------------------------------


def redis_check() -> str:
    """PING the REDIS_URL server (the broker, the shared cache and the limiters) with connect
    and read timeouts of PONDOPS_HEALTH_TIMEOUT_SECONDS; ``"unknown: …"`` without REDIS_URL
    (the database stands in for all three)."""
    if not settings.REDIS_URL:
        return "unknown: REDIS_URL not set (the database is the broker, cache and limiter)"
    import redis

    timeout = float(settings.PONDOPS_HEALTH_TIMEOUT_SECONDS)
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=timeout, socket_timeout=timeout
    )
    try:
        client.ping()
    except Exception as error:  # the type only: the message may name the server
        logger.warning("health probe: Redis PING failed: %s", error)
        return f"error: {type(error).__name__}"
    finally:
        client.close()
    return "ok"


# --- The probes ------------------------------------------------------------------------------


def livez() -> JsonResponse:
    """The process is up and serving requests. Reads nothing; never 503."""
    return JsonResponse({"status": "ok"})


def readyz() -> JsonResponse:
    """What a load balancer routes on: 200 while the database answers, else 503 with the
    reason in ``checks.database``. Nothing else — not SQS, Redis, the workers' heartbeats or
    the dead-letter queue — can take a web host out of service."""
    database = database_check()
    ready = database == "ok"
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": {"database": database}},
        status=200 if ready else 503,
    )


def healthz() -> JsonResponse:
    """Everything, for monitoring and alerting — **never a load balancer's check**: SQS or a
    worker being down makes it 503 on every web host at once, and routing on that would take
    the admin and the API down with the queue.

    The database, Redis, the queue, a django-q2 cluster heartbeat, the ``poll_sqs`` and
    ``run_reaper`` heartbeats and the dead-letter queue. ``checks`` maps each to ``"ok"`` or
    ``"error: …"`` — or ``"unknown: …"`` (Redis not configured; no DLQ configured, or SQS
    unreachable: the queue check says so) or, for the dead-letter queue only, ``"warning: …"``
    (messages are waiting there). ``details`` holds each check's figures: the heartbeats'
    ``age_seconds``, the DLQ's ``depth`` and ``oldest_age_seconds``. 503 when any check is an
    error; dead letters are a problem for staff to look at, not an outage, so they only add to
    ``warnings`` and keep the status 200."""
    now = timezone.now()
    checks: dict[str, str] = {}
    details: dict[str, dict[str, Any]] = {}
    checks["database"] = database_check()
    checks["redis"] = redis_check()
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


# --- Answering before host validation --------------------------------------------------------

PROBES: dict[str, Callable[[], JsonResponse]] = {
    "/livez": livez,
    "/readyz": readyz,
    "/healthz": healthz,
}


class HealthProbeMiddleware:
    """Answers the three probe paths itself, early in MIDDLEWARE (see the module docstring):
    no Host check, no TLS redirect, no session, CSRF or authentication. GET and HEAD only
    (HEAD: the same status and headers, no body); any other method is a 405. ``Cache-Control:
    no-store``, so that no proxy or CDN between the prober and the process ever answers for
    the process."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        probe = PROBES.get(request.path_info)
        if probe is None:
            return self.get_response(request)
        response: HttpResponse
        if request.method not in PROBE_METHODS:
            response = HttpResponse(status=405)
            response["Allow"] = ", ".join(PROBE_METHODS)
        else:
            response = probe()
        response["Cache-Control"] = "no-store"
        if request.method == "HEAD":  # what GET would send, less the body (RFC 9110 9.3.2)
            length = len(response.content)
            response.content = b""
            response["Content-Length"] = str(length)
        return response
