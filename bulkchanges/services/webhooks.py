"""Completion webhooks: when a bulk change that carries a ``callback_url`` reaches a final
status (PROCESSED, PROCESSED_WITH_ERRORS, ERROR or CANCELLED), PondOps POSTs a JSON summary to
that URL, signed per Standard Webhooks with the tenant's secret: ``webhook-id`` (the event id),
``webhook-timestamp`` (the attempt's send time, Unix seconds) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``). The signing key is the stored secret's
UTF-8 bytes; receivers are shown it as ``whsec_<base64 of the key>``
(:func:`webhook_secret_for_receivers`), the form the ``standardwebhooks`` library verifies
with. Signing the timestamp lets a receiver refuse replays (the library: older than 5 min).

Promises:
- Delivery is at-least-once; the body (with its ``event_id``) and ``webhook-id`` are fixed at
  the first attempt, so a receiver can drop repeats; each attempt is signed at its send time.
- Every attempt is a :class:`WebhookDelivery` row and one ``Completion webhook`` audit row with
  the request and the response (URL query values and the signature redacted).
- An attempt is sent at most once: the sender first wins its claim (one conditional UPDATE from
  SCHEDULED and due to SENDING); duplicate tasks and schedules are no-ops.
- Retries are ours, not django-q2's: attempt n+1 is a new row whose ``next_attempt_at`` comes
  from :func:`bulkchanges.retry.backoff_seconds` (base ``BULKCHANGE_RETRY_BASE_SECONDS``, never
  sooner than the receiver's Retry-After), written together with its one-off django-q2 schedule
  in the transaction that records attempt n's failure. After ``PONDOPS_WEBHOOK_MAX_ATTEMPTS``
  attempts PondOps gives up (logged). The sweep (a periodic schedule) re-enqueues anything a
  crash left behind, so the database is the outbox.
- Only https URLs to public addresses are accepted — unless their origin is listed in
  ``PONDOPS_WEBHOOK_EXTRA_ORIGINS`` (the tests' loopback receivers; production lists none),
  whatever ``DEBUG`` says. The address actually connected to is checked at send time (the one
  HTTP session's egress guard: resolved once, refused if not public, connected to as checked),
  so DNS that changes after the save cannot point a webhook inside PondOps' network.
- No redirect is followed. A refused address, a redirect and a permanent 4xx answer (not 408
  or 429) end the delivery at once ("gave up" with the reason); 5xx, 408, 429, timeouts and
  connection errors — a DNS failure included — are retried.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, partial
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task, schedule
from standardwebhooks import Webhook

from bulkchanges import transitions
from bulkchanges.errors import ApplicationError
from bulkchanges.models import BulkChange, WebhookDelivery
from bulkchanges.retry import backoff_seconds
from bulkchanges.selectors import bulk_change_progress, elapsed_seconds
from bulkchanges.services import logs
from integrations.base import (
    REDACTED,
    EgressPolicy,
    EgressRefused,
    address_problem,
    http_session,
    parse_retry_after,
)
from integrations.base.egress import redirect_target

logger = logging.getLogger(__name__)

SEND_TASK = "bulkchanges.services.webhooks.webhook_delivery_send"
LOG_DESCRIPTION = "Completion webhook"
EVENT = "bulk_change.completed"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
RECEIVER_SECRET_PREFIX = "whsec_"  # noqa: S105 — the scheme's prefix, not a secret
# Every final status is announced, CANCELLED included (a cancel once its devices in flight
# have ended, or a rejected approval): the partner learns how it ended and the counts —
# ``progress`` says how many changed before the cancel took effect and how many were cancelled.
ANNOUNCED = BulkChange.TERMINAL
SWEEP_BATCH = 500
MAX_RESPONSE_LOGGED = 2000

Status = WebhookDelivery.Status


# --- URLs and signatures ---------------------------------------------------------------------


def callback_url_validate(url: str) -> str:
    """The URL, if PondOps may call it: https to a host that is not a literal private, loopback
    or link-local address — or any URL on an origin of PONDOPS_WEBHOOK_EXTRA_ORIGINS; no
    credentials in it. ApplicationError with a ``callback_url`` field otherwise. (A host name
    is checked again on the address it resolves to, at every attempt.)"""
    url = (url or "").strip()
    if not url:
        return ""
    problem = ""
    parts = urlsplit(url)
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        problem = "must be a valid absolute URL"
    else:
        extra = webhook_egress_policy().is_extra(url)
        if parts.username or parts.password:
            problem = "must not contain credentials"
        elif len(url) > 500:
            problem = "must be at most 500 characters"
        elif parts.scheme == "http" and not extra:
            problem = "must use https"
        elif not extra and _literal_address_problem(parts.hostname or ""):
            problem = "must not point at a private, loopback or link-local address"
    if problem:
        raise ApplicationError(
            f"callback_url {problem}", code="invalid", fields={"callback_url": [problem]}
        )
    return url


def _literal_address_problem(host: str) -> str | None:
    """What the egress guard would refuse about a host that is an address (or ``localhost``)."""
    if host == "localhost" or host.endswith(".localhost"):
        return "a loopback"
    try:
        return address_problem(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def webhook_egress_policy() -> EgressPolicy:
    """The origins exempt from the webhook rules (PONDOPS_WEBHOOK_EXTRA_ORIGINS)."""
    return EgressPolicy.from_origins(settings.PONDOPS_WEBHOOK_EXTRA_ORIGINS)


def webhook_should_retry(status: int | None) -> bool:
    """Whether a failed attempt is worth another: no answer at all (a timeout, a connection or
    DNS failure), a 5xx, 408 or 429. Any other 4xx, and a 3xx (never followed), will answer
    the same again."""
    return status is None or status >= 500 or status in (408, 429)


def webhook_signing_key(secret: str) -> bytes:
    """The HMAC key for a tenant's stored secret: its UTF-8 bytes (one rule, whatever form
    the stored secret has)."""
    return secret.encode()


def webhook_secret_for_receivers(secret: str) -> str:
    """The stored secret as receivers use it: ``whsec_`` + base64 of the signing key, what
    ``standardwebhooks.Webhook(...)`` takes."""
    return RECEIVER_SECRET_PREFIX + base64.b64encode(webhook_signing_key(secret)).decode()


def webhook_signature_headers(
    *, secret: str, message_id: str, sent_at: datetime, body: str
) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt: ``webhook-id``, ``webhook-timestamp``
    (whole seconds of ``sent_at``) and ``webhook-signature`` over ``id.timestamp.body``."""
    signature = Webhook(webhook_signing_key(secret)).sign(
        msg_id=message_id, timestamp=sent_at, data=body
    )
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(int(sent_at.timestamp())),
        SIGNATURE_HEADER: signature,
    }


def url_for_log(url: str) -> str:
    """The URL without credentials and with query values redacted (they often carry tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    query = urlencode([(key, REDACTED) for key, _ in parse_qsl(parts.query, True)], safe="[]")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


# --- Scheduling ------------------------------------------------------------------------------


def event_id(*, bulk_change_id: int, completed_at: datetime) -> str:
    return f"bulk-change-{bulk_change_id}-completed-{int(completed_at.timestamp() * 1_000_000)}"


def webhook_payload(*, bulk_change: BulkChange) -> dict[str, Any]:
    """The summary a partner receives: the same fields as the API's bulk change detail."""
    assert bulk_change.processed_at is not None
    progress = bulk_change_progress(bulk_change_id=bulk_change.pk)
    return {
        "event": EVENT,
        "event_id": event_id(bulk_change_id=bulk_change.pk, completed_at=bulk_change.processed_at),
        "bulk_change": {
            "id": bulk_change.pk,
            "tenant": bulk_change.tenant_id,
            "integration": bulk_change.integration,
            "target_status": bulk_change.target_status,
            "status": bulk_change.status,
            "idempotency_key": bulk_change.idempotency_key,
            "created_by": bulk_change.created_by,
            "created_at": bulk_change.created_at.isoformat(),
            "queued_at": bulk_change.queued_at.isoformat() if bulk_change.queued_at else None,
            "processed_at": bulk_change.processed_at.isoformat(),
            "elapsed_seconds": elapsed_seconds(bulk_change),
            "progress": progress.as_dict(),
        },
    }


def _enqueue(delivery_id: int) -> None:
    async_task(SEND_TASK, delivery_id, task_name=f"webhook-delivery-{delivery_id}")


def webhook_completion_schedule(*, bulk_change_id: int) -> WebhookDelivery | None:
    """Schedule the first attempt for a bulk change's latest completion, once (the unique
    (bulk_change, completed_at, attempt) row decides). None when there is nothing to send."""
    bulk_change = BulkChange.objects.filter(pk=bulk_change_id).first()
    if (
        bulk_change is None
        or not bulk_change.callback_url
        or bulk_change.status not in ANNOUNCED
        or bulk_change.processed_at is None
    ):
        return None
    body = json.dumps(webhook_payload(bulk_change=bulk_change), separators=(",", ":"))
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                bulk_change=bulk_change,
                completed_at=bulk_change.processed_at,
                attempt=1,
                url=bulk_change.callback_url,
                payload=body,
                next_attempt_at=timezone.now(),
            )
            transaction.on_commit(partial(_enqueue, delivery.pk))
    except IntegrityError:
        return None  # already scheduled (a repeated completion hook or the sweep)
    logger.info(
        "completion webhook scheduled for bulk change %s",
        bulk_change_id,
        extra={"bulk_change_id": bulk_change_id, "request_id": bulk_change.idempotency_key},
    )
    return delivery


def _schedule_next(delivery: WebhookDelivery, *, delay: float) -> WebhookDelivery:
    """Attempt n+1 as a row and a one-off django-q2 schedule (call inside a transaction)."""
    follow_up = WebhookDelivery.objects.create(
        bulk_change_id=delivery.bulk_change_id,
        completed_at=delivery.completed_at,
        attempt=delivery.attempt + 1,
        url=delivery.url,
        payload=delivery.payload,
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
    )
    schedule(
        SEND_TASK,
        follow_up.pk,
        name=f"webhook-delivery-{follow_up.pk}",
        schedule_type=Schedule.ONCE,
        next_run=follow_up.next_attempt_at,
    )
    return follow_up


# --- Sending ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    request_text: str
    response_status: int | None = None
    response_text: str = ""
    error: str = ""
    retry_after: float | None = None
    permanent: bool = False

    @property
    def succeeded(self) -> bool:
        return not self.error and self.response_status is not None and self.response_status < 300


@cache
def _session(policy: EgressPolicy) -> requests.Session:
    return http_session(pool_size=4, egress=policy)


def _post(delivery: WebhookDelivery, *, secret: str) -> Outcome:
    body = delivery.payload.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "PondOps-Webhook/1",
        "X-PondOps-Event": EVENT,
        "X-PondOps-Delivery": str(delivery.pk),
        "X-PondOps-Attempt": str(delivery.attempt),
        **webhook_signature_headers(
            secret=secret,
            # The payload's event_id: one per completion, the same on every attempt.
            message_id=event_id(
                bulk_change_id=delivery.bulk_change_id, completed_at=delivery.completed_at
            ),
            sent_at=timezone.now(),
            body=delivery.payload,
        ),
    }
    shown = {**headers, SIGNATURE_HEADER: f"v1,{REDACTED}"}
    request_text = "\n".join(
        [
            f"POST {url_for_log(delivery.url)}",
            *(f"{name}: {value}" for name, value in shown.items()),
            "",
            delivery.payload[:MAX_RESPONSE_LOGGED],
        ]
    )
    timeout = settings.PONDOPS_WEBHOOK_TIMEOUT_SECONDS
    try:
        response = _session(webhook_egress_policy()).post(
            delivery.url,
            data=body,
            headers=headers,
            timeout=(min(timeout, settings.BULKCHANGE_HTTP_CONNECT_TIMEOUT), timeout),
            allow_redirects=False,
        )
    except EgressRefused as error:
        logger.warning(
            "completion webhook %s refused: %s",
            delivery.pk,
            error,
            extra={"bulk_change_id": delivery.bulk_change_id, "webhook_delivery_id": delivery.pk},
        )
        return Outcome(request_text, error=f"refused: {error}", permanent=True)
    except requests.RequestException as error:
        return Outcome(request_text, error=f"{type(error).__name__}: {error}")
    text = response.text[:MAX_RESPONSE_LOGGED]
    status = response.status_code
    if status < 300:
        return Outcome(request_text, status, text)
    error_text = f"HTTP {status} from the callback URL"
    if status < 400:
        error_text += f": a redirect to {redirect_target(response.headers)}, not followed"
    return Outcome(
        request_text,
        status,
        text,
        error=error_text,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        permanent=not webhook_should_retry(status),
    )


def webhook_delivery_send(delivery_id: int) -> str:
    """django-q2 task: send one attempt if it is due and not yet taken, record the outcome, and
    schedule the next attempt on failure. Safe to run twice (the claim decides)."""
    now = timezone.now()
    lease = timedelta(seconds=2 * settings.PONDOPS_WEBHOOK_TIMEOUT_SECONDS + 30)
    if not transitions.webhook_delivery_claim(
        delivery_id=delivery_id, now=now, lease_until=now + lease
    ):
        return f"webhook delivery {delivery_id}: not due, or already taken"
    delivery = WebhookDelivery.objects.select_related("bulk_change__tenant").get(pk=delivery_id)
    outcome = _post(delivery, secret=delivery.bulk_change.tenant.webhook_secret)
    return _record(delivery, outcome)


def _record(delivery: WebhookDelivery, outcome: Outcome) -> str:
    max_attempts = settings.PONDOPS_WEBHOOK_MAX_ATTEMPTS
    give_up = not outcome.succeeded and (outcome.permanent or delivery.attempt >= max_attempts)
    error = outcome.error
    if give_up:
        attempts = f"{delivery.attempt} attempt{'s' if delivery.attempt != 1 else ''}"
        error = f"gave up after {attempts}: {outcome.error}"
    with transaction.atomic():
        still_ours = transitions.webhook_delivery_finish(
            delivery_id=delivery.pk,
            succeeded=outcome.succeeded,
            now=timezone.now(),
            response_status=outcome.response_status,
            error_text=error,
        )
        logs.log_write(
            bulk_change_id=delivery.bulk_change_id,
            description=LOG_DESCRIPTION,
            process_by=logs.process_by_worker(),
            request_id=delivery.bulk_change.idempotency_key,
            request_text=outcome.request_text,
            response_text=outcome.response_text,
            response_status=outcome.response_status,
            error_text=error,
            has_errors=not outcome.succeeded,
        )
        follow_up = None
        if still_ours and not outcome.succeeded and not give_up:
            delay = backoff_seconds(
                delivery.attempt - 1,
                base=settings.BULKCHANGE_RETRY_BASE_SECONDS,
                retry_after=outcome.retry_after,
                cap=settings.BULKCHANGE_MAX_RETRY_DELAY_SECONDS,
            )
            follow_up = _schedule_next(delivery, delay=delay)
    extra = {"bulk_change_id": delivery.bulk_change_id, "webhook_delivery_id": delivery.pk}
    if outcome.succeeded:
        logger.info("completion webhook %s delivered", delivery.pk, extra=extra)
        return f"webhook delivery {delivery.pk}: delivered"
    logger.warning(
        "completion webhook %s attempt %s failed: %s%s",
        delivery.pk,
        delivery.attempt,
        error,
        f"; attempt {follow_up.attempt} at {follow_up.next_attempt_at}" if follow_up else "",
        extra=extra,
    )
    return f"webhook delivery {delivery.pk}: {error}"


# --- The sweep -------------------------------------------------------------------------------


def webhook_deliveries_sweep(*, now: datetime | None = None) -> str:
    """One pass of the outbox sweep (part of every ``run_reaper`` pass):

    - an attempt whose sender died (SENDING past its lease) fails and the next is scheduled;
    - an attempt overdue by the reaper's grace period (its task or schedule was lost) is
      enqueued again;
    - a completion of the last day whose first attempt was never written (a crash between the
      completion's commit and its hook) is scheduled.
    """
    now = now or timezone.now()
    grace = timedelta(seconds=settings.BULKCHANGE_REAPER_GRACE_SECONDS)
    expired = 0
    for delivery in WebhookDelivery.objects.select_related("bulk_change").filter(
        status=Status.SENDING, claimed_until__lt=now
    )[:SWEEP_BATCH]:
        _record(
            delivery,
            Outcome(
                request_text=f"POST {url_for_log(delivery.url)}",
                error="the sender stopped before recording a response (lease expired)",
            ),
        )
        expired += 1
    overdue = list(
        WebhookDelivery.objects.filter(
            status=Status.SCHEDULED, next_attempt_at__lt=now - grace
        ).values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for pk in overdue:
        _enqueue(pk)
    announced = WebhookDelivery.objects.filter(
        bulk_change=OuterRef("pk"), completed_at=OuterRef("processed_at")
    )
    missing = list(
        BulkChange.objects.exclude(callback_url="")
        .filter(
            status__in=ANNOUNCED,
            processed_at__gte=now - timedelta(days=1),
            processed_at__lt=now - grace,
        )
        .filter(~Exists(announced))
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for pk in missing:
        webhook_completion_schedule(bulk_change_id=pk)
    return f"{expired} expired, {len(overdue)} re-enqueued, {len(missing)} scheduled"
