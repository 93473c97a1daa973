"""The state machine: every status change of BulkChange, DeviceChange and WebhookDelivery.

The legal transitions are data (:data:`BULK_CHANGE`, :data:`DEVICE_CHANGE`,
:data:`WEBHOOK_DELIVERY`; docs/architecture.md shows them as a table), and each has one
function here that performs it as a single conditional UPDATE — guarded by the transition's
source statuses, and where a worker writes by its claim token — and reports whether it won
(or how many rows it moved). Nothing else in PondOps assigns ``status``: a caller that lost
the race learns it from the return value and never overwrites what another process wrote.

A transition asked to move a row to a status it cannot reach raises :class:`IllegalTransition`
(a programming error, not a race); a row that is not in a source status is simply not moved.

Terminal statuses live beside the models (``BulkChange.TERMINAL``, ``DeviceChange.TERMINAL``);
the only ways out of them are an operator's retry (``reopen``, ``requeue``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from django.db import connection, models, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce

from bulkchanges.models import BulkChange, DeviceChange, Preview, PreviewDevice, WebhookDelivery

Bulk = BulkChange.Status
Device = DeviceChange.Status
Webhook = WebhookDelivery.Status

_Model = TypeVar("_Model", bound=models.Model)


class IllegalTransition(ValueError):
    """A transition was asked for a target status it does not lead to."""


@dataclass(frozen=True)
class Transition:
    """One named move: from any of ``sources`` to one of ``targets``."""

    name: str
    sources: frozenset[str]
    targets: frozenset[str]
    why: str

    def check_target(self, target: str) -> None:
        if target not in self.targets:
            raise IllegalTransition(
                f"{self.name} leads to {', '.join(sorted(self.targets))}, not {target}"
            )


def _table(*transitions: Transition) -> Mapping[str, Transition]:
    return {transition.name: transition for transition in transitions}


def _t(name: str, sources: Iterable[str], targets: Iterable[str], why: str) -> Transition:
    return Transition(name, frozenset(sources), frozenset(targets), why)


BULK_CHANGE: Mapping[str, Transition] = _table(
    _t("release", {Bulk.NEW}, {Bulk.QUEUED}, "another system's NEW bulk change gets a message"),
    _t(
        "release_scheduled",
        {Bulk.SCHEDULED},
        {Bulk.QUEUED},
        "its scheduled time has come: the reaper queues it",
    ),
    _t(
        "approve",
        {Bulk.AWAITING_APPROVAL},
        {Bulk.QUEUED, Bulk.SCHEDULED},
        "a second person approves: queued, or scheduled while its time is ahead",
    ),
    _t("reject", {Bulk.AWAITING_APPROVAL}, {Bulk.CANCELLED}, "a second person rejects it"),
    _t("start", {Bulk.QUEUED}, {Bulk.PROCESSING}, "the fan-out task starts handing out devices"),
    _t(
        "complete",
        BulkChange.RUNNABLE,
        {Bulk.PROCESSED, Bulk.PROCESSED_WITH_ERRORS, Bulk.ERROR},
        "no device is unfinished; the final status follows from the device counts",
    ),
    _t(
        "cancel",
        BulkChange.OPEN - {Bulk.CANCELLING},
        {Bulk.CANCELLING, Bulk.CANCELLED},
        "an operator or partner cancels: CANCELLING while devices that sent a carrier write "
        "run to their end, else CANCELLED at once",
    ),
    _t(
        "finish_cancel",
        {Bulk.CANCELLING},
        {Bulk.CANCELLED},
        "the last device in flight of a cancelled bulk change has ended",
    ),
    _t(
        "reopen",
        BulkChange.TERMINAL - {Bulk.CANCELLED} | BulkChange.RUNNABLE | {Bulk.NEW},
        {Bulk.PROCESSING},
        "a retry re-queues devices; a cancelled (or cancelling) bulk change is never reopened",
    ),
)

DEVICE_CHANGE: Mapping[str, Transition] = _table(
    _t(
        "claim",
        {Device.PENDING, Device.RETRY_SCHEDULED, Device.AWAITING_CARRIER, Device.PROCESSING},
        {Device.PROCESSING},
        "a worker takes the device: PENDING, a due retry or carrier check, or an expired lease",
    ),
    _t(
        "finish",
        {Device.PROCESSING},
        {Device.PROCESSED, Device.SKIPPED, Device.ERROR, Device.RETRY_SCHEDULED},
        "the claim holder records the outcome (or a transient failure's retry); a device "
        "of a cancelled bulk change that sent a carrier write ends with its real outcome",
    ),
    _t(
        "wait",
        {Device.PROCESSING},
        {Device.AWAITING_CARRIER},
        "the carrier is still working on the submitted request: check again on the waiting "
        "schedule, no retry consumed",
    ),
    _t(
        "expire_lease",
        {Device.PROCESSING},
        {Device.RETRY_SCHEDULED, Device.ERROR},
        "the reaper finds a dead worker's lease; ERROR once no retries are left",
    ),
    _t(
        "fail_unclaimed",
        {Device.PENDING},
        {Device.ERROR},
        "writes are disabled for the credentials: fail fast, no carrier call",
    ),
    _t(
        "cancel",
        {Device.PENDING, Device.PROCESSING, Device.RETRY_SCHEDULED},
        {Device.CANCELLED},
        "the bulk change is cancelled before the device sent a carrier write "
        "(`write_started_at` unset); a claimed one's worker then loses its write start",
    ),
    _t(
        "requeue",
        {
            Device.ERROR,
            Device.PROCESSING,
            Device.RETRY_SCHEDULED,
            Device.AWAITING_CARRIER,
            Device.PENDING,
        },
        {Device.PENDING},
        "an operator's retry (or resubmit): ERROR devices, and with include-stuck the stuck ones",
    ),
)

WEBHOOK_DELIVERY: Mapping[str, Transition] = _table(
    _t("claim", {Webhook.SCHEDULED}, {Webhook.SENDING}, "a sender takes a due attempt"),
    _t(
        "finish",
        {Webhook.SENDING},
        {Webhook.SUCCEEDED, Webhook.FAILED},
        "the attempt's outcome (or the sweep's verdict on a dead sender)",
    ),
)

PreviewStatus = Preview.Status

PREVIEW: Mapping[str, Transition] = _table(
    _t(
        "start",
        {PreviewStatus.QUEUED},
        {PreviewStatus.RUNNING},
        "its first task starts handing out devices to read",
    ),
    _t(
        "finish",
        {PreviewStatus.QUEUED, PreviewStatus.RUNNING},
        {PreviewStatus.DONE},
        "every device has its verdict",
    ),
    _t(
        "fail",
        {PreviewStatus.QUEUED, PreviewStatus.RUNNING},
        {PreviewStatus.ERROR},
        "the preview cannot go on (its credentials were removed or deactivated, a bug)",
    ),
)

TABLES: Mapping[type[models.Model], Mapping[str, Transition]] = {
    BulkChange: BULK_CHANGE,
    DeviceChange: DEVICE_CHANGE,
    WebhookDelivery: WEBHOOK_DELIVERY,
    Preview: PREVIEW,
}


def legal_pairs(table: Mapping[str, Transition]) -> frozenset[tuple[str, str]]:
    """Every (source, target) pair some transition of ``table`` allows."""
    return frozenset(
        (source, target)
        for transition in table.values()
        for source in transition.sources
        for target in transition.targets
    )


def table_rows(model: type[models.Model]) -> list[str]:
    """The model's transitions as Markdown table rows, statuses in their declared order
    (docs/architecture.md shows exactly these; a test keeps them in step)."""
    order: list[str] = model.Status.values  # type: ignore[attr-defined]

    def listed(statuses: frozenset[str]) -> str:
        return ", ".join(status for status in order if status in statuses)

    return [
        f"| `{t.name}` | {listed(t.sources)} | {listed(t.targets)} | {t.why} |"
        for t in TABLES[model].values()
    ]


def _move(rows: QuerySet[_Model], transition: Transition, target: str, **fields: Any) -> int:
    """The one conditional UPDATE every transition is: rows still in a source status move to
    ``target``; the row count says how many this call won."""
    transition.check_target(target)
    return rows.filter(status__in=transition.sources).update(status=target, **fields)


def _terminal_fields(target: str, now: datetime) -> dict[str, Any]:
    terminal = target in DeviceChange.TERMINAL
    return {"is_processed": terminal, "processed_at": now if terminal else None}


# --- BulkChange ----------------------------------------------------------------------------


def bulk_change_initial(
    *, now: datetime, scheduled_for: datetime | None = None, approval_reason: str = ""
) -> dict[str, Any]:
    """The fields a bulk change our entry points create starts with: AWAITING_APPROVAL when a
    gate holds it (``approval_reason``), else SCHEDULED while ``scheduled_for`` is ahead, else
    QUEUED, queued now (its SQS message follows the commit)."""
    fields: dict[str, Any] = {"scheduled_for": scheduled_for, "approval_reason": approval_reason}
    if approval_reason:
        return {**fields, "status": Bulk.AWAITING_APPROVAL}
    if scheduled_for is not None and scheduled_for > now:
        return {**fields, "status": Bulk.SCHEDULED}
    return {**fields, "status": Bulk.QUEUED, "queued_at": now}


def bulk_change_release(*, bulk_change_id: int, now: datetime) -> bool:
    """NEW → QUEUED: a bulk change written by another system is released by its message."""
    rows = BulkChange.objects.filter(pk=bulk_change_id)
    return bool(_move(rows, BULK_CHANGE["release"], Bulk.QUEUED, queued_at=now))


def bulk_change_release_scheduled(*, bulk_change_id: int, now: datetime) -> bool:
    """SCHEDULED → QUEUED once ``scheduled_for`` has passed (False: not due, rescheduled,
    cancelled, or another reaper released it first)."""
    rows = BulkChange.objects.filter(pk=bulk_change_id, scheduled_for__lte=now)
    return bool(_move(rows, BULK_CHANGE["release_scheduled"], Bulk.QUEUED, queued_at=now))


def bulk_change_reschedule(*, bulk_change_id: int, scheduled_for: datetime) -> bool:
    """Not a status change: a SCHEDULED (or still AWAITING_APPROVAL) bulk change gets a new
    ``scheduled_for``. False: it has started, or was cancelled, meanwhile."""
    rows = BulkChange.objects.filter(pk=bulk_change_id, status__in=BulkChange.GATED)
    return bool(rows.update(scheduled_for=scheduled_for))


def bulk_change_approve(
    *, bulk_change_id: int, now: datetime, by: str, note: str = ""
) -> str | None:
    """AWAITING_APPROVAL → SCHEDULED while its ``scheduled_for`` is ahead, else QUEUED (queued
    now). One conditional update: of two approvers (or an approver and a rejecter) the first
    wins. Returns the status reached, or None when another decision came first."""
    rows = BulkChange.objects.filter(pk=bulk_change_id)
    decided = {"decision": BulkChange.Decision.APPROVED, "decided_by": by, "decided_at": now}
    transition = BULK_CHANGE["approve"]
    if _move(
        rows.filter(scheduled_for__gt=now),
        transition,
        Bulk.SCHEDULED,
        **decided,
        decision_note=note,
    ):
        return Bulk.SCHEDULED
    if _move(rows, transition, Bulk.QUEUED, **decided, decision_note=note, queued_at=now):
        return Bulk.QUEUED
    return None


def bulk_change_reject(*, bulk_change_id: int, now: datetime, by: str, note: str = "") -> bool:
    """AWAITING_APPROVAL → CANCELLED, with the decision and ``processed_at``."""
    rows = BulkChange.objects.filter(pk=bulk_change_id)
    return bool(
        _move(
            rows,
            BULK_CHANGE["reject"],
            Bulk.CANCELLED,
            decision=BulkChange.Decision.REJECTED,
            decided_by=by,
            decided_at=now,
            decision_note=note,
            processed_at=now,
            first_processed_at=now,
        )
    )


def bulk_change_start(*, bulk_change_id: int) -> bool:
    """QUEUED → PROCESSING, when its fan-out begins (False: already running, or not runnable)."""
    rows = BulkChange.objects.filter(pk=bulk_change_id)
    return bool(_move(rows, BULK_CHANGE["start"], Bulk.PROCESSING))


def bulk_change_complete(*, bulk_change_id: int, final: str, now: datetime) -> bool:
    """QUEUED | PROCESSING → ``final``, with ``processed_at`` (and ``first_processed_at`` the
    first time). Written once: a second call, or one after a cancel, wins nothing."""
    rows = BulkChange.objects.filter(pk=bulk_change_id)
    return bool(
        _move(
            rows,
            BULK_CHANGE["complete"],
            final,
            processed_at=now,
            first_processed_at=Coalesce(F("first_processed_at"), Value(now)),
        )
    )


def bulk_change_cancel(*, bulk_change_id: int, now: datetime, by: str, in_flight: bool) -> bool:
    """Any open status but CANCELLING → CANCELLING while ``in_flight`` (devices that sent a
    carrier write run to their end), else CANCELLED with ``processed_at``. Records who asked
    and when."""
    rows = BulkChange.objects.filter(pk=bulk_change_id)
    asked = {"cancel_requested_at": now, "cancel_requested_by": by}
    if in_flight:
        return bool(_move(rows, BULK_CHANGE["cancel"], Bulk.CANCELLING, **asked))
    return bool(
        _move(
            rows,
            BULK_CHANGE["cancel"],
            Bulk.CANCELLED,
            **asked,
            processed_at=now,
            first_processed_at=Coalesce(F("first_processed_at"), Value(now)),
        )
    )


def bulk_change_finish_cancel(*, bulk_change_id: int, now: datetime) -> bool:
    """CANCELLING → CANCELLED once no device is in flight, with ``processed_at``. Written
    once, like a completion."""
    rows = BulkChange.objects.filter(pk=bulk_change_id)
    return bool(
        _move(
            rows,
            BULK_CHANGE["finish_cancel"],
            Bulk.CANCELLED,
            processed_at=now,
            first_processed_at=Coalesce(F("first_processed_at"), Value(now)),
        )
    )


def bulk_change_reopen(*, bulk_change_id: int) -> bool:
    """A final (not cancelled) or running bulk change → PROCESSING, ``processed_at`` cleared
    (``first_processed_at`` kept): a retry re-queued some of its devices."""
    rows = BulkChange.objects.filter(pk=bulk_change_id)
    return bool(_move(rows, BULK_CHANGE["reopen"], Bulk.PROCESSING, processed_at=None))


# --- DeviceChange --------------------------------------------------------------------------


# Released and not final: a bulk change whose devices may still be claimed and block later
# changes of their ICCID. In a CANCELLING one only the devices in flight run (below).
RELEASED = BulkChange.RUNNABLE | {Bulk.CANCELLING}


def device_change_in_flight() -> Q:
    """A device change that has sent (or may have sent) a carrier write: a cancel leaves it to
    run to its end — all its remaining steps, Rev.io included — because a half-applied change
    is worse than a finished one."""
    return Q(write_started_at__isnull=False) | Q(status=Device.AWAITING_CARRIER)


def device_change_may_run() -> Q:
    """The bulk change lets this device work: it is running, or it is CANCELLING and the
    device is in flight. A device that sent no write is never claimed in a CANCELLING bulk
    change (the cancel made it CANCELLED)."""
    return Q(bulk_change__status__in=BulkChange.RUNNABLE) | (
        Q(bulk_change__status=Bulk.CANCELLING) & device_change_in_flight()
    )


def device_change_claimable(now: datetime) -> Q:
    """The claim's guard beyond its source statuses: PENDING, a retry that is due, or a lease
    that expired — in a bulk change that lets it run (:func:`device_change_may_run`)."""
    return (
        Q(status=Device.PENDING)
        | Q(status__in=(Device.RETRY_SCHEDULED, Device.AWAITING_CARRIER), next_attempt_at__lte=now)
        | Q(status=Device.PROCESSING, claimed_until__lt=now)
    ) & device_change_may_run()


def device_changes_claim(
    *, ids: Iterable[int], token: UUID, lease_until: datetime, now: datetime
) -> int:
    """Claim these device changes where still claimable: PROCESSING with a new lease and claim
    token. A retry or an expired lease counts as an attempt (``attempts + 1``); a first claim
    from PENDING does not, nor does another check of a carrier that is still working
    (AWAITING_CARRIER). Returns the rows won (read them back by ``claim_token``)."""
    rows = DeviceChange.objects.filter(pk__in=list(ids)).filter(device_change_claimable(now))
    return _move(
        rows,
        DEVICE_CHANGE["claim"],
        Device.PROCESSING,
        claimed_until=lease_until,
        claim_token=token,
        attempts=Case(
            When(status__in=(Device.PENDING, Device.AWAITING_CARRIER), then=F("attempts")),
            default=F("attempts") + 1,
        ),
    )


def device_change_finish(
    *,
    device_change_id: int,
    token: UUID | None,
    target: str,
    now: datetime,
    last_error: str = "",
    next_attempt_at: datetime | None = None,
) -> bool:
    """PROCESSING → ``target`` (terminal, or RETRY_SCHEDULED at ``next_attempt_at``), only
    while ``token`` still holds the claim; the lease is released. False: the lease was lost."""
    rows = DeviceChange.objects.filter(pk=device_change_id, claim_token=token)
    return _move_releasing_lease(
        rows,
        DEVICE_CHANGE["finish"],
        target,
        now=now,
        last_error=last_error,
        next_attempt_at=next_attempt_at,
    )


def device_change_wait(
    *, device_change_id: int, token: UUID | None, now: datetime, next_attempt_at: datetime
) -> bool:
    """PROCESSING → AWAITING_CARRIER until ``next_attempt_at``, only while ``token`` still holds
    the claim; the lease is released and the wait counted (``carrier_waits + 1``), the
    RetryNumber is not. A cancel does not stop it: a submitted change runs to its end, and a
    CANCELLING bulk change's waiting devices are claimed again when due. False: the lease was
    lost."""
    rows = DeviceChange.objects.filter(pk=device_change_id, claim_token=token)
    return bool(
        _move(
            rows,
            DEVICE_CHANGE["wait"],
            Device.AWAITING_CARRIER,
            last_error="",
            next_attempt_at=next_attempt_at,
            carrier_waits=F("carrier_waits") + 1,
            claimed_until=None,
            claim_token=None,
        )
    )


def device_changes_wake(*, ids: Iterable[int], now: datetime) -> list[int]:
    """A carrier callback arrived: AWAITING_CARRIER devices among ``ids`` become due now (not a
    status change — the CONFIRM step, under the normal claim, reads the callback). Returns the
    ids made due."""
    rows = DeviceChange.objects.filter(
        pk__in=list(ids), status=Device.AWAITING_CARRIER, next_attempt_at__gt=now
    )
    due = list(rows.values_list("pk", flat=True))
    if due:
        DeviceChange.objects.filter(pk__in=due, status=Device.AWAITING_CARRIER).update(
            next_attempt_at=now
        )
    return due


def device_changes_renew_leases(
    *, tokens: Iterable[UUID], lease_until: datetime
) -> frozenset[UUID]:
    """Extend the lease of every row a live process holds under ``tokens`` — claimed
    (PROCESSING) or handed to it and not yet claimed (PENDING) — in one UPDATE. Not a status
    change: a row whose token changed (taken over, finished) is not touched. Returns the
    tokens that still hold a row."""
    rows = DeviceChange.objects.filter(
        claim_token__in=list(tokens), status__in=(Device.PROCESSING, Device.PENDING)
    )
    with transaction.atomic():
        held = frozenset(rows.values_list("claim_token", flat=True).distinct())
        free = rows
        if connection.features.has_select_for_update_skip_locked:
            # A row another transaction is writing (a claim, a step's record) is skipped, not
            # waited for: its writer renews it or takes it over; the next tick renews it.
            free = DeviceChange.objects.filter(
                pk__in=list(
                    rows.select_for_update(skip_locked=True, of=("self",)).values_list(
                        "pk", flat=True
                    )
                )
            )
        free.update(claimed_until=lease_until)
    return frozenset(token for token in held if token is not None)


def device_changes_hand_off(*, ids: Iterable[int], token: UUID, lease_until: datetime) -> int:
    """Mark the PENDING rows among ``ids`` as handed to the process holding ``token`` until
    ``lease_until`` (it renews the lease while it lives). Not a status change: a PENDING row
    stays claimable by anyone; the hand-off only tells the reaper, once its lease has expired,
    that the process that had it died before claiming it."""
    rows = DeviceChange.objects.filter(pk__in=list(ids), status=Device.PENDING)
    return rows.update(claim_token=token, claimed_until=lease_until)


def device_changes_hand_back(*, token: UUID) -> int:
    """The holder of ``token`` is done with its chunk: PENDING rows it still holds (waiting for
    an older change of their ICCID) are nobody's again, as before the hand-off."""
    rows = DeviceChange.objects.filter(claim_token=token, status=Device.PENDING)
    return rows.update(claim_token=None, claimed_until=None)


def device_changes_take_lost_hand_off(
    *, token: UUID, before: datetime, reaper_token: UUID
) -> list[int]:
    """The reaper takes back PENDING rows handed to ``token`` whose lease expired before
    ``before`` (their process died). A compare-and-set on the token: of two reapers, only one
    wins each row. Returns the ids won, released to nobody (to be enqueued again)."""
    rows = DeviceChange.objects.filter(
        claim_token=token, status=Device.PENDING, claimed_until__lt=before
    )
    if not rows.update(claim_token=reaper_token, claimed_until=None):
        return []
    won = DeviceChange.objects.filter(claim_token=reaper_token, status=Device.PENDING)
    ids = list(won.values_list("pk", flat=True))
    won.update(claim_token=None)
    return ids


def device_change_expire_lease(
    *, device_change_id: int, now: datetime, give_up: bool, last_error: str
) -> bool:
    """PROCESSING with an expired lease → RETRY_SCHEDULED (due now) or, with ``give_up``, ERROR.
    False: the holder renewed or finished it meanwhile."""
    target = Device.ERROR if give_up else Device.RETRY_SCHEDULED
    rows = DeviceChange.objects.filter(pk=device_change_id, claimed_until__lt=now)
    return _move_releasing_lease(
        rows,
        DEVICE_CHANGE["expire_lease"],
        target,
        now=now,
        last_error=last_error,
        next_attempt_at=None if give_up else now,
    )


def _move_releasing_lease(
    rows: QuerySet[DeviceChange],
    transition: Transition,
    target: str,
    *,
    now: datetime,
    last_error: str,
    next_attempt_at: datetime | None,
) -> bool:
    """A claimed device change's way out of PROCESSING (finished, or its lease expired): moved
    to ``target`` with the lease and claim token released, ``is_processed``/``processed_at``
    set when ``target`` is terminal."""
    return bool(
        _move(
            rows,
            transition,
            target,
            **_terminal_fields(target, now),
            last_error=last_error,
            next_attempt_at=next_attempt_at,
            claimed_until=None,
            claim_token=None,
        )
    )


def device_changes_fail_unclaimed(*, ids: Iterable[int], now: datetime, error: str) -> int:
    """PENDING → ERROR with ``error``, no carrier call (writes disabled)."""
    rows = DeviceChange.objects.filter(pk__in=list(ids))
    return _move(
        rows,
        DEVICE_CHANGE["fail_unclaimed"],
        Device.ERROR,
        **_terminal_fields(Device.ERROR, now),
        last_error=error,
    )


def device_change_start_write(
    *,
    device_change_id: int,
    token: UUID | None,
    now: datetime,
    previous_status: str,
    lease_until: datetime,
) -> bool:
    """Not a status change, but one side of the cancel race: record, just before this device's
    first carrier write, that the carrier may have our change from now on (``write_started_at``)
    and what its status was before (``previous_status``, what a revert puts back), renewing the
    lease. Conditional on the claim (token, PROCESSING) and on no write having started: a cancel
    that came first made the device CANCELLED and released its claim, so this wins nothing and
    the worker stops without a carrier write; one that comes after finds ``write_started_at``
    set and leaves the device to run to its end. Exactly one of the two wins."""
    rows = DeviceChange.objects.filter(
        pk=device_change_id,
        claim_token=token,
        status=Device.PROCESSING,
        write_started_at__isnull=True,
    )
    return bool(
        rows.update(
            write_started_at=now,
            previous_status=previous_status[:40],
            claimed_until=lease_until,
        )
    )


def device_changes_cancel(*, bulk_change_id: int, now: datetime) -> int:
    """PENDING | RETRY_SCHEDULED | PROCESSING → CANCELLED for a cancelled bulk change's devices
    that have sent no carrier write (``write_started_at`` unset), their claims released. One
    conditional UPDATE, the other side of :func:`device_change_start_write`'s: a worker that
    claimed such a device loses its write start and stops. Devices in flight are not touched.
    Returns the devices cancelled."""
    rows = DeviceChange.objects.filter(bulk_change_id=bulk_change_id, write_started_at__isnull=True)
    return _move(
        rows,
        DEVICE_CHANGE["cancel"],
        Device.CANCELLED,
        **_terminal_fields(Device.CANCELLED, now),
        next_attempt_at=None,
        claimed_until=None,
        claim_token=None,
    )


def device_changes_requeue(*, ids: Iterable[int], eligible: Q, resubmit: bool = False) -> int:
    """Eligible devices (ERROR, or stuck: see ``bulk_change_retry``) → PENDING with a fresh
    RetryNumber and no lease; their completed steps are kept, so each resumes where it stopped
    (a submitted change at CONFIRM, its deadline still counted from SUBMIT). ``resubmit``
    (an operator's explicit choice) also forgets the carrier request, so SUBMIT runs again."""
    rows = DeviceChange.objects.filter(pk__in=list(ids)).filter(eligible)
    forget: dict[str, Any] = {}
    if resubmit:
        forget = {
            "carrier_request_id": "",
            "carrier_submitted_at": None,
            "confirm_deadline_at": None,
            "carrier_waits": 0,
        }
    return _move(
        rows,
        DEVICE_CHANGE["requeue"],
        Device.PENDING,
        **forget,
        is_processed=False,
        processed_at=None,
        attempts=0,
        last_error="",
        next_attempt_at=None,
        claimed_until=None,
        claim_token=None,
    )


# --- WebhookDelivery -----------------------------------------------------------------------


def webhook_delivery_claim(*, delivery_id: int, now: datetime, lease_until: datetime) -> bool:
    """A due SCHEDULED attempt → SENDING, leased to this sender."""
    rows = WebhookDelivery.objects.filter(pk=delivery_id, next_attempt_at__lte=now)
    return bool(
        _move(
            rows,
            WEBHOOK_DELIVERY["claim"],
            Webhook.SENDING,
            started_at=now,
            claimed_until=lease_until,
        )
    )


def webhook_delivery_finish(
    *,
    delivery_id: int,
    succeeded: bool,
    now: datetime,
    response_status: int | None,
    error_text: str,
) -> bool:
    """SENDING → SUCCEEDED or FAILED. False: another sender (or the sweep) recorded it first."""
    target = Webhook.SUCCEEDED if succeeded else Webhook.FAILED
    rows = WebhookDelivery.objects.filter(pk=delivery_id)
    return bool(
        _move(
            rows,
            WEBHOOK_DELIVERY["finish"],
            target,
            finished_at=now,
            claimed_until=None,
            response_status=response_status,
            error_text=error_text,
        )
    )


# --- Preview -------------------------------------------------------------------------------


def preview_start(*, preview_id: int, now: datetime) -> bool:
    """QUEUED → RUNNING with ``started_at`` (False: already running, or finished)."""
    rows = Preview.objects.filter(pk=preview_id)
    return bool(_move(rows, PREVIEW["start"], PreviewStatus.RUNNING, started_at=now))


def preview_finish(*, preview_id: int, now: datetime) -> bool:
    """QUEUED | RUNNING → DONE with ``finished_at``, once no device is left unread. Written
    once: a second call wins nothing."""
    rows = Preview.objects.filter(pk=preview_id).exclude(
        Exists(PreviewDevice.objects.filter(preview=OuterRef("pk"), verdict=""))
    )
    return bool(_move(rows, PREVIEW["finish"], PreviewStatus.DONE, finished_at=now))


def preview_fail(*, preview_id: int, now: datetime, error: str) -> bool:
    """QUEUED | RUNNING → ERROR with ``finished_at`` and why."""
    rows = Preview.objects.filter(pk=preview_id)
    return bool(
        _move(rows, PREVIEW["fail"], PreviewStatus.ERROR, finished_at=now, error_text=error)
    )
