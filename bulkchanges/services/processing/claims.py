"""Claims: which device changes a worker may work on, and taking them (docs/architecture.md §6, §7).

A claim is one conditional UPDATE (:func:`bulkchanges.transitions.device_changes_claim`); on
PostgreSQL the candidate is first locked with ``SELECT … FOR UPDATE``. It waits for a row
another transaction is writing rather than skipping it: PENDING rows are written by others
too (hand-offs, their renewals), and a claim that skipped a claimable device would strand it.
The wait is one short transaction: claims take one device at a time.

A device change is claimable only when no older device change for the same ICCID and
integration in a released bulk change (running, or cancelling: its devices in flight still
write) is unfinished: two bulk changes touching one device apply in creation order, and when
one finishes the next waiting one is enqueued. In a CANCELLING bulk change only the devices
that already sent a carrier write are claimed (``transitions.device_change_may_run``).

Leases die with their process (:mod:`bulkchanges.leases`): a claim's lease, and the hand-off
lease of a chunk's PENDING rows (taken when django-q2 hands the chunk to a cluster and again
when a worker starts it), are short (``BULKCHANGE_LEASE_SECONDS``) and renewed every third of
it by the process's keeper thread, one UPDATE for all its tokens. A dead process's rows are
back with the reaper within one lease plus one reaper interval.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from bulkchanges import transitions
from bulkchanges.leases import LeaseKind
from bulkchanges.models import DeviceChange

# Hands device change ids to workers (django-q2 in production, inline in some tests).
Enqueue = Callable[[list[int]], object]


def lease_until(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(seconds=settings.BULKCHANGE_LEASE_SECONDS)


def _renew_device_leases(tokens: frozenset[Hashable]) -> frozenset[uuid.UUID]:
    return transitions.device_changes_renew_leases(
        tokens=[token for token in tokens if isinstance(token, uuid.UUID)],
        lease_until=lease_until(),
    )


# Claim tokens and hand-off tokens this process holds; renewed every third of the lease.
DEVICE_LEASES = LeaseKind(
    "device leases",
    renew=_renew_device_leases,
    interval=lambda: settings.BULKCHANGE_LEASE_SECONDS / 3,
)


def device_changes_hand_off(*, ids: Sequence[int]) -> uuid.UUID:
    """Hold the PENDING rows among ``ids`` for this process (renewed by its keeper until
    :func:`device_changes_hand_back` or until every row is claimed); returns the token."""
    token = uuid.uuid4()
    transitions.device_changes_hand_off(ids=ids, token=token, lease_until=lease_until())
    DEVICE_LEASES.hold(token)
    return token


def device_changes_hand_back(*, token: uuid.UUID) -> None:
    DEVICE_LEASES.release(token)
    transitions.device_changes_hand_back(token=token)


@contextmanager
def chunk_held(*, ids: Sequence[int]) -> Iterator[None]:
    """A worker's chunk: its PENDING rows are held for this process while the block runs (a
    killed worker's unstarted devices go back to the reaper within one lease), then handed
    back."""
    token = device_changes_hand_off(ids=ids)
    try:
        yield
    finally:
        device_changes_hand_back(token=token)


def older_unfinished_exists() -> Exists:
    """An older unfinished device change for the same ICCID and integration is running (or
    finishing in a cancelling bulk change)."""
    return Exists(
        DeviceChange.objects.filter(
            iccid=OuterRef("iccid"),
            bulk_change__integration=OuterRef("bulk_change__integration"),
            pk__lt=OuterRef("pk"),
            status__in=DeviceChange.UNFINISHED,
            bulk_change__status__in=transitions.RELEASED,
        )
    )


def device_change_claim(*, ids: Sequence[int], now: datetime | None = None) -> list[int]:
    """Claim the claimable devices among ``ids`` for this worker. Returns the ids won; each now
    is PROCESSING with a fresh lease and claim token, which the caller keeps alive with
    ``DEVICE_LEASES.holding(token)`` while it works. Retries and expired leases count as an
    attempt (``attempts + 1``)."""
    now = now or timezone.now()
    token = uuid.uuid4()
    lease = lease_until(now)
    with transaction.atomic():
        candidates = (
            DeviceChange.objects.filter(pk__in=list(ids))
            .filter(transitions.device_change_claimable(now))
            .exclude(older_unfinished_exists())
        )
        if connection.features.has_select_for_update_of:
            candidates = candidates.select_for_update(of=("self",))
        locked = list(candidates.values_list("pk", flat=True))
        if not locked:
            return []
        transitions.device_changes_claim(ids=locked, token=token, lease_until=lease, now=now)
        return list(
            DeviceChange.objects.filter(pk__in=locked, claim_token=token).values_list(
                "pk", flat=True
            )
        )


def next_waiting_device_change(*, device_change: DeviceChange) -> int | None:
    """The oldest later device change for the same ICCID and integration still waiting."""
    pk: int | None = (
        DeviceChange.objects.filter(
            iccid=device_change.iccid,
            bulk_change__integration=device_change.bulk_change.integration,
            pk__gt=device_change.pk,
            status__in=[DeviceChange.Status.PENDING, DeviceChange.Status.RETRY_SCHEDULED],
        )
        .filter(transitions.device_change_may_run())
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    return pk
