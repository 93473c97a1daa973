"""Processing devices: claims, resumable steps, outcomes, retries and completion
(DESIGN section 5).

Promises:
- A device's carrier call is made at most once per attempt, whatever the queue redelivers: a
  worker works on a device only after winning its claim (one conditional UPDATE; the row count
  decides), and writes only while it holds the claim token.
- Each completed step is recorded before the next starts, so retries resume after it.
- A device change is claimable only when no older unfinished device change exists for the same
  ICCID and integration, so two bulk changes touching one device apply in creation order.
- Completion is written once, by a conditional update that never overwrites a final status.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from queue import Empty, SimpleQueue
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, When
from django.utils import timezone

from bulkchanges import sqs
from bulkchanges.models import (
    BulkChange,
    BulkChangeLog,
    Device,
    DeviceChange,
    IntegrationAuthentication,
)
from bulkchanges.ratelimit import throttle_for
from bulkchanges.retry import backoff_seconds, should_retry, sqs_delay_seconds
from bulkchanges.selectors import bulk_change_has_unfinished, device_status_counts, final_status
from bulkchanges.services import logs
from bulkchanges.services.webhooks import webhook_completion_schedule
from bulkchanges.tokens import token_store
from bulkchanges.types import StatusUpdateRequest
from integrations.base import (
    CallRecord,
    IntegrationError,
    PermanentError,
    Progress,
    Step,
    StepResult,
    TransientError,
    UpdateContext,
    http_session,
    processor_class,
)
from integrations.rev import RevProcessor

logger = logging.getLogger(__name__)

Status = DeviceChange.Status
# Hands device change ids to workers (django-q2 in production, inline in some tests).
Enqueue = Callable[[list[int]], object]
RUNNABLE_BULK = (BulkChange.Status.QUEUED, BulkChange.Status.PROCESSING)
BATCH = 1000

# One HTTP session per credentials per process (keep-alive pools shared by worker threads).
_sessions: dict[int, Any] = {}


def _session_for(credentials_id: int) -> Any:
    session = _sessions.get(credentials_id)
    if session is None:
        session = _sessions.setdefault(credentials_id, http_session())
    return session


# --- Claims ----------------------------------------------------------------------------------


def _claimable(now: datetime) -> Q:
    return (
        Q(status=Status.PENDING)
        | Q(status=Status.RETRY_SCHEDULED, next_attempt_at__lte=now)
        | Q(status=Status.PROCESSING, claimed_until__lt=now)
    ) & Q(bulk_change__status__in=RUNNABLE_BULK)


def _older_unfinished_exists() -> Exists:
    return Exists(
        DeviceChange.objects.filter(
            iccid=OuterRef("iccid"),
            bulk_change__integration=OuterRef("bulk_change__integration"),
            pk__lt=OuterRef("pk"),
            status__in=DeviceChange.UNFINISHED,
            bulk_change__status__in=RUNNABLE_BULK,
        )
    )


def device_change_claim(*, ids: Sequence[int], now: datetime | None = None) -> list[int]:
    """Claim the claimable devices among ``ids`` for this worker. Returns the ids won; each now
    is PROCESSING with a fresh lease and claim token. Retries and expired leases count as an
    attempt (``attempts + 1``)."""
    now = now or timezone.now()
    token = uuid.uuid4()
    lease = now + timedelta(seconds=settings.BULKCHANGE_LEASE_SECONDS)
    with transaction.atomic():
        candidates = (
            DeviceChange.objects.filter(pk__in=list(ids))
            .filter(_claimable(now))
            .exclude(_older_unfinished_exists())
        )
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True, of=("self",))
        locked = list(candidates.values_list("pk", flat=True))
        if not locked:
            return []
        DeviceChange.objects.filter(pk__in=locked).filter(_claimable(now)).update(
            status=Status.PROCESSING,
            claimed_until=lease,
            claim_token=token,
            attempts=Case(
                When(status=Status.PENDING, then=F("attempts")), default=F("attempts") + 1
            ),
        )
        return list(
            DeviceChange.objects.filter(pk__in=locked, claim_token=token).values_list(
                "pk", flat=True
            )
        )


# --- Fan-out ---------------------------------------------------------------------------------


def bulk_change_fan_out(
    *,
    bulk_change_id: int,
    enqueue: Enqueue,
    process_by: str,
    request_id: str = "",
) -> int:
    """Start (or resume) a bulk change: QUEUED → PROCESSING, then hand its PENDING devices to
    ``enqueue`` in chunks of BULKCHANGE_CHUNK_SIZE. Safe to run twice: claims decide who
    processes a device. Returns the devices handed out."""
    bulk_change = (
        BulkChange.objects.select_related("integration_authentication")
        .filter(pk=bulk_change_id)
        .first()
    )
    if bulk_change is None or bulk_change.status not in RUNNABLE_BULK:
        return 0
    BulkChange.objects.filter(pk=bulk_change_id, status=BulkChange.Status.QUEUED).update(
        status=BulkChange.Status.PROCESSING
    )
    credentials = bulk_change.integration_authentication
    if not credentials.writes_enabled:
        _fail_writes_disabled(bulk_change=bulk_change, process_by=process_by, request_id=request_id)
        bulk_change_complete_if_done(bulk_change_id=bulk_change_id, process_by=process_by)
        return 0
    handed = 0
    size = max(1, settings.BULKCHANGE_CHUNK_SIZE)
    pending = DeviceChange.objects.filter(
        bulk_change_id=bulk_change_id, status=Status.PENDING
    ).order_by("pk")
    last = 0
    while True:  # keyset pages: constant memory, no cursor held open across enqueues
        page = list(pending.filter(pk__gt=last).values_list("pk", flat=True)[:size])
        if not page:
            break
        enqueue(page)
        handed += len(page)
        last = page[-1]
    if not handed:
        bulk_change_complete_if_done(bulk_change_id=bulk_change_id, process_by=process_by)
    logger.info(
        "bulk change %s: %s devices handed to workers",
        bulk_change_id,
        handed,
        extra={"bulk_change_id": bulk_change_id, "request_id": request_id},
    )
    return handed


def _writes_disabled_message(bulk_change: BulkChange) -> str:
    credentials = bulk_change.integration_authentication
    label = processor_class(bulk_change.integration).account_label(credentials.as_credentials())
    return f"writes are disabled for {label}"


def _fail_writes_disabled(*, bulk_change: BulkChange, process_by: str, request_id: str) -> None:
    """Fail fast: every unclaimed device ERROR with the reason, one log row each, no call."""
    message = _writes_disabled_message(bulk_change)
    now = timezone.now()
    pending = DeviceChange.objects.filter(bulk_change=bulk_change, status=Status.PENDING)
    ids = list(pending.values_list("pk", flat=True))
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        with transaction.atomic():
            DeviceChange.objects.filter(pk__in=batch, status=Status.PENDING).update(
                status=Status.ERROR, is_processed=True, processed_at=now, last_error=message
            )
            BulkChangeLog.objects.bulk_create(
                logs.log_row(
                    bulk_change_id=bulk_change.pk,
                    device_change_id=pk,
                    description=logs.WRITES_DISABLED,
                    process_by=process_by,
                    request_id=request_id,
                    error_text=message,
                )
                for pk in batch
            )
    logger.warning(
        "bulk change %s: %s",
        bulk_change.pk,
        message,
        extra={"bulk_change_id": bulk_change.pk, "request_id": request_id},
    )


# --- Completion ------------------------------------------------------------------------------


def bulk_change_complete_if_done(*, bulk_change_id: int, process_by: str) -> bool:
    """Write the final status once no device is unfinished. Never overwrites CANCELLED or a
    final status; exactly one completion log row. Returns True when this call completed it."""
    if bulk_change_has_unfinished(bulk_change_id=bulk_change_id):
        return False  # an indexed EXISTS; the counts below read every device of the bulk change
    counts = device_status_counts(bulk_change_id=bulk_change_id)
    final = final_status(counts)
    if final is None:
        return False
    now = timezone.now()
    with transaction.atomic():
        won = BulkChange.objects.filter(pk=bulk_change_id, status__in=RUNNABLE_BULK).update(
            status=final, processed_at=now
        )
        if won:
            summary = ", ".join(f"{status} {n}" for status, n in counts.items() if n)
            logs.log_write(
                bulk_change_id=bulk_change_id,
                description=logs.COMPLETION,
                process_by=process_by,
                response_text=f"{final}: {summary}",
                has_errors=final != BulkChange.Status.PROCESSED,
            )
            transaction.on_commit(
                partial(webhook_completion_schedule, bulk_change_id=bulk_change_id), robust=True
            )
    if won:
        logger.info(
            "bulk change %s completed: %s",
            bulk_change_id,
            final,
            extra={"bulk_change_id": bulk_change_id},
        )
    return bool(won)


def next_waiting_device_change(*, device_change: DeviceChange) -> int | None:
    """The oldest later device change for the same ICCID and integration still waiting."""
    pk: int | None = (
        DeviceChange.objects.filter(
            iccid=device_change.iccid,
            bulk_change__integration=device_change.bulk_change.integration,
            pk__gt=device_change.pk,
            status__in=[Status.PENDING, Status.RETRY_SCHEDULED],
            bulk_change__status__in=RUNNABLE_BULK,
        )
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    return pk


# --- Processing one device -------------------------------------------------------------------


class _LeaseLost(Exception):
    """Another worker took the device over (our lease expired); stop without writing."""


class _Cancelled(Exception):
    """The bulk change was cancelled; stop after the current step."""


def device_changes_process(
    *,
    ids: Sequence[int],
    process_by: str,
    request_id: str = "",
    enqueue: Enqueue,
) -> int:
    """Claim and process ``ids`` on up to the credentials' ``max_concurrency`` threads (the
    work is mostly waiting for HTTP). Each thread works through the ids with one database
    connection, closed when it is done. Returns how many devices this worker processed."""
    if not ids:
        return 0
    credentials = IntegrationAuthentication.objects.filter(
        bulk_changes__device_changes__pk__in=list(ids)
    ).first()
    if credentials is None:
        return 0
    run = partial(_claim_and_run, process_by=process_by, request_id=request_id, enqueue=enqueue)
    threads = min(credentials.max_concurrency, len(ids))
    if threads <= 1:
        return sum(run(pk) for pk in ids)
    pending: SimpleQueue[int] = SimpleQueue()
    for pk in ids:
        pending.put(pk)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return sum(pool.map(lambda _: _drain_in_thread(pending, run), range(threads)))


def _drain_in_thread(pending: SimpleQueue[int], run: Callable[[int], bool]) -> int:
    done = 0
    try:
        while True:
            try:
                pk = pending.get_nowait()
            except Empty:
                return done
            done += run(pk)
            if connection.errors_occurred:  # a database error: start the next on a fresh one
                connection.close()
    finally:
        connection.close()  # worker threads open their own connections


def _claim_and_run(pk: int, *, process_by: str, request_id: str, enqueue: Enqueue) -> bool:
    """Claim and run one device."""
    if not device_change_claim(ids=[pk]):
        return False
    device_change = DeviceChange.objects.select_related(
        "bulk_change", "bulk_change__integration_authentication", "device__status"
    ).get(pk=pk)
    device_run = _DeviceRun(device_change, process_by=process_by, request_id=request_id)
    try:
        device_run.run()
    except Exception:
        logger.exception(
            "device change %s: unexpected failure outside the step runner",
            pk,
            extra={"device_change_id": pk},
        )
        return True
    if device_run.recorded in DeviceChange.TERMINAL:
        following = next_waiting_device_change(device_change=device_change)
        if following is not None:
            enqueue([following])
        bulk_change_complete_if_done(
            bulk_change_id=device_change.bulk_change_id, process_by=process_by
        )
    return True


class _DeviceRun:
    """Runs the remaining steps of one claimed device change and records its outcome."""

    def __init__(self, device_change: DeviceChange, *, process_by: str, request_id: str) -> None:
        self.device_change = device_change
        self.bulk_change = device_change.bulk_change
        self.token = device_change.claim_token
        self.process_by = process_by
        self.request_id = request_id or self.bulk_change.idempotency_key or ""
        self.calls: list[CallRecord] = []
        self.extra = {
            "bulk_change_id": self.bulk_change.pk,
            "device_change_id": device_change.pk,
            "request_id": self.request_id,
        }
        self.in_rev_step = False
        # Whether the bulk change was still running when the last step was recorded (the claim
        # saw it running before the first); checked before each next step.
        self.cancelled = False
        self.recorded: str | None = None  # the status _finish wrote, when it won

    # The outcome paths --------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except _LeaseLost:
            logger.warning(
                "device change %s: lease lost to another worker; stopping",
                self.device_change.pk,
                extra=self.extra,
            )
        except _Cancelled:
            self._finish(
                Status.CANCELLED,
                outcome="bulk change cancelled; stopped after the last completed step",
            )
        except TransientError as error:
            self._retry_or_give_up(error)
        except PermanentError as error:
            message = error.message
            if self.in_rev_step:
                message = f"carrier updated, Rev service not created: {message}"
            self._finish(Status.ERROR, error=message, failed_call=error.call)
        except Exception as error:  # a bug, not a carrier failure: keep the traceback
            logger.exception(
                "device change %s failed unexpectedly", self.device_change.pk, extra=self.extra
            )
            self._finish(
                Status.ERROR,
                error=f"internal error: {type(error).__name__}: {error}",
                detail=traceback.format_exc(),
            )

    def _run(self) -> None:
        device_change, bulk_change = self.device_change, self.bulk_change
        credentials = bulk_change.integration_authentication
        if device_change.attempts > settings.BULKCHANGE_MAX_RETRIES:
            raise PermanentError(
                f"gave up after {settings.BULKCHANGE_MAX_RETRIES} retries: "
                f"{device_change.last_error or 'worker lease expired'}"
            )
        if not credentials.writes_enabled:
            raise PermanentError(_writes_disabled_message(bulk_change))
        request = StatusUpdateRequest.from_legacy(device_change.change_request)
        processor_cls = processor_class(bulk_change.integration)
        processor = processor_cls(
            credentials=credentials.as_credentials(),
            session=_session_for(credentials.pk),
            throttle=throttle_for(credentials.as_credentials()),
            on_call=self.calls.append,
            token_store=token_store,
        )
        context = UpdateContext(
            device_change_id=device_change.pk,
            bulk_change_id=bulk_change.pk,
            iccid=device_change.iccid,
            msisdn=device_change.msisdn
            or (device_change.device.msisdn if device_change.device else ""),
            eid=device_change.eid or (device_change.device.eid if device_change.device else ""),
            target_status=request.update_status,
            progress=self._progress(),
            account_number=request.account_number,
            request_id=self.request_id,
            options=request.options,
        )
        processor.check_identifiers(context)
        if not request.is_ignore_current_status and self._nothing_done_yet():
            current = self._current_status(processor, context)
            mapping = processor_cls.statuses[request.update_status]
            already = {request.update_status.lower(), mapping.post_update_status.lower()}
            if current is not None and current.lower() in already:
                outcome = f"already {request.update_status}; no carrier call made"
                self._finish(Status.SKIPPED, outcome=outcome)
                return
        for step in processor_cls.steps:
            if not context.progress.is_done(step):
                self._check_cancelled()
                context = self._record(processor.perform(step, context), context)
        self._update_inventory(request)
        if request.rev_service is not None:
            context = self._create_rev_service(request, context)
        self._finish(Status.PROCESSED, outcome=f"{request.update_status} set")

    # Steps --------------------------------------------------------------------------------

    def _progress(self) -> Progress:
        device_change = self.device_change
        return Progress(
            carrier_status_at=device_change.carrier_status_at,
            service_status_at=device_change.service_status_at,
            carrier_request_id=device_change.carrier_request_id,
            carrier_submitted_at=device_change.carrier_submitted_at,
            rev_service_id=device_change.rev_service_id,
            rev_product_ids=dict(device_change.rev_product_ids or {}),
        )

    def _nothing_done_yet(self) -> bool:
        """No carrier step recorded yet — not even a prepared request id (Teal), after which
        the current status is no longer read: the request may already be on its way."""
        progress = self._progress()
        return (
            progress.carrier_status_at is None
            and progress.carrier_submitted_at is None
            and progress.service_status_at is None
            and not progress.carrier_request_id
        )

    def _current_status(self, processor: Any, context: UpdateContext) -> str | None:
        device = self.device_change.device
        if device is not None and device.status is not None:
            code: str = device.status.code
            return code
        current: str | None = processor.read_status(context)
        self._flush_calls()
        return current

    def _check_cancelled(self) -> None:
        if self.cancelled:
            raise _Cancelled

    def _record(self, result: StepResult, context: UpdateContext) -> UpdateContext:
        """Persist a completed step (and renew the lease) before the next one starts. The same
        UPDATE tells whether the bulk change is still running: if it was cancelled, the step
        is kept all the same and the device stops before its next step."""
        updates = dict(result.updates)
        if "rev_product_ids" in updates:
            updates["rev_product_ids"] = dict(updates["rev_product_ids"])
        lease = timezone.now() + timedelta(seconds=settings.BULKCHANGE_LEASE_SECONDS)
        mine = DeviceChange.objects.filter(pk=self.device_change.pk, claim_token=self.token)
        running = Exists(
            BulkChange.objects.filter(pk=OuterRef("bulk_change_id"), status__in=RUNNABLE_BULK)
        )
        with transaction.atomic():
            self._flush_calls()
            won = mine.filter(running).update(claimed_until=lease, **updates)
            if not won:  # cancelled meanwhile (keep the step), or the lease was lost
                won = mine.update(claimed_until=lease, **updates)
                self.cancelled = bool(won)
        if not won:
            raise _LeaseLost
        for name, value in updates.items():
            setattr(self.device_change, name, value)
        return replace(context, progress=replace(context.progress, **result.updates))

    def _update_inventory(self, request: StatusUpdateRequest) -> None:
        device_change, bulk_change = self.device_change, self.bulk_change
        defaults: dict[str, Any] = {
            "tenant_id": bulk_change.tenant_id,
            "status_id": request.post_update_status_id,
        }
        if device_change.msisdn:
            defaults["msisdn"] = device_change.msisdn
        if device_change.eid:
            defaults["eid"] = device_change.eid
        device, _ = Device.objects.update_or_create(
            integration=bulk_change.integration, iccid=device_change.iccid, defaults=defaults
        )
        if device_change.device_id != device.pk:
            DeviceChange.objects.filter(pk=device_change.pk).update(device=device)
            device_change.device_id = device.pk

    def _create_rev_service(
        self, request: StatusUpdateRequest, context: UpdateContext
    ) -> UpdateContext:
        assert request.rev_service is not None
        self.in_rev_step = True
        rev_row = IntegrationAuthentication.objects.filter(
            pk=request.rev_service.integration_authentication_id
        ).first()
        if rev_row is None or not rev_row.is_active:
            raise PermanentError("the Rev.io credentials of this request no longer exist")
        if not rev_row.writes_enabled:
            raise PermanentError(f"writes are disabled for Rev.io client {rev_row.account}")
        rev = RevProcessor(
            credentials=rev_row.as_credentials(),
            session=_session_for(rev_row.pk),
            throttle=throttle_for(rev_row.as_credentials()),
            on_call=self.calls.append,
        )
        carrier_done = self.device_change.carrier_status_at or timezone.now()
        context = replace(context, today=carrier_done.date())
        for step in (Step.REV_SERVICE, Step.REV_PRODUCTS):
            self._check_cancelled()
            context = self._record(rev.perform(step, context, request.rev_service), context)
        return context

    # Writes ----------------------------------------------------------------------------------

    def _flush_calls(self, *, failed_call: CallRecord | None = None, error: str = "") -> None:
        if not self.calls:
            return
        calls = list(self.calls)
        self.calls.clear()  # in place: the processors hold this list's append
        BulkChangeLog.objects.bulk_create(
            logs.call_rows(
                calls,
                bulk_change_id=self.bulk_change.pk,
                device_change_id=self.device_change.pk,
                process_by=self.process_by,
                request_id=self.request_id,
                failed_call=failed_call,
                error_text=error,
            )
        )

    def _finish(
        self,
        status: str,
        *,
        outcome: str = "",
        error: str = "",
        failed_call: CallRecord | None = None,
        detail: str = "",
        next_attempt_at: datetime | None = None,
        description: str = logs.DEVICE_OUTCOME,
    ) -> bool:
        """Record the device's outcome (terminal, or RETRY_SCHEDULED) while holding the claim."""
        now = timezone.now()
        terminal = status in DeviceChange.TERMINAL
        with transaction.atomic():
            self._flush_calls(failed_call=failed_call, error=error)
            won = DeviceChange.objects.filter(
                pk=self.device_change.pk, claim_token=self.token, status=Status.PROCESSING
            ).update(
                status=status,
                is_processed=terminal,
                processed_at=now if terminal else None,
                last_error=error,
                claimed_until=None,
                claim_token=None,
                next_attempt_at=next_attempt_at,
            )
            if won:
                self.recorded = status
                logs.log_write(
                    bulk_change_id=self.bulk_change.pk,
                    device_change_id=self.device_change.pk,
                    description=description,
                    process_by=self.process_by,
                    request_id=self.request_id,
                    response_text=f"{status}: {outcome or error}",
                    error_text=(error + ("\n\n" + detail if detail else "")) if error else "",
                )
        if not won:
            logger.warning(
                "device change %s: lease lost before recording %s",
                self.device_change.pk,
                status,
                extra=self.extra,
            )
            return False
        level = logging.WARNING if error else logging.INFO
        logger.log(
            level,
            "device change %s (%s): %s %s",
            self.device_change.pk,
            self.device_change.iccid,
            status,
            error or outcome,
            extra=self.extra,
        )
        return True

    def _retry_or_give_up(self, error: TransientError) -> None:
        retry_number = self.device_change.attempts
        max_retries = settings.BULKCHANGE_MAX_RETRIES
        message = error.message
        if self.in_rev_step:
            message = f"carrier updated, Rev service not created yet: {message}"
        if not should_retry(retry_number, max_retries=max_retries):
            self._finish(
                Status.ERROR,
                error=f"gave up after {max_retries} retries: {message}",
                failed_call=error.call,
            )
            return
        delay = backoff_seconds(
            retry_number, base=settings.BULKCHANGE_RETRY_BASE_SECONDS, retry_after=error.retry_after
        )
        next_attempt_at = timezone.now() + timedelta(seconds=delay)
        recorded = self._finish(
            Status.RETRY_SCHEDULED,
            error=message,
            failed_call=error.call,
            next_attempt_at=next_attempt_at,
            description=logs.RETRY_SCHEDULED,
            outcome=f"retry {retry_number + 1} at {next_attempt_at.isoformat()}",
        )
        if recorded:
            transaction.on_commit(
                partial(
                    sqs.send_device_retry,
                    bulk_change_id=self.bulk_change.pk,
                    device_change_id=self.device_change.pk,
                    retry_number=retry_number + 1,
                    delay_seconds=sqs_delay_seconds(delay),
                    request_id=self.request_id,
                )
            )


__all__ = [
    "IntegrationError",
    "bulk_change_complete_if_done",
    "bulk_change_fan_out",
    "device_change_claim",
    "device_changes_process",
]
