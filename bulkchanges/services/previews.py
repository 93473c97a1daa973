"""Previews: a dry run of a proposed request, or of an existing bulk change, against the carrier
(docs/operator-features.md, "Preview").

Each device's current status is read through its carrier's one-device read, under the same
rate and concurrency limits as processing (``throttle_for``), with one audit row per call
(``BulkChangeLog.preview``), and judged against the request: a :class:`PreviewDevice.Verdict`.
**No carrier write is ever made**: the processor's client is built ``read_only``, and refuses
(``WriteRefused``) any call that is not one of its carrier's reads before it is sent.

The reads run in the background like a bulk change's devices: :func:`preview_fan_out` hands out
the unread devices in chunks of BULKCHANGE_CHUNK_SIZE, each read by :func:`preview_devices_read`
on up to the credentials' ``max_concurrency`` threads. A device is read only after its claim —
a compare-and-set on its lease (``claim_token``, ``claimed_until``) — and its verdict is written
only while that claim holds, so a re-delivered chunk or a re-enqueued preview reads each device
once (a worker that dies mid-read leaves a lease that expires; the reaper re-enqueues the
preview, :func:`previews_stalled_resend`). The last verdict finishes the preview (DONE), once.

A bulk change is created from a DONE preview (:func:`preview_bulk_change_create`) through the
normal validation and creation service; by default with only the devices that would change.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from queue import SimpleQueue
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from bulkchanges import transitions
from bulkchanges.errors import ApplicationError, NotFound
from bulkchanges.models import (
    BulkChange,
    Device,
    DeviceStatus,
    IntegrationAuthentication,
    Preview,
    PreviewDevice,
    Tenant,
)
from bulkchanges.ratelimit import throttle_for
from bulkchanges.retry import backoff_seconds, should_retry
from bulkchanges.services import logs
from bulkchanges.services.bulk_changes import (
    BATCH,
    ValidatedRequest,
    bulk_change_create,
    status_update_request_validate,
    too_many_devices_error,
)

# The device runner's HTTP sessions (one per credentials per process) and thread drain serve
# the preview's reads too.
from bulkchanges.services.processing.device_run import _session_for
from bulkchanges.services.processing.runner import _drain_in_thread
from bulkchanges.tokens import token_store
from bulkchanges.types import DeviceRef, StatusUpdateRequest
from integrations.base import (
    AuthenticationError,
    CallRecord,
    CallStart,
    PermanentError,
    StatusUpdateProcessor,
    TransientError,
    UpdateContext,
    WriteRefused,
    processor_class,
)

logger = logging.getLogger(__name__)

Verdict = PreviewDevice.Verdict
Enqueue = Callable[[list[int]], object]

# The longest one wait between a read's retries (a carrier's Retry-After included): the
# device's lease is renewed before each retry, the chunk's task must not sit for minutes.
MAX_READ_RETRY_DELAY_SECONDS = 10.0

# --- Creating --------------------------------------------------------------------------------


def preview_create(
    *,
    tenant: Tenant,
    actor: str,
    validated: ValidatedRequest,
    devices: Sequence[DeviceRef],
    bulk_change: BulkChange | None = None,
) -> Preview:
    """Record a preview of ``validated`` over ``devices`` (QUEUED, every device unread) with
    its audit row, and enqueue its reads once that commits. ``actor`` is who asked
    (``admin:<user>``, ``api:<user>``, ``cli:<user>``). The devices must already be parsed
    and de-duplicated (the same parser as a bulk change's); none, or too many, is refused."""
    if not devices:
        raise ApplicationError(
            "a preview needs at least one valid device", fields={"devices": ["no valid device"]}
        )
    if len(devices) > settings.BULKCHANGE_MAX_DEVICES_PER_REQUEST:
        raise too_many_devices_error()
    credentials, request = validated.credentials, validated.request
    now = timezone.now()
    with transaction.atomic():
        preview = Preview.objects.create(
            tenant=tenant,
            integration=credentials.integration,
            integration_authentication=credentials,
            request=request.to_legacy(),
            bulk_change=bulk_change,
            created_by=actor,
            queued_at=now,
        )
        PreviewDevice.objects.bulk_create(
            (
                PreviewDevice(
                    preview=preview,
                    iccid=device.iccid,
                    msisdn=device.msisdn,
                    eid=device.eid,
                    target_status=request.update_status,
                )
                for device in devices
            ),
            batch_size=BATCH,
        )
        what = f"of bulk change {bulk_change.pk}" if bulk_change is not None else "of a request"
        logs.log_write(
            preview_id=preview.pk,
            description=logs.PREVIEW_CREATED,
            process_by=actor,
            response_text=f"preview {what}: {len(devices):,} devices to read, target "
            f"{request.update_status}",
        )
        transaction.on_commit(partial(preview_enqueue, preview.pk))
    logger.info(
        "preview %s created by %s: %s devices against %s on %s",
        preview.pk,
        actor,
        len(devices),
        request.update_status,
        credentials.integration,
        extra={"preview_id": preview.pk},
    )
    return preview


def partner_preview_create(
    *,
    tenant: Tenant,
    actor: str,
    request: Mapping[str, Any],
    device_rows: Sequence[Mapping[str, Any]],
) -> Preview:
    """A preview from an API request: the same fields and device list as a bulk change's
    create, parsed and validated the same way (every bad line refused)."""
    from bulkchanges.services.partners import partner_device_list_parse, partner_request_validate

    devices = partner_device_list_parse(device_rows=device_rows)
    validated = partner_request_validate(tenant=tenant, request=request)
    return preview_create(tenant=tenant, actor=actor, validated=validated, devices=devices.devices)


def preview_of_bulk_change_create(*, bulk_change: BulkChange, actor: str) -> Preview:
    """A preview of an existing bulk change: its request, over its devices (as they stand in
    the bulk change, whatever their status there), on its credentials."""
    request = StatusUpdateRequest.from_legacy(bulk_change.request or {})
    validated = ValidatedRequest(
        credentials=bulk_change.integration_authentication, request=request
    )
    devices = [
        DeviceRef(iccid=iccid, msisdn=msisdn, eid=eid)
        for iccid, msisdn, eid in bulk_change.device_changes.order_by("pk").values_list(
            "iccid", "msisdn", "eid"
        )
    ]
    return preview_create(
        tenant=bulk_change.tenant,
        actor=actor,
        validated=validated,
        devices=devices,
        bulk_change=bulk_change,
    )


def preview_enqueue(preview_id: int) -> None:
    """Start (or restart) a preview's reads: its fan-out task."""
    from bulkchanges.tasks import enqueue_preview

    enqueue_preview(preview_id)


# --- Running ---------------------------------------------------------------------------------


def preview_fan_out(*, preview_id: int, enqueue: Enqueue, process_by: str) -> int:
    """QUEUED → RUNNING, then hand out every unread, unclaimed device in chunks (``enqueue``
    gets each chunk's ids). Safe to run again (a re-delivery, the reaper's re-enqueue): a
    device is read only by whoever wins its claim. Returns the chunks handed out."""
    preview = (
        Preview.objects.select_related("integration_authentication").filter(pk=preview_id).first()
    )
    if preview is None or preview.status in Preview.TERMINAL:
        return 0
    now = timezone.now()
    credentials = preview.integration_authentication
    if not credentials.is_active:
        _fail(
            preview,
            f"credentials {credentials.pk} ({credentials.account or credentials.username}) are "
            "no longer active",
            process_by=process_by,
        )
        return 0
    transitions.preview_start(preview_id=preview_id, now=now)
    unread = _claimable(PreviewDevice.objects.filter(preview_id=preview_id), now).order_by("pk")
    size = settings.BULKCHANGE_CHUNK_SIZE
    chunks, after = 0, 0
    while True:
        # Page by id, no cursor left open: an inline hand-off (sync mode) reads meanwhile.
        chunk = list(unread.filter(pk__gt=after).values_list("pk", flat=True)[:size])
        if not chunk:
            break
        enqueue(chunk)
        chunks, after = chunks + 1, chunk[-1]
    if not chunks:
        preview_finish_if_done(preview_id=preview_id, process_by=process_by)
    return chunks


def _claimable(rows: QuerySet[PreviewDevice], now: datetime) -> QuerySet[PreviewDevice]:
    """Unread devices nobody holds: never claimed, or their reader's lease expired."""
    return rows.filter(verdict="").filter(Q(claim_token__isnull=True) | Q(claimed_until__lt=now))


def preview_devices_read(*, preview_id: int, ids: Sequence[int], process_by: str) -> int:
    """Claim and read ``ids`` of a running preview on up to the credentials' max_concurrency
    threads (each with its own database connection, closed when it is done); then finish the
    preview if nothing is left unread. Returns the devices this call read."""
    preview = (
        Preview.objects.select_related("integration_authentication").filter(pk=preview_id).first()
    )
    if preview is None or preview.status in Preview.TERMINAL or not ids:
        return 0
    reader = _Reader(preview, process_by=process_by)
    threads = min(preview.integration_authentication.max_concurrency, len(ids))
    if threads <= 1:
        done = sum(reader.read(pk) for pk in ids)
    else:
        pending: SimpleQueue[int] = SimpleQueue()
        for pk in ids:
            pending.put(pk)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            done = sum(pool.map(lambda _: _drain_in_thread(pending, reader.read), range(threads)))
    preview_finish_if_done(preview_id=preview_id, process_by=process_by)
    return done


def preview_finish_if_done(*, preview_id: int, process_by: str) -> bool:
    """DONE once no device is unread, with one audit row carrying the verdict counts. Written
    once (the transition is conditional)."""
    with transaction.atomic():
        if not transitions.preview_finish(preview_id=preview_id, now=timezone.now()):
            return False
        counts = preview_verdict_counts(preview_id=preview_id)
        logs.log_write(
            preview_id=preview_id,
            description=logs.PREVIEW_FINISHED,
            process_by=process_by,
            response_text=", ".join(f"{Verdict(v).label} {n}" for v, n in counts.items())
            or "no devices",
        )
    logger.info("preview %s done", preview_id, extra={"preview_id": preview_id})
    return True


def _fail(preview: Preview, error: str, *, process_by: str) -> None:
    with transaction.atomic():
        if transitions.preview_fail(preview_id=preview.pk, now=timezone.now(), error=error):
            logs.log_write(
                preview_id=preview.pk,
                description=logs.PREVIEW_FAILED,
                process_by=process_by,
                error_text=error,
            )
    logger.warning("preview %s failed: %s", preview.pk, error, extra={"preview_id": preview.pk})


@dataclass(frozen=True)
class PreviewProgress:
    """The one read model of a preview's progress (the admin page, its poll, the API, the
    CLI): devices in all, read so far, and how many got each verdict (declared order)."""

    total: int
    read: int
    counts: dict[str, int]

    @property
    def percent(self) -> int:
        return 100 if not self.total else int(100 * self.read / self.total)


def preview_progress(*, preview_id: int) -> PreviewProgress:
    """One grouped query on the (preview, verdict) index."""
    counted = dict(
        PreviewDevice.objects.filter(preview_id=preview_id)
        .order_by()
        .values_list("verdict")
        .annotate(n=Count("id"))
    )
    counts = {verdict: counted[verdict] for verdict in Verdict.values if verdict in counted}
    total = sum(counted.values())
    return PreviewProgress(total=total, read=total - counted.get("", 0), counts=counts)


def preview_verdict_counts(*, preview_id: int) -> dict[str, int]:
    """Devices per verdict, in the verdicts' declared order (unread ones not counted)."""
    return preview_progress(preview_id=preview_id).counts


@dataclass(frozen=True)
class Judgement:
    verdict: str
    message: str
    status_read: str = ""


class _Calls:
    """One device read's audit rows: each call's row written before it is sent and completed
    with its answer, as a bulk change's calls are. A row that cannot be written stops the call
    (a transient failure: the read is retried)."""

    def __init__(self, *, preview_id: int, process_by: str) -> None:
        self.preview_id = preview_id
        self.process_by = process_by
        self.rows: dict[str, int] = {}

    def started(self, start: CallStart) -> None:
        try:
            self.rows[start.call_id] = logs.preview_call_started_write(
                start, preview_id=self.preview_id, process_by=self.process_by
            )
        except DatabaseError as error:
            raise TransientError(
                f"the audit row of {start.description!r} could not be written "
                f"({type(error).__name__}); the call was not sent"
            ) from error

    def answered(self, call: CallRecord) -> None:
        row_id = self.rows.get(call.call_id)
        if row_id is not None:
            logs.call_row_complete(row_id, call)
            return
        logs.log_write(
            preview_id=self.preview_id,
            description=call.description,
            process_by=self.process_by,
            request_text=call.request_text,
            response_text=call.response_text,
            response_status=call.response_status,
            has_errors=call.response_status is None or call.response_status >= 400,
        )


class _Reader:
    """Reads the devices of one preview: claim, read (retrying transient failures), judge,
    record under the claim."""

    def __init__(self, preview: Preview, *, process_by: str) -> None:
        self.preview = preview
        self.process_by = process_by
        self.credentials: IntegrationAuthentication = preview.integration_authentication
        self.processor_cls: type[StatusUpdateProcessor[Any]] = processor_class(preview.integration)
        self.request = StatusUpdateRequest.from_legacy(preview.request or {})

    def read(self, pk: int) -> bool:
        token = uuid.uuid4()
        now = timezone.now()
        won = _claimable(PreviewDevice.objects.filter(pk=pk), now).update(
            claim_token=token, claimed_until=self._lease(now), attempts=F("attempts") + 1
        )
        if not won:
            return False
        device = PreviewDevice.objects.get(pk=pk)
        try:
            judgement = self._judge(device, token)
        except _LeaseLost:
            return False
        except Exception as error:  # a bug of ours: record it on the device, keep going
            logger.exception("preview device %s: read failed unexpectedly", pk)
            judgement = Judgement(Verdict.COULD_NOT_READ, f"internal error: {error}")
        with transaction.atomic():
            written = PreviewDevice.objects.filter(pk=pk, claim_token=token, verdict="").update(
                verdict=judgement.verdict,
                message=judgement.message[:2000],
                status_read=judgement.status_read[:40],
                read_at=timezone.now(),
                claim_token=None,
                claimed_until=None,
            )
            if written:
                logs.log_write(
                    preview_id=self.preview.pk,
                    description=logs.PREVIEW_DEVICE_VERDICT,
                    process_by=self.process_by,
                    response_text=f"{device.iccid}: {judgement.verdict}: {judgement.message}",
                    has_errors=judgement.verdict == Verdict.COULD_NOT_READ,
                )
        return bool(written)

    @staticmethod
    def _lease(now: datetime) -> datetime:
        return now + timedelta(seconds=settings.BULKCHANGE_LEASE_SECONDS)

    def _processor(self) -> StatusUpdateProcessor[Any]:
        calls = _Calls(preview_id=self.preview.pk, process_by=self.process_by)
        credentials = self.credentials.as_credentials()
        return self.processor_cls(
            credentials=credentials,
            session=_session_for(self.credentials.pk),
            throttle=throttle_for(credentials),
            on_call=calls.answered,
            on_call_start=calls.started,
            token_store=token_store,
            read_only=True,
        )

    def _context(self, device: PreviewDevice) -> UpdateContext:
        inventory = Device.objects.filter(
            tenant_id=self.preview.tenant_id,
            integration=self.preview.integration,
            iccid=device.iccid,
        ).first()
        return UpdateContext(
            device_change_id=0,
            bulk_change_id=0,
            iccid=device.iccid,
            msisdn=device.msisdn or (inventory.msisdn if inventory else ""),
            eid=device.eid or (inventory.eid if inventory else ""),
            imei=inventory.imei if inventory else "",
            target_status=device.target_status or self.request.update_status,
            account_number=self.request.account_number,
            request_id=f"pondops-preview-{self.preview.pk}-{device.pk}",
            options=self.request.options,
        )

    def _judge(self, device: PreviewDevice, token: uuid.UUID) -> Judgement:
        processor = self._processor()
        context = self._context(device)
        target = self.processor_cls.canonical_status(context.target_status)
        try:
            processor.check_identifiers(context)
        except PermanentError as error:
            return Judgement(Verdict.MISSING_IDENTIFIER, error.message)
        retry_number = 0
        while True:
            try:
                read = processor.preview_read(context)
                break
            except WriteRefused:
                raise  # a read that writes is a bug of ours, never a carrier's answer
            except AuthenticationError as error:
                return Judgement(Verdict.COULD_NOT_READ, error.message)
            except PermanentError as error:
                if _unknown_to_carrier(error):
                    return Judgement(Verdict.UNKNOWN_TO_CARRIER, error.message)
                return Judgement(Verdict.COULD_NOT_READ, error.message)
            except TransientError as error:
                max_retries = settings.BULKCHANGE_MAX_RETRIES
                if not should_retry(retry_number, max_retries=max_retries):
                    return Judgement(
                        Verdict.COULD_NOT_READ,
                        f"gave up after {max_retries} retries: {error.message}",
                    )
                time.sleep(
                    backoff_seconds(
                        retry_number,
                        base=settings.BULKCHANGE_PREVIEW_RETRY_BASE_SECONDS,
                        retry_after=error.retry_after,
                        cap=MAX_READ_RETRY_DELAY_SECONDS,
                    )
                )
                retry_number += 1
                self._renew(device.pk, token)
        if read.missing:
            return Judgement(Verdict.MISSING_IDENTIFIER, read.missing)
        return judge(
            processor_cls=self.processor_cls,
            current=read.status,
            target=target,
            ignore_current_status=self.request.is_ignore_current_status,
        )

    def _renew(self, pk: int, token: uuid.UUID) -> None:
        renewed = PreviewDevice.objects.filter(pk=pk, claim_token=token, verdict="").update(
            claimed_until=self._lease(timezone.now())
        )
        if not renewed:
            raise _LeaseLost


class _LeaseLost(Exception):
    """Another reader took the device over (our lease expired): stop without writing."""


def _unknown_to_carrier(error: PermanentError) -> bool:
    """The carrier does not know the device: a 404 from its read, or a read answered without
    the device (ThingSpace's empty list, which raises with no failed call of its own)."""
    call = error.call
    if call is None:
        return "has no" in error.message or "unknown" in error.message.lower()
    return call.response_status == 404


def judge(
    *,
    processor_cls: type[StatusUpdateProcessor[Any]],
    current: str | None,
    target: str,
    ignore_current_status: bool,
) -> Judgement:
    """The verdict for a device read as ``current`` (a canonical name, or None when it matches
    no target) against ``target`` — what the run would do, by the same rules: already there is
    skipped (unless IsIgnoreCurrentStatus), the status table's refused moves are refused."""
    if current is None:
        return Judgement(
            Verdict.WOULD_CHANGE,
            f"its status at {processor_cls.display_name} matches no target; the run would set "
            f"{target}",
        )
    post_update = processor_cls.statuses[target].post_update_status
    if current.lower() in {target.lower(), post_update.lower()}:
        if ignore_current_status:
            return Judgement(
                Verdict.WOULD_CHANGE,
                f"already {current}; set again all the same (IsIgnoreCurrentStatus)",
                current,
            )
        return Judgement(
            Verdict.ALREADY_IN_TARGET, f"already {current}; the run would skip it", current
        )
    refusal = processor_cls.transition_refusal(current=current, target=target)
    if refusal:
        return Judgement(Verdict.TRANSITION_REFUSED, refusal, current)
    return Judgement(Verdict.WOULD_CHANGE, f"{current} → {target}", current)


# --- Stalled previews (the reaper) -------------------------------------------------------------


def previews_stalled_resend(*, now: datetime, stalled_before: datetime) -> int:
    """Re-enqueue every open preview that has unread devices, none held on a live lease and
    no verdict since ``stalled_before`` (a worker died with its chunk, or the chunk's task was
    lost): a compare-and-set on ``queued_at``, so two reaper passes re-enqueue it once. A
    running preview with nothing left unread is finished (a finish a crash missed)."""
    resent = 0
    open_previews = Preview.objects.filter(
        status__in=(Preview.Status.QUEUED, Preview.Status.RUNNING)
    )
    unread = PreviewDevice.objects.filter(preview=OuterRef("pk"), verdict="")
    held = unread.filter(claimed_until__gte=now)
    recent = PreviewDevice.objects.filter(preview=OuterRef("pk"), read_at__gte=stalled_before)
    stalled = (
        open_previews.filter(Exists(unread), queued_at__lt=stalled_before)
        .exclude(Exists(held))
        .exclude(Exists(recent))
        .values_list("pk", "queued_at")
    )
    for preview_id, queued_at in list(stalled):
        if Preview.objects.filter(pk=preview_id, queued_at=queued_at).update(queued_at=now):
            transaction.on_commit(partial(preview_enqueue, preview_id))
            resent += 1
            logger.warning(
                "preview %s stalled; re-enqueued", preview_id, extra={"preview_id": preview_id}
            )
    for preview_id in open_previews.exclude(Exists(unread)).values_list("pk", flat=True):
        preview_finish_if_done(preview_id=preview_id, process_by="reaper")
    return resent


# --- A bulk change from a preview --------------------------------------------------------------


def preview_bulk_change_create(
    *,
    preview: Preview,
    actor: str,
    include_already_in_target: bool = False,
    idempotency_key: str | None = None,
    callback_url: str = "",
) -> tuple[BulkChange, bool]:
    """Create a bulk change from a DONE preview (not a revert's: see services.reverts) with the
    devices that would change (and, when asked, those already in the target), through the
    normal validation and :func:`bulk_change_create` — its gates included; the run checks
    each device again. ``BulkChange.preview`` is set. Returns (bulk_change, created) as
    bulk_change_create does (a repeated ``idempotency_key`` returns the original)."""
    if preview.revert_of_id is not None:
        raise ApplicationError(
            f"preview {preview.pk} is a revert's; create the revert from it instead",
            code="conflict",
            status=409,
        )
    if preview.status != Preview.Status.DONE:
        raise ApplicationError(
            f"preview {preview.pk} is {preview.status}; a bulk change is created from a "
            "finished (DONE) preview",
            code="conflict",
            status=409,
        )
    verdicts = [Verdict.WOULD_CHANGE]
    if include_already_in_target:
        verdicts.append(Verdict.ALREADY_IN_TARGET)
    devices = [
        DeviceRef(iccid=iccid, msisdn=msisdn, eid=eid)
        for iccid, msisdn, eid in preview.devices.filter(verdict__in=verdicts)
        .order_by("pk")
        .values_list("iccid", "msisdn", "eid")
    ]
    if not devices and not idempotency_key:
        raise ApplicationError(
            f"preview {preview.pk} has no device that would change"
            + ("" if include_already_in_target else " (nor chosen: already in target)"),
            fields={"devices": ["no device to change"]},
        )
    validated = _revalidate(preview)
    with transaction.atomic():
        bulk_change, created = bulk_change_create(
            tenant=preview.tenant,
            created_by=actor,
            validated=validated,
            devices=devices,
            idempotency_key=idempotency_key or None,
            callback_url=callback_url,
        )
        if created:
            BulkChange.objects.filter(pk=bulk_change.pk).update(preview=preview)
            bulk_change.preview = preview
            logs.log_write(
                preview_id=preview.pk,
                description=logs.PREVIEW_BULK_CHANGE_CREATED,
                process_by=actor,
                response_text=f"bulk change {bulk_change.pk} created with {len(devices):,} "
                f"devices ({', '.join(Verdict(v).label for v in verdicts)})",
            )
            logs.log_write(
                bulk_change_id=bulk_change.pk,
                description=logs.PREVIEW_BULK_CHANGE_CREATED,
                process_by=actor,
                response_text=f"created from preview {preview.pk}",
            )
    return bulk_change, created


def _revalidate(preview: Preview) -> ValidatedRequest:
    """The preview's request validated again, as a new request would be (its credentials may
    have been deactivated since, a status removed)."""
    request = StatusUpdateRequest.from_legacy(preview.request or {})
    post_update = (
        DeviceStatus.objects.filter(pk=request.post_update_status_id)
        .values_list("code", flat=True)
        .first()
        if request.post_update_status_id
        else None
    )
    return status_update_request_validate(
        tenant=preview.tenant,
        integration=preview.integration,
        update_status=request.update_status,
        credentials_id=preview.integration_authentication_id,
        is_ignore_current_status=request.is_ignore_current_status,
        post_update_status=post_update,
        account_number=request.account_number,
        options=request.options,
        rev_service=request.rev_service,
    )


def preview_get(*, preview_id: int, tenant: Tenant | None = None) -> Preview:
    """A preview by id, within ``tenant`` when given (another tenant's is a 404)."""
    rows = Preview.objects.select_related("tenant", "integration_authentication")
    found = (rows if tenant is None else rows.filter(tenant=tenant)).filter(pk=preview_id).first()
    if found is None:
        raise NotFound(f"preview {preview_id} does not exist")
    return found
