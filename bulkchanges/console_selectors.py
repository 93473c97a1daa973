"""Reads behind the console's bulk change page: when its run started, its manual retries,
throughput and ETA, its failures grouped by message, each device's attempts across manual
retries, and the page's device and log panels. Kept apart from ``selectors.py`` (the read
model every interface shares) because only the console needs these; every count still comes
from :func:`bulkchanges.selectors.bulk_change_progress`."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Min, QuerySet
from django.utils import timezone

from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from bulkchanges.selectors import Progress
from bulkchanges.services.logs import OPERATOR_RESUBMIT, OPERATOR_RETRY

RETRY_DESCRIPTIONS = (OPERATOR_RETRY, OPERATOR_RESUBMIT)
FAILURE_GROUPS_SHOWN = 20
LOG_LATEST = 50

# The per-device row ``bulk_change_retry`` writes: "re-queued from ERROR; attempts was 3, …".
_REQUEUED = re.compile(r"re-queued from (?P<status>[A-Z_]+); attempts was (?P<attempts>\d+)")


# --- Timings, retries, throughput ------------------------------------------------------------


@dataclass(frozen=True)
class ManualRetry:
    """One operator retry or resubmit of the bulk change (its summary audit row)."""

    at: datetime
    by: str
    description: str
    note: str


@dataclass(frozen=True)
class RunFigures:
    """What the summary shows about a bulk change's run. ``run_started_at`` is the start of
    the run in progress (the first worker's first row, or the latest manual retry after it):
    throughput counts the devices finished since then over the time since then."""

    started_at: datetime | None
    retries: tuple[ManualRetry, ...]
    run_started_at: datetime | None
    devices_per_minute: float | None
    eta_seconds: float | None


def bulk_change_run_figures(
    *, bulk_change: BulkChange, progress: Progress, now: datetime | None = None
) -> RunFigures:
    """Polled every few seconds, so each read stays on an index: the first worker row on
    (bulk change, time), the retries' summary rows (no device) on the device-change index, and
    one count of the devices finished in this run. The throughput and ETA only while the bulk
    change runs (PROCESSING or CANCELLING) and after a first device finished in this run;
    ``now`` fixes the clock for tests. Later finishes are not listed: the last one is
    ``processed_at``."""
    now = now or timezone.now()
    rows = BulkChangeLog.objects.filter(bulk_change_id=bulk_change.pk)
    started_at = (
        rows.filter(process_by__startswith="worker:")
        .order_by("processed_at", "id")
        .values_list("processed_at", flat=True)
        .first()
    )
    retries = tuple(
        ManualRetry(at=at, by=by, description=description, note=note)
        for at, by, description, note in rows.filter(
            log_entry_description__in=RETRY_DESCRIPTIONS, device_change_id__isnull=True
        )
        .order_by("processed_at", "id")
        .values_list("processed_at", "process_by", "log_entry_description", "response_text")
    )
    run_started_at = started_at
    if retries and (run_started_at is None or retries[-1].at > run_started_at):
        run_started_at = retries[-1].at
    rate: float | None = None
    eta: float | None = None
    running = bulk_change.status in (BulkChange.Status.PROCESSING, BulkChange.Status.CANCELLING)
    if running and run_started_at is not None:
        elapsed = (now - run_started_at).total_seconds()
        finished = DeviceChange.objects.filter(
            bulk_change_id=bulk_change.pk, is_processed=True, processed_at__gte=run_started_at
        ).count()
        if elapsed >= 1 and finished:
            rate = finished * 60 / elapsed
            eta = (progress.total - progress.done) * 60 / rate
    return RunFigures(
        started_at=started_at,
        retries=retries,
        run_started_at=run_started_at,
        devices_per_minute=rate,
        eta_seconds=eta,
    )


# --- Failures grouped by message --------------------------------------------------------------


# What varies per device inside one carrier error: request and reference ids (UUIDs, long hex),
# identifiers and numbers of four digits or more. Replaced by "…", two messages that differ
# only there are one failure ("HTTP 404 from POND: SIM not found (reference 3f2a…)").
_VARYING = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|\b(?=[0-9a-f]*\d)[0-9a-f]{12,}\b"
    r"|\d{4,}",
    re.IGNORECASE,
)


def failure_pattern(message: str) -> str:
    """``message`` with its per-device parts (ids, ICCIDs, request references) as "…"."""
    return _VARYING.sub("…", message)


def failure_key(pattern: str) -> str:
    """A short stable name for one failure pattern, for URLs (messages are long and carry any
    character)."""
    return hashlib.sha256(pattern.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FailureGroup:
    """ERROR devices whose last errors differ only in per-device parts: ``message`` is the
    pattern shown, ``messages`` the stored texts it stands for."""

    key: str
    message: str
    count: int
    messages: tuple[str, ...]


@dataclass(frozen=True)
class Failures:
    groups: tuple[FailureGroup, ...]
    total: int
    more_groups: int


def _failure_groups(bulk_change_id: int) -> list[FailureGroup]:
    """Every group of the bulk change's ERROR devices, largest first (one grouped query by
    stored message, folded by pattern here)."""
    rows = (
        DeviceChange.objects.filter(bulk_change_id=bulk_change_id, status=DeviceChange.Status.ERROR)
        .order_by()
        .values_list("last_error")
        .annotate(n=Count("id"), first=Min("id"))
    )
    folded: dict[str, tuple[int, int, list[str]]] = {}
    for message, n, first in rows:
        pattern = failure_pattern(message)
        count, earliest, messages = folded.get(pattern, (0, first, []))
        messages.append(message)
        folded[pattern] = (count + n, min(earliest, first), messages)
    ordered = sorted(folded.items(), key=lambda item: (-item[1][0], item[1][1]))
    return [
        FailureGroup(
            key=failure_key(pattern), message=pattern, count=count, messages=tuple(messages)
        )
        for pattern, (count, _, messages) in ordered
    ]


def bulk_change_failure_groups(
    *, bulk_change_id: int, limit: int = FAILURE_GROUPS_SHOWN
) -> Failures:
    """The ERROR devices grouped by their last error's pattern, largest group first; the first
    ``limit`` groups, and how many more there are."""
    groups = _failure_groups(bulk_change_id)
    return Failures(
        groups=tuple(groups[:limit]),
        total=sum(group.count for group in groups),
        more_groups=len(groups) - limit,
    )


def failure_group_get(*, bulk_change_id: int, key: str) -> FailureGroup | None:
    """The ERROR devices' group with this key, or None (retried meanwhile)."""
    return next((g for g in _failure_groups(bulk_change_id) if g.key == key), None)


def failure_group_device_ids(*, bulk_change_id: int, group: FailureGroup) -> list[int]:
    return list(
        DeviceChange.objects.filter(
            bulk_change_id=bulk_change_id,
            status=DeviceChange.Status.ERROR,
            last_error__in=group.messages,
        )
        .order_by("id")
        .values_list("pk", flat=True)
    )


# --- Devices and their attempts ---------------------------------------------------------------


def device_changes_attempts(*, device_changes: Sequence[DeviceChange]) -> dict[int, int]:
    """Each device's attempts over its whole life, earlier manual retries included.

    ``DeviceChange.attempts`` is the RetryNumber of the latest attempt and a manual retry
    resets it to 0, so it alone under-counts; each retry's per-device audit row keeps the old
    value ("attempts was N"): that run made N + 1 attempts (none if it was re-queued from
    PENDING, never tried). The run in progress made ``attempts`` + 1 once the device was
    tried (it left PENDING; a device cancelled before any carrier write was never tried).
    One query for the page's devices."""
    ids = [device_change.pk for device_change in device_changes]
    earlier: dict[int, int] = dict.fromkeys(ids, 0)
    for device_change_id, text in BulkChangeLog.objects.filter(
        device_change_id__in=ids, log_entry_description__in=RETRY_DESCRIPTIONS
    ).values_list("device_change_id", "response_text"):
        match = _REQUEUED.search(text or "")
        if match is None or device_change_id is None:
            continue
        attempts = int(match["attempts"])
        earlier[device_change_id] += attempts if match["status"] == "PENDING" else attempts + 1
    return {
        device_change.pk: earlier[device_change.pk]
        + (device_change.attempts + 1 if _tried(device_change) else 0)
        for device_change in device_changes
    }


def _tried(device_change: DeviceChange) -> bool:
    if device_change.status == DeviceChange.Status.PENDING:
        return False
    if device_change.status == DeviceChange.Status.CANCELLED:
        return device_change.write_started_at is not None
    return True


def bulk_change_devices(*, bulk_change_id: int, status: str = "") -> QuerySet[DeviceChange]:
    """The page's devices panel: in id order, optionally of one status (paginate it)."""
    rows = DeviceChange.objects.filter(bulk_change_id=bulk_change_id)
    if status:
        rows = rows.filter(status=status)
    return rows.order_by("id").only(
        "id",
        "bulk_change_id",
        "iccid",
        "status",
        "attempts",
        "last_error",
        "processed_at",
        "write_started_at",
    )


def bulk_change_log_latest(*, bulk_change_id: int, limit: int = LOG_LATEST) -> list[BulkChangeLog]:
    """The page's log panel: the newest ``limit`` rows (the full log is the log list's; no
    count of all rows: a large bulk change has hundreds of thousands, and this is polled)."""
    return list(
        BulkChangeLog.objects.filter(bulk_change_id=bulk_change_id)
        .select_related("device_change")
        .order_by("-processed_at", "-id")[:limit]
    )
