"""Reads. The one place that derives a bulk change's counts and final status."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from bulkchanges.models import (
    BulkChange,
    BulkChangeLog,
    DeviceChange,
    OperatorMembership,
    PartnerApiKey,
    Tenant,
)
from bulkchanges.transitions import device_change_in_flight

logger = logging.getLogger(__name__)


def operator_tenant_ids(*, user: Any) -> frozenset[int] | None:
    """The tenants whose rows a console user sees and acts on: None (every tenant) for an
    active superuser, else the tenants of the user's ``OperatorMembership`` rows — empty for
    a staff user who belongs to no tenant, or for anyone not logged in."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    if user.is_superuser:
        return None
    return frozenset(
        OperatorMembership.objects.filter(user_id=user.pk).values_list("tenant_id", flat=True)
    )


def device_status_counts(*, bulk_change_id: int) -> dict[str, int]:
    """Devices per DeviceChange status (every status present, zeros included)."""
    counts = dict.fromkeys(DeviceChange.Status.values, 0)
    rows = (
        DeviceChange.objects.filter(bulk_change_id=bulk_change_id)
        .order_by()
        .values_list("status")
        .annotate(n=Count("id"))
    )
    counts.update({status: n for status, n in rows})
    return counts


def final_status(counts: Mapping[str, int]) -> BulkChange.Status | None:
    """The final status for these device counts, or None while any device is unfinished.
    CANCELLED devices are ignored: all succeeded → PROCESSED, none → ERROR, a mix →
    PROCESSED_WITH_ERRORS."""
    if any(counts.get(status, 0) for status in DeviceChange.UNFINISHED):
        return None
    succeeded = sum(counts.get(status, 0) for status in DeviceChange.SUCCEEDED)
    failed = counts.get(DeviceChange.Status.ERROR, 0)
    if failed == 0 and succeeded > 0:
        return BulkChange.Status.PROCESSED
    if succeeded == 0:
        return BulkChange.Status.ERROR
    return BulkChange.Status.PROCESSED_WITH_ERRORS


# ERROR devices whose carrier request was accepted and never confirmed: an operator's resubmit
# sends them again (a plain retry confirms the old request).
RESUBMITTABLE = Q(status=DeviceChange.Status.ERROR, carrier_status_at__isnull=True) & ~Q(
    carrier_request_id="", carrier_submitted_at__isnull=True
)


def bulk_change_resubmittable_count(*, bulk_change_id: int) -> int:
    return DeviceChange.objects.filter(RESUBMITTABLE, bulk_change_id=bulk_change_id).count()


def bulk_change_has_unfinished(*, bulk_change_id: int) -> bool:
    return DeviceChange.objects.filter(
        bulk_change_id=bulk_change_id, status__in=DeviceChange.UNFINISHED
    ).exists()


# --- Progress: the one read model of admin, API, webhooks and commands -----------------------


@dataclass(frozen=True)
class Progress:
    """A bulk change's devices per status and the totals derived from them. ``done`` counts
    every device that needs no more work (processed, skipped, error, cancelled); ``percent``
    is rounded *down* to one decimal, so 100 means every device is done (a bulk change with no
    device is 100: nothing is left to do)."""

    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        return sum(self.counts.get(status, 0) for status in DeviceChange.TERMINAL)

    @property
    def succeeded(self) -> int:
        return sum(self.counts.get(status, 0) for status in DeviceChange.SUCCEEDED)

    @property
    def failed(self) -> int:
        return self.counts.get(DeviceChange.Status.ERROR, 0)

    @property
    def awaiting_carrier(self) -> int:
        """Devices whose change the carrier accepted and is still working on (not failures)."""
        return self.counts.get(DeviceChange.Status.AWAITING_CARRIER, 0)

    @property
    def changed(self) -> int:
        """PROCESSED: the carrier made the change (in a cancelled bulk change: before the cancel
        took effect, by devices that had already sent it)."""
        return self.counts.get(DeviceChange.Status.PROCESSED, 0)

    @property
    def skipped(self) -> int:
        """SKIPPED: already in the target status, no carrier call."""
        return self.counts.get(DeviceChange.Status.SKIPPED, 0)

    @property
    def cancelled(self) -> int:
        """CANCELLED: stopped by a cancel before sending anything to the carrier."""
        return self.counts.get(DeviceChange.Status.CANCELLED, 0)

    @property
    def in_flight(self) -> int:
        """Devices not finished yet (pending, processing, retry scheduled, waiting on the
        carrier). In a CANCELLING bulk change these are the ones that already sent their
        change to the carrier and run to their end."""
        return sum(self.counts.get(status, 0) for status in DeviceChange.UNFINISHED)

    def cancel_summary(self) -> str:
        """What a cancel left behind, in words: "8 changed before the cancel took effect, 22
        cancelled" (then skipped, failed and still running, when there are any)."""
        parts = [
            f"{self.changed} changed before the cancel took effect",
            f"{self.cancelled} cancelled",
        ]
        if self.skipped:
            parts.append(f"{self.skipped} skipped (already in the target status)")
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.in_flight:
            parts.append(f"{self.in_flight} still finishing")
        return ", ".join(parts)

    @property
    def percent(self) -> float:
        if not self.total:
            return 100.0
        return (self.done * 1000 // self.total) / 10

    def as_dict(self) -> dict[str, object]:
        """The API's and the completion webhook's ``progress`` object."""
        return {
            "total": self.total,
            "done": self.done,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "awaiting_carrier": self.awaiting_carrier,
            "changed": self.changed,
            "skipped": self.skipped,
            "cancelled": self.cancelled,
            "in_flight": self.in_flight,
            "percent": self.percent,
            "counts": dict(self.counts),
        }


@dataclass(frozen=True)
class CancelImpact:
    """What a cancel would do now: the devices that have sent no carrier write become CANCELLED
    at once; the ones that have (``write_started_at`` set, or waiting on the carrier) run to
    their end with their real outcome, the bulk change CANCELLING until they have."""

    cancel_now: int
    finishing: int


def bulk_change_cancel_impact(*, bulk_change_id: int) -> CancelImpact:
    """One grouped read of what :func:`bulkchanges.services.bulk_change_cancel` would do (the
    confirm pages show it; the cancel itself decides again, row by row)."""
    unfinished = DeviceChange.objects.filter(
        bulk_change_id=bulk_change_id, status__in=DeviceChange.UNFINISHED
    )
    counts = unfinished.aggregate(
        finishing=Count("id", filter=device_change_in_flight()),
        total=Count("id"),
    )
    return CancelImpact(
        cancel_now=counts["total"] - counts["finishing"], finishing=counts["finishing"]
    )


def bulk_change_progress(*, bulk_change_id: int) -> Progress:
    return Progress(device_status_counts(bulk_change_id=bulk_change_id))


def bulk_change_progress_map(*, bulk_change_ids: Iterable[int]) -> dict[int, Progress]:
    """Progress of many bulk changes in ONE aggregate query (a list page's worth; index
    bulk_change, status), so a list costs the same number of queries whatever its length."""
    ids = list(bulk_change_ids)
    counts: dict[int, dict[str, int]] = {
        pk: dict.fromkeys(DeviceChange.Status.values, 0) for pk in ids
    }
    if ids:
        rows = (
            DeviceChange.objects.filter(bulk_change_id__in=ids)
            .order_by()
            .values_list("bulk_change_id", "status")
            .annotate(n=Count("id"))
        )
        for bulk_change_id, status, n in rows:
            counts[bulk_change_id][status] = n
    return {pk: Progress(device_counts) for pk, device_counts in counts.items()}


def elapsed_seconds(bulk_change: BulkChange, *, now: datetime | None = None) -> float:
    """Seconds from creation to its first completion (a later retry's run does not rewrite it),
    or to now while it runs for the first time."""
    end = bulk_change.first_processed_at or bulk_change.processed_at or now or timezone.now()
    return round(max(0.0, (end - bulk_change.created_at).total_seconds()), 3)


# --- Operations console (admin) reads ---------------------------------------------------------


IDENTIFIER_PREFIX_MIN = 6


def bulk_change_search(*, queryset: QuerySet[BulkChange], term: str) -> QuerySet[BulkChange]:
    """Bulk changes whose id is ``term`` or that hold a device whose ICCID or MSISDN starts with
    ``term`` (at least ``IDENTIFIER_PREFIX_MIN`` digits, so a short id does not match every
    ICCID beginning 89…; whitespace ignored). A term that is no number matches nothing."""
    term = "".join(term.split())
    if not term.isdigit():
        return queryset.none()
    matches = Q(pk__in=[])
    if len(term) >= IDENTIFIER_PREFIX_MIN:
        devices = DeviceChange.objects.filter(
            Q(iccid__startswith=term) | Q(msisdn__startswith=term)
        ).values("bulk_change_id")
        matches = Q(pk__in=devices)
    if len(term) <= 18:  # fits a bigint
        matches |= Q(pk=int(term))
    return queryset.filter(matches)


def log_page(*, bulk_change_id: int, errors_only: bool = False) -> QuerySet[BulkChangeLog]:
    """A bulk change's audit rows, newest first (paginate the result)."""
    rows = BulkChangeLog.objects.filter(bulk_change_id=bulk_change_id)
    if errors_only:
        rows = rows.filter(has_errors=True)
    return rows.order_by("-processed_at", "-id")


def device_changes_export_rows(*, bulk_change_ids: Sequence[int]) -> Iterator[tuple[Any, ...]]:
    """Every device of these bulk changes with its outcome, streamed in id order (constant
    memory: ``iterator()`` over plain tuples). Columns: :data:`EXPORT_COLUMNS`."""
    return (
        DeviceChange.objects.filter(bulk_change_id__in=list(bulk_change_ids))
        .order_by("bulk_change_id", "id")
        .values_list(*EXPORT_COLUMNS)
        .iterator(chunk_size=2000)
    )


# A device change's id, identifiers and outcome, in the order every listing of device changes
# shows them: the API's list and CSV and the admin's CSV each add their own fields around them.
DEVICE_CHANGE_OUTCOME = (
    "id",
    "iccid",
    "msisdn",
    "eid",
    "status",
    "attempts",
    "last_error",
    "processed_at",
)
EXPORT_COLUMNS = ("bulk_change_id", *DEVICE_CHANGE_OUTCOME, "carrier_request_id", "rev_service_id")


# Finished device statuses in the order the dashboard shows them.
FINISHED_ORDER = (
    DeviceChange.Status.PROCESSED,
    DeviceChange.Status.SKIPPED,
    DeviceChange.Status.ERROR,
    DeviceChange.Status.CANCELLED,
)


@dataclass(frozen=True)
class Dashboard:
    """What the admin index shows so staff see at a glance whether processing is healthy."""

    since: datetime
    bulk_changes_by_status: Mapping[str, int]
    devices_by_carrier: Mapping[str, Mapping[str, int]]
    devices_unfinished: Mapping[str, int]
    oldest_unfinished: BulkChange | None
    sqs: SqsStatus  # the queue's and the dead-letter queue's depth (cached ~15 s)


def dashboard_get(
    *, now: datetime | None = None, hours: int = 24, tenant_ids: frozenset[int] | None = None
) -> Dashboard:
    """Bulk changes by status created in the last ``hours``, devices finished per carrier in
    that window, devices still in flight, the oldest unfinished bulk change — all within
    ``tenant_ids`` (None: every tenant) — and the queue's and the dead-letter queue's
    approximate depth. Never raises for SQS: an unreachable queue is reported, not fatal."""
    since = (now or timezone.now()) - timedelta(hours=hours)
    bulk_changes = BulkChange.objects.all()
    device_changes = DeviceChange.objects.all()
    if tenant_ids is not None:
        bulk_changes = bulk_changes.filter(tenant_id__in=tenant_ids)
        device_changes = device_changes.filter(bulk_change__tenant_id__in=tenant_ids)
    by_status = dict.fromkeys(BulkChange.Status.values, 0)
    by_status.update(
        bulk_changes.filter(created_at__gte=since)
        .order_by()
        .values_list("status")
        .annotate(n=Count("id"))
    )
    by_carrier: dict[str, dict[str, int]] = {}
    finished = (
        device_changes.filter(processed_at__gte=since, is_processed=True)
        .order_by()
        .values_list("bulk_change__integration", "status")
        .annotate(n=Count("id"))
    )
    for integration, status, n in finished:
        by_carrier.setdefault(integration, dict.fromkeys(FINISHED_ORDER, 0))[status] = n
    unfinished: dict[str, int] = dict.fromkeys(sorted(DeviceChange.UNFINISHED), 0)
    unfinished.update(
        device_changes.filter(status__in=DeviceChange.UNFINISHED)
        .order_by()
        .values_list("status")
        .annotate(n=Count("id"))
    )
    oldest = (
        bulk_changes.filter(status__in=BulkChange.OPEN)
        .select_related("tenant")
        .order_by("created_at", "id")
        .first()
    )
    return Dashboard(
        since=since,
        bulk_changes_by_status=by_status,
        devices_by_carrier=dict(sorted(by_carrier.items())),
        devices_unfinished=unfinished,
        oldest_unfinished=oldest,
        sqs=sqs_status_get(),
    )


# --- SQS status (dashboard, /healthz, the dead-letter page) ---------------------------------


@dataclass(frozen=True)
class SqsStatus:
    """The queue's and the dead-letter queue's figures, as one short read found them.

    ``queue_depth`` None: the queue could not be read (``error`` says why). ``dead_letters``
    None: unknown (SQS unreachable, or no DLQ configured: ``dlq_configured``).
    ``oldest_dead_letter_sent_at``: the SentTimestamp of the oldest message one peek saw."""

    read_at: datetime
    queue_depth: Mapping[str, int] | None
    dead_letters: int | None
    oldest_dead_letter_sent_at: datetime | None
    dlq_configured: bool
    error: str = ""

    def oldest_dead_letter_age(self, now: datetime | None = None) -> float | None:
        if self.oldest_dead_letter_sent_at is None:
            return None
        return max(0.0, ((now or timezone.now()) - self.oldest_dead_letter_sent_at).total_seconds())


def sqs_status_get() -> SqsStatus:
    """The queue depth, the DLQ depth and its oldest message's send time, reused from the cache
    for ``PONDOPS_SQS_STATUS_CACHE_SECONDS`` (15) — failures too, so a dead SQS costs one page
    in 15 s a short wait, not every page.

    Each read uses the ``status`` client (``PONDOPS_SQS_STATUS_TIMEOUT_SECONDS``, 0.5 s, no
    retries) and the first failure ends the read, so it never takes much more than a second.
    The age: SQS has no "age of the oldest message" attribute on a standard queue (CloudWatch
    has one, not reachable from here), but a message keeps its SentTimestamp when it is moved
    to the DLQ, so one peek (a receive with VisibilityTimeout 0: nothing is hidden) of up to 10
    messages gives the oldest send time among them — exact for a small DLQ, a lower bound on
    a large standard one (a receive samples). A peek counts as a receive in the messages'
    ApproximateReceiveCount; the DLQ has no redrive policy of its own, so nothing else moves."""
    key = f"pondops:sqs-status:{settings.PONDOPS_SQS_QUEUE_URL}|{settings.PONDOPS_SQS_DLQ_URL}"
    try:
        cached = cache.get(key)
    except Exception as error:  # the database cache is down with its database: read live
        logger.warning("SQS status cache unavailable: %s", error)
        cached = None
    if isinstance(cached, SqsStatus):
        return cached
    status = _sqs_status_read()
    try:
        cache.set(key, status, timeout=settings.PONDOPS_SQS_STATUS_CACHE_SECONDS)
    except Exception as error:
        logger.warning("SQS status not cached: %s", error)
    return status


def _sqs_status_read() -> SqsStatus:
    from bulkchanges import sqs

    now = timezone.now()
    dlq_configured = bool(settings.PONDOPS_SQS_DLQ_URL)
    try:
        client = sqs.sqs_client(sqs.STATUS)
        depth = sqs.queue_depth(url=sqs.queue_url(), client=client)
    except (sqs.SqsUnavailable, RuntimeError) as error:
        logger.warning("queue depth unavailable: %s", error)
        return SqsStatus(now, None, None, None, dlq_configured, str(error)[:300])
    if not dlq_configured:
        return SqsStatus(now, depth, None, None, False)
    try:
        dlq = sqs.dlq_url()
        dead_letters = sqs.queue_depth(url=dlq, client=client)["ApproximateNumberOfMessages"]
        peeked = sqs.queue_receive(url=dlq, client=client, visibility_timeout=0)
    except sqs.SqsUnavailable as error:
        logger.warning("dead-letter queue depth unavailable: %s", error)
        return SqsStatus(now, depth, None, None, True, str(error)[:300])
    sent = [message.sent_at for message in peeked if message.sent_at is not None]
    return SqsStatus(now, depth, dead_letters, min(sent) if sent else None, True)


@dataclass(frozen=True)
class DeadLetter:
    """One message in the dead-letter queue, with why the consumer refused it (if it did:
    a message dead-lettered by another cause, e.g. a consumer that crashed on it, has no
    refusal recorded)."""

    message: Any  # sqs.PeekedMessage
    reason: str  # "" when none was recorded
    refused_at: datetime | None
    bulk_change_id: int | None  # decoded from the message, when it decodes
    device_change_id: int | None


@dataclass(frozen=True)
class DeadLetterList:
    messages: Sequence[DeadLetter]
    depth: int | None  # ApproximateNumberOfMessages; None: unknown
    error: str = ""  # why the DLQ could not be read


def dead_letters_list(*, limit: int = 100) -> DeadLetterList:
    """Up to ``limit`` messages of the dead-letter queue (``sqs.queue_browse``: received with a
    short visibility timeout so a batch never repeats, then made visible again), each joined
    with its ``RefusedMessage`` row by SQS MessageId. Never raises for SQS: an unreachable
    queue is an empty list with ``error`` set."""
    from bulkchanges import sqs
    from bulkchanges.models import RefusedMessage

    try:
        client, dlq = sqs.sqs_client(sqs.STATUS), sqs.dlq_url()
        depth = sqs.queue_depth(url=dlq, client=client)["ApproximateNumberOfMessages"]
        browsed = sqs.queue_browse(url=dlq, client=client, limit=limit)
    except (sqs.SqsUnavailable, RuntimeError) as error:
        logger.warning("dead-letter queue unavailable: %s", error)
        return DeadLetterList(messages=[], depth=None, error=str(error)[:300])
    refused = RefusedMessage.objects.in_bulk(
        [message.message_id for message in browsed], field_name="message_id"
    )
    rows = []
    for message in browsed:
        row = refused.get(message.message_id)
        bulk_change_id: int | None
        device_change_id: int | None
        try:
            decoded = sqs.decode(
                {"MessageAttributes": message.message_attributes, "Body": message.body}
            )
            bulk_change_id, device_change_id = decoded.bulk_change_id, decoded.device_change_id
        except sqs.MalformedMessage:
            bulk_change_id = device_change_id = None
        rows.append(
            DeadLetter(
                message=message,
                reason=row.reason if row else "",
                refused_at=row.last_refused_at if row else None,
                bulk_change_id=bulk_change_id,
                device_change_id=device_change_id or None,
            )
        )
    rows.sort(key=lambda row: (row.message.sent_at is None, row.message.sent_at))
    return DeadLetterList(messages=rows, depth=max(depth, len(rows)))


def partner_api_keys_list(*, tenant: Tenant | None = None) -> QuerySet[PartnerApiKey]:
    """Partner API keys, newest first, with what may be shown of them: prefix, name, tenant,
    user, role, expiry, revocation, last use (the hashed key is not read)."""
    keys = PartnerApiKey.objects.select_related("tenant", "user").defer("hashed_key")
    return keys.filter(tenant=tenant) if tenant is not None else keys


def device_change_trail(*, device_change_id: int) -> QuerySet[BulkChangeLog]:
    """One device's own audit rows (its calls, outcomes, retries, callbacks and the operator
    actions naming it), newest first — the device change page's trail and attempts."""
    return BulkChangeLog.objects.filter(device_change_id=device_change_id).order_by(
        "-processed_at", "-id"
    )
