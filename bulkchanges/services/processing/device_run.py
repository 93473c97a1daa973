"""One device change's remaining steps and its outcome (docs/architecture.md §6, §7).

Each outbound call's audit row is written before the call is sent and completed as soon as its
answer is in (a worker that dies mid-call leaves a row saying so, never a call without a row).
Each completed step is recorded — the lease renewed — before the next one starts; every write
checks the claim token, so a worker whose lease was taken over stops without writing.

Outcomes: PROCESSED, SKIPPED (already in the target, no carrier call), ERROR (permanent failure,
or out of retries), RETRY_SCHEDULED (transient failure: a delayed SQS message follows the
commit), AWAITING_CARRIER (the carrier is still working on the submitted change).

A cancel stops a device only before its first carrier write: the write start
(:func:`bulkchanges.transitions.device_change_start_write`) and the cancel are both
conditional and exactly one wins. A device whose write started runs to its end — every
remaining step, Rev.io included, its retries and carrier waits too — and records its real
outcome, whatever the bulk change's status says meanwhile.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone

from bulkchanges import sqs, transitions
from bulkchanges.models import (
    BulkChangeLog,
    CarrierCallback,
    Device,
    DeviceChange,
    IntegrationAuthentication,
)
from bulkchanges.ratelimit import throttle_for
from bulkchanges.retry import (
    backoff_seconds,
    should_retry,
    sqs_delay_seconds,
    waiting_delay_seconds,
)
from bulkchanges.services import logs
from bulkchanges.services.processing.fanout import writes_disabled_message
from bulkchanges.tokens import token_store
from bulkchanges.types import StatusUpdateRequest
from integrations.base import (
    WRITE_STEPS,
    CallbackEvent,
    CallbackOutcome,
    CallRecord,
    CallStart,
    CarrierPending,
    PermanentError,
    Progress,
    Step,
    StepResult,
    TransientError,
    UpdateContext,
    billing_processor_class,
    carrier_time_scale,
    http_session,
    processor_class,
)
from pondops.logcontext import log_context_bind
from pondops.metrics import device_outcome_count

logger = logging.getLogger(__name__)

Status = DeviceChange.Status

# One HTTP session per credentials per process (keep-alive pools shared by worker threads).
_sessions: dict[int, Any] = {}


def _session_for(credentials_id: int) -> Any:
    session = _sessions.get(credentials_id)
    if session is None:
        session = _sessions.setdefault(credentials_id, http_session())
    return session


class _LeaseLost(Exception):
    """Another worker took the device over (our lease expired); stop without writing."""


class _CancelledBeforeWrite(Exception):
    """The bulk change was cancelled before this device sent a carrier write: the cancel made
    it CANCELLED and released its claim; stop without calling the carrier."""


class DeviceRun:
    """Runs the remaining steps of one claimed device change and records its outcome."""

    def __init__(self, device_change: DeviceChange, *, process_by: str, request_id: str) -> None:
        self.device_change = device_change
        self.bulk_change = device_change.bulk_change
        self.token = device_change.claim_token
        self.process_by = process_by
        self.request_id = request_id or self.bulk_change.idempotency_key or ""
        # Answers not yet written to their rows (or calls whose recorder wrote no start row);
        # written with the next recorded step or outcome.
        self.calls: list[CallRecord] = []
        self.call_rows: dict[str, int] = {}  # call id -> its audit row, written at the start
        self.extra = {
            "bulk_change_id": self.bulk_change.pk,
            "device_change_id": device_change.pk,
            "request_id": self.request_id,
            "carrier": self.bulk_change.integration,
        }
        self.in_rev_step = False
        # The inventory status at claim time, and the carrier's answer if this run read it:
        # what ``previous_status`` records with the write start.
        device = device_change.device
        self.inventory_status = device.status.code if device and device.status else ""
        self.carrier_read: str | None = None
        self.recorded: str | None = None  # the status _finish wrote, when it won
        self.write_started = False  # this attempt recorded (or found) write_started_at
        self.notes: list[str] = []  # what the steps said ("reconciled by read"), for the outcome

    # The outcome paths --------------------------------------------------------------------

    def run(self) -> None:
        """Run the steps and record the outcome. Every path ends in a recorded outcome: should
        recording it fail with a bug of ours, the device ends ERROR saying so at once, rather
        than sitting PROCESSING until its lease expires.

        Every log line of the run — ours, the carrier clients', the libraries' — carries the
        device's ids and carrier through the log context."""
        with log_context_bind(**self.extra):
            self._run_recording_failures()

    def _run_recording_failures(self) -> None:
        try:
            self._run_and_record()
        except Exception as error:
            if self.recorded is not None:
                raise
            logger.exception(
                "device change %s: recording its outcome failed",
                self.device_change.pk,
                extra=self.extra,
            )
            self._finish(
                Status.ERROR,
                error=f"internal error while recording the outcome: {type(error).__name__}: "
                f"{error}",
                detail=traceback.format_exc(),
            )

    def _run_and_record(self) -> None:
        try:
            self._run()
        except _LeaseLost:
            logger.warning(
                "device change %s: lease lost to another worker; stopping",
                self.device_change.pk,
                extra=self.extra,
            )
        except _CancelledBeforeWrite:
            logger.info(
                "device change %s: bulk change cancelled before its first carrier write; "
                "stopped without calling the carrier",
                self.device_change.pk,
                extra=self.extra,
            )
        except CarrierPending as pending:
            self._wait(pending)
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
            raise PermanentError(writes_disabled_message(bulk_change))
        request = StatusUpdateRequest.from_legacy(device_change.change_request)
        processor_cls = processor_class(bulk_change.integration)
        processor = processor_cls(
            credentials=credentials.as_credentials(),
            session=_session_for(credentials.pk),
            throttle=throttle_for(credentials.as_credentials()),
            on_call=self._call_answered,
            on_call_start=self._call_started,
            token_store=token_store,
        )
        context = UpdateContext(
            device_change_id=device_change.pk,
            bulk_change_id=bulk_change.pk,
            iccid=device_change.iccid,
            msisdn=device_change.msisdn
            or (device_change.device.msisdn if device_change.device else ""),
            eid=device_change.eid or (device_change.device.eid if device_change.device else ""),
            imei=device_change.device.imei if device_change.device else "",
            target_status=request.update_status,
            progress=self._progress(),
            account_number=request.account_number,
            request_id=self.request_id,
            options=request.options,
        )
        processor.check_identifiers(context)
        if not request.is_ignore_current_status and self._nothing_done_yet(context.progress):
            current = self._current_status(processor, context)
            mapping = processor_cls.statuses[request.update_status]
            already = {request.update_status.lower(), mapping.post_update_status.lower()}
            if current is not None and current.lower() in already:
                outcome = f"already {request.update_status}; no carrier call made"
                self._finish(Status.SKIPPED, outcome=outcome)
                return
        for step in processor_cls.steps:
            if not context.progress.is_done(step):
                if step in WRITE_STEPS and not self.write_started:
                    self._record_write_started(context)
                if step is Step.CONFIRM:
                    context = replace(context, callbacks=self._callbacks(context))
                result = processor.perform(step, context)
                if "carrier_submitted_at" in result.updates and not result.updates.get(
                    "confirm_deadline_at"
                ):
                    result = self._with_deadline(result, processor.confirm_deadline(context))
                context = self._record(result, context)
        self._update_inventory(request)
        if request.rev_service is not None:
            context = self._create_rev_service(request, context)
        outcome = f"{request.update_status} set"
        if self.notes:
            outcome += f" ({'; '.join(self.notes)})"
        self._finish(Status.PROCESSED, outcome=outcome)

    # Steps --------------------------------------------------------------------------------

    def _progress(self) -> Progress:
        device_change = self.device_change
        return Progress(
            carrier_status_at=device_change.carrier_status_at,
            service_status_at=device_change.service_status_at,
            carrier_request_id=device_change.carrier_request_id,
            carrier_submitted_at=device_change.carrier_submitted_at,
            confirm_deadline_at=device_change.confirm_deadline_at,
            write_started_at=device_change.write_started_at,
            rev_service_id=device_change.rev_service_id,
            rev_product_ids=dict(device_change.rev_product_ids or {}),
        )

    @staticmethod
    def _nothing_done_yet(progress: Progress) -> bool:
        """No carrier step recorded yet — not even a prepared request id (Teal), after which
        the current status is no longer read: the request may already be on its way."""
        return (
            progress.carrier_status_at is None
            and progress.carrier_submitted_at is None
            and progress.service_status_at is None
            and progress.write_started_at is None
            and not progress.carrier_request_id
        )

    def _current_status(self, processor: Any, context: UpdateContext) -> str | None:
        device = self.device_change.device
        if device is not None and device.status is not None:
            code: str = device.status.code
            return code
        current: str | None = processor.read_status(context)
        self.carrier_read = current
        self._flush_calls()
        return current

    def _record(self, result: StepResult, context: UpdateContext) -> UpdateContext:
        """Persist a completed step (and renew the lease) before the next one starts. A cancel
        does not stop a device here: once its write started it runs to its end (before, the
        cancel released its claim, and this UPDATE finds no row of ours)."""
        updates = dict(result.updates)
        if "rev_product_ids" in updates:
            updates["rev_product_ids"] = dict(updates["rev_product_ids"])
        lease = timezone.now() + timedelta(seconds=settings.BULKCHANGE_LEASE_SECONDS)
        mine = DeviceChange.objects.filter(pk=self.device_change.pk, claim_token=self.token)
        with transaction.atomic():
            self._flush_calls()
            won = mine.update(claimed_until=lease, **updates)
        if not won:
            self._stop_lost_claim()
        for name, value in updates.items():
            setattr(self.device_change, name, value)
        if result.note:
            self.notes.append(result.note)
        return replace(context, progress=replace(context.progress, **result.updates))

    def _record_write_started(self, context: UpdateContext) -> None:
        """Mark, before this attempt's first carrier write, that the carrier may have our
        change from now on, with the status it had before (``previous_status``: the carrier's
        answer if this run read it, else the inventory at claim time). One conditional UPDATE
        that races a cancel: the loser of the two is the worker, which then stops without a
        carrier write (docs/architecture.md §6, "Cancel"). The context keeps the value the
        attempt started with: a write started by an *earlier* attempt is what tells the
        processor that an answer may have been lost (repeat safety)."""
        if context.progress.write_started_at is None:
            now = timezone.now()
            previous = self.carrier_read if self.carrier_read is not None else self.inventory_status
            with transaction.atomic():
                self._flush_calls()
                won = transitions.device_change_start_write(
                    device_change_id=self.device_change.pk,
                    token=self.token,
                    now=now,
                    previous_status=previous or "",
                    lease_until=now + timedelta(seconds=settings.BULKCHANGE_LEASE_SECONDS),
                )
            if not won:
                self._stop_lost_claim()
            self.device_change.write_started_at = now
            self.device_change.previous_status = (previous or "")[:40]
        self.write_started = True

    def _stop_lost_claim(self) -> None:
        """A token-guarded write found no row of ours: a cancel released the claim (before any
        carrier write), or another worker took over an expired lease."""
        status = (
            DeviceChange.objects.filter(pk=self.device_change.pk)
            .values_list("status", flat=True)
            .first()
        )
        if status == Status.CANCELLED:
            raise _CancelledBeforeWrite
        raise _LeaseLost

    def _with_deadline(self, result: StepResult, deadline: timedelta) -> StepResult:
        """SUBMIT's result with the confirm deadline (the carrier's figure, time-scaled)."""
        submitted = result.updates["carrier_submitted_at"]
        scaled = timedelta(seconds=deadline.total_seconds() * carrier_time_scale())
        return replace(
            result, updates={**result.updates, "confirm_deadline_at": submitted + scaled}
        )

    def _callbacks(self, context: UpdateContext) -> tuple[CallbackEvent, ...]:
        """The stored callbacks for this device change's carrier request, oldest first."""
        request_id = context.progress.carrier_request_id
        if not request_id:
            return ()
        rows = list(
            CarrierCallback.objects.filter(
                integration_authentication_id=self.bulk_change.integration_authentication_id,
                request_id=request_id,
            )
            .filter(Q(device_change_id=self.device_change.pk) | Q(device_change__isnull=True))
            .order_by("id")
        )
        # A callback that came before SUBMIT was recorded could not be matched then: it is ours.
        unmatched = [row.pk for row in rows if row.device_change_id is None]
        if unmatched:
            CarrierCallback.objects.filter(pk__in=unmatched, device_change__isnull=True).update(
                device_change_id=self.device_change.pk
            )
        return tuple(
            CallbackEvent(
                request_id=row.request_id,
                outcome=CallbackOutcome(row.outcome),
                device_id=row.device_id,
                device_kind=row.device_kind,
                reason=row.reason,
                received_at=row.received_at,
            )
            for row in rows
        )

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
        rev = billing_processor_class()(
            credentials=rev_row.as_credentials(),
            session=_session_for(rev_row.pk),
            throttle=throttle_for(rev_row.as_credentials()),
            on_call=self._call_answered,
            on_call_start=self._call_started,
        )
        carrier_done = self.device_change.carrier_status_at or timezone.now()
        context = replace(context, today=carrier_done.date())
        for step in (Step.REV_SERVICE, Step.REV_PRODUCTS):
            context = self._record(rev.perform(step, context, request.rev_service), context)
        return context

    # Writes ----------------------------------------------------------------------------------

    def _call_started(self, start: CallStart) -> None:
        """The call's audit row, committed before the call is sent. If it cannot be written,
        the call is not sent: the device is retried later."""
        try:
            self.call_rows[start.call_id] = logs.call_started_write(
                start,
                bulk_change_id=self.bulk_change.pk,
                device_change_id=self.device_change.pk,
                process_by=self.process_by,
                request_id=self.request_id,
            )
        except DatabaseError as error:
            raise TransientError(
                f"the audit row of {start.description!r} could not be written "
                f"({type(error).__name__}); the call was not sent"
            ) from error

    def _call_answered(self, call: CallRecord) -> None:
        """Complete the call's row at once; should the database refuse, the answer waits for
        the next recorded step (the row already says the call was made)."""
        row_id = self.call_rows.get(call.call_id)
        if row_id is not None:
            try:
                logs.call_row_complete(row_id, call)
                return
            except DatabaseError:
                logger.warning(
                    "device change %s: the answer of %r is recorded with the next step",
                    self.device_change.pk,
                    call.description,
                    extra=self.extra,
                    exc_info=True,
                )
        self.calls.append(call)

    def _flush_calls(self, *, failed_call: CallRecord | None = None, error: str = "") -> None:
        """Write the answers still pending, and mark the call that failed the device with the
        error (its row may have been completed already)."""
        if failed_call is not None and failed_call not in self.calls:
            row_id = self.call_rows.get(failed_call.call_id)
            if row_id is not None:
                logs.call_row_complete(
                    row_id, failed_call, failed_call=failed_call, error_text=error
                )
        if not self.calls:
            return
        calls = list(self.calls)
        self.calls.clear()
        unstarted = []
        for call in calls:
            row_id = self.call_rows.get(call.call_id)
            if row_id is None:
                unstarted.append(call)
            else:
                logs.call_row_complete(row_id, call, failed_call=failed_call, error_text=error)
        BulkChangeLog.objects.bulk_create(
            logs.call_rows(
                unstarted,
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
        with transaction.atomic():
            self._flush_calls(failed_call=failed_call, error=error)
            won = transitions.device_change_finish(
                device_change_id=self.device_change.pk,
                token=self.token,
                target=status,
                now=timezone.now(),
                last_error=error,
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
        device_outcome_count(carrier=self.bulk_change.integration, status=status)  # committed
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

    def _wait(self, pending: CarrierPending) -> None:
        """The carrier is still working: AWAITING_CARRIER until the next check on the waiting
        schedule (never past the confirm deadline), the RetryNumber unchanged; a delayed
        device message follows the commit."""
        now = timezone.now()
        delay = waiting_delay_seconds(
            self.device_change.carrier_waits,
            schedule_minutes=settings.BULKCHANGE_WAITING_SCHEDULE_MINUTES,
            time_scale=carrier_time_scale(),
        )
        next_attempt_at = now + timedelta(seconds=delay)
        deadline = self.device_change.confirm_deadline_at
        if deadline is not None:
            next_attempt_at = max(now, min(next_attempt_at, deadline))
        with transaction.atomic():
            self._flush_calls()  # the last check answered "pending": not a failed call
            won = transitions.device_change_wait(
                device_change_id=self.device_change.pk,
                token=self.token,
                now=now,
                next_attempt_at=next_attempt_at,
            )
            if won:
                self.recorded = Status.AWAITING_CARRIER
                logs.log_write(
                    bulk_change_id=self.bulk_change.pk,
                    device_change_id=self.device_change.pk,
                    description=logs.AWAITING_CARRIER,
                    process_by=self.process_by,
                    request_id=self.request_id,
                    response_text=f"{Status.AWAITING_CARRIER}: {pending.message}; next check at "
                    f"{next_attempt_at.isoformat()}",
                )
                self._send_after_commit(
                    retry_number=self.device_change.attempts,
                    delay=(next_attempt_at - now).total_seconds(),
                )
        if not won:
            logger.warning(
                "device change %s: lease lost before recording the wait; stopping",
                self.device_change.pk,
                extra=self.extra,
            )
            return
        device_outcome_count(carrier=self.bulk_change.integration, status=Status.AWAITING_CARRIER)
        logger.info(
            "device change %s (%s): %s; next check at %s",
            self.device_change.pk,
            self.device_change.iccid,
            pending.message,
            next_attempt_at.isoformat(),
            extra=self.extra,
        )

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
            retry_number,
            base=settings.BULKCHANGE_RETRY_BASE_SECONDS,
            retry_after=error.retry_after,
            cap=settings.BULKCHANGE_MAX_RETRY_DELAY_SECONDS,
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
            self._send_after_commit(retry_number=retry_number + 1, delay=delay)

    def _send_after_commit(self, *, retry_number: int, delay: float) -> None:
        """The device's next message, sent once the row that makes it due is committed (the
        database is the outbox: a lost send only delays the device)."""
        transaction.on_commit(
            partial(
                sqs.send_device_retry,
                bulk_change_id=self.bulk_change.pk,
                device_change_id=self.device_change.pk,
                retry_number=retry_number,
                delay_seconds=sqs_delay_seconds(delay),
                request_id=self.request_id,
            )
        )
