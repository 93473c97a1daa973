"""The reaper (docs/architecture.md §7). Its stalled-bulk-change rule: a running bulk change
whose PENDING devices have seen no progress for the grace period is sent again; one whose
devices are progressing is left alone. Progress is a device change's ``updated_at``, which
every write — the services' ``QuerySet.update()`` calls included — must move. Its hand-off
rule: PENDING rows handed to a process whose lease expired are enqueued again at once. And two
passes at the same time re-send each lost item exactly once."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from bulkchanges import transitions
from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from bulkchanges.services import reaper
from bulkchanges.services.processing import device_change_claim
from bulkchanges.services.processing.claims import device_changes_hand_off
from bulkchanges.services.reaper import reap
from tests.conftest import PondWorld, Queue, create_bulk_change, iccids

pytestmark = pytest.mark.django_db(transaction=True)


def _running_since_long_ago(world: PondWorld, count: int) -> BulkChange:
    """A PROCESSING bulk change queued, and last touched, two grace periods ago."""
    bulk_change = create_bulk_change(world, iccids(count), with_rev=False)
    long_ago = timezone.now() - timedelta(seconds=2 * settings.BULKCHANGE_REAPER_GRACE_SECONDS)
    BulkChange.objects.filter(pk=bulk_change.pk).update(
        status=BulkChange.Status.PROCESSING, queued_at=long_ago
    )
    DeviceChange.objects.filter(bulk_change=bulk_change).update(updated_at=long_ago)
    return bulk_change


def _requeued(bulk_change: BulkChange) -> bool:
    return BulkChangeLog.objects.filter(
        bulk_change=bulk_change, log_entry_description="Bulk change re-queued"
    ).exists()


def test_a_claim_counts_as_progress_so_a_running_bulk_change_is_not_sent_again(
    pond_world: PondWorld, sqs_queue: Queue
) -> None:
    bulk_change = _running_since_long_ago(pond_world, 3)
    queued = sqs_queue.messages()  # the creation's message
    first = DeviceChange.objects.filter(bulk_change=bulk_change).order_by("pk").first()
    assert first is not None
    assert device_change_claim(ids=[first.pk]) == [first.pk]

    report = reap(enqueue=lambda ids: None, process_by="reaper")

    assert report.bulk_changes_resent == 0
    assert not _requeued(bulk_change)
    assert sqs_queue.messages() == queued


def test_a_bulk_change_without_progress_for_the_grace_period_is_sent_again(
    pond_world: PondWorld, sqs_queue: Queue
) -> None:
    bulk_change = _running_since_long_ago(pond_world, 3)
    [created] = sqs_queue.receive_all()

    report = reap(enqueue=lambda ids: None, process_by="reaper")

    assert report.bulk_changes_resent == 1
    assert _requeued(bulk_change)
    [message] = sqs_queue.receive_all()  # the creation's message is still invisible
    assert message["MessageId"] != created["MessageId"]
    assert message["MessageAttributes"]["BulkChangeId"]["StringValue"] == str(bulk_change.pk)
    # Sent again restarts its grace period: the next pass leaves it alone.
    assert reap(enqueue=lambda ids: None, process_by="reaper").bulk_changes_resent == 0


def test_expiring_a_dead_workers_leases_is_not_progress_of_its_bulk_change(
    pond_world: PondWorld, sqs_queue: Queue
) -> None:
    """A worker died holding one device; the rest are PENDING. The reaper returns the lease
    and also sends the bulk change again (its own write is not progress)."""
    bulk_change = _running_since_long_ago(pond_world, 3)
    first = DeviceChange.objects.filter(bulk_change=bulk_change).order_by("pk").first()
    assert first is not None
    long_ago = timezone.now() - timedelta(seconds=2 * settings.BULKCHANGE_REAPER_GRACE_SECONDS)
    DeviceChange.objects.filter(pk=first.pk).update(
        status=DeviceChange.Status.PROCESSING,
        claimed_until=long_ago,
        updated_at=long_ago,
    )
    handed: list[list[int]] = []

    report = reap(enqueue=handed.append, process_by="reaper")

    assert report.leases_expired == 1
    assert handed == [[first.pk]]
    assert report.bulk_changes_resent == 1


Status = DeviceChange.Status


def _hand_off_expired(ids: list[int]) -> uuid.UUID:
    """PENDING rows handed to a process that died: its lease ran out a second ago."""
    token = uuid.uuid4()
    transitions.device_changes_hand_off(
        ids=ids, token=token, lease_until=timezone.now() - timedelta(seconds=1)
    )
    return token


def test_a_dead_processs_hand_off_is_enqueued_again_once_and_a_live_one_is_left_alone(
    pond_world: PondWorld, sqs_queue: Queue
) -> None:
    bulk_change = create_bulk_change(pond_world, iccids(5), with_rev=False)
    ids = list(
        DeviceChange.objects.filter(bulk_change=bulk_change)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    _hand_off_expired(ids[:3])
    live = device_changes_hand_off(ids=ids[3:])  # this process, lease in the future
    handed: list[list[int]] = []

    report = reap(enqueue=handed.append, process_by="reaper")

    assert handed == [ids[:3]]
    assert report.hand_offs_returned == 3
    returned = DeviceChange.objects.filter(pk__in=ids[:3])
    assert set(returned.values_list("status", "claim_token", "claimed_until")) == {
        (Status.PENDING, None, None)
    }
    assert set(
        DeviceChange.objects.filter(pk__in=ids[3:]).values_list("claim_token", flat=True)
    ) == {live}
    assert reap(enqueue=handed.append, process_by="reaper").hand_offs_returned == 0


def test_a_chunk_handed_back_leaves_no_hand_off_for_the_reaper(
    pond_world: PondWorld, sqs_queue: Queue
) -> None:
    """A device waiting for an older change of its ICCID stays PENDING after its chunk ran:
    handed back, it is nobody's, not a lost hand-off."""
    from bulkchanges.services.processing.claims import chunk_held

    bulk_change = create_bulk_change(pond_world, iccids(2), with_rev=False)
    ids = list(DeviceChange.objects.filter(bulk_change=bulk_change).values_list("pk", flat=True))
    with chunk_held(ids=ids):
        assert DeviceChange.objects.filter(pk__in=ids, claim_token__isnull=False).count() == 2
    assert DeviceChange.objects.filter(pk__in=ids, claim_token__isnull=True).count() == 2


def _everything_lost(world: PondWorld) -> tuple[BulkChange, dict[str, list[int]]]:
    """A stalled bulk change, and a running one with each kind of lost work: overdue retries
    and carrier checks, expired leases, expired hand-offs."""
    long_ago = timezone.now() - timedelta(seconds=2 * settings.BULKCHANGE_REAPER_GRACE_SECONDS)
    stalled = _running_since_long_ago(world, 3)
    running = create_bulk_change(world, iccids(12, start=100), with_rev=False)
    BulkChange.objects.filter(pk=running.pk).update(status=BulkChange.Status.PROCESSING)
    ids = list(
        DeviceChange.objects.filter(bulk_change=running).order_by("pk").values_list("pk", flat=True)
    )
    kinds = {"retry": ids[0:3], "wait": ids[3:5], "lease": ids[5:8], "hand_off": ids[8:12]}
    DeviceChange.objects.filter(pk__in=kinds["retry"]).update(
        status=Status.RETRY_SCHEDULED, next_attempt_at=long_ago, attempts=1
    )
    DeviceChange.objects.filter(pk__in=kinds["wait"]).update(
        status=Status.AWAITING_CARRIER, next_attempt_at=long_ago
    )
    DeviceChange.objects.filter(pk__in=kinds["lease"]).update(
        status=Status.PROCESSING, claim_token=uuid.uuid4(), claimed_until=long_ago
    )
    _hand_off_expired(kinds["hand_off"])
    return stalled, kinds


def _sent(queue: Queue) -> Counter[tuple[str, str]]:
    """Every message on the queue, by (BulkChangeId, M2MDeviceChangeId)."""
    seen: Counter[tuple[str, str]] = Counter()
    for _ in range(100):
        batch = queue.receive_all()
        if not batch:
            return seen
        for message in batch:
            attributes = message["MessageAttributes"]
            seen[
                (
                    attributes["BulkChangeId"]["StringValue"],
                    attributes["M2MDeviceChangeId"]["StringValue"],
                )
            ] += 1
    raise AssertionError("the queue never emptied")


READS = ("_stalled_bulk_changes", "_expired_leases", "_lost_hand_offs", "_overdue_retries")


def _reads_interleaved(monkeypatch: pytest.MonkeyPatch, *, threads: bool) -> None:
    """Make two passes read the same rows before either writes: with threads, a barrier after
    each read; without, the second pass is handed the first pass's (now stale) reads."""
    barrier = threading.Barrier(2)
    for name in READS:
        original: Callable[..., Any] = getattr(reaper, name)
        first: dict[str, Any] = {}

        def read(*args: Any, _original: Callable[..., Any] = original, _first: dict = first) -> Any:
            if threads:
                rows = _original(*args)
                barrier.wait(timeout=60)
                return rows
            if "rows" not in _first:
                _first["rows"] = _original(*args)
            return _first["rows"]

        monkeypatch.setattr(reaper, name, read)


def test_two_passes_at_once_re_send_each_lost_device_and_bulk_change_exactly_once(
    pond_world: PondWorld, sqs_queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    stalled, kinds = _everything_lost(pond_world)
    sqs_queue.receive_all()  # the creations' messages (invisible for a while)
    sqs_queue.receive_all()
    sqs_queue.receive_all()
    assert sqs_queue.receive_all() == []
    enqueued: list[int] = []
    lock = threading.Lock()

    def enqueue(ids: list[int]) -> None:
        with lock:
            enqueued.extend(ids)

    def one_pass() -> None:
        try:
            reap(enqueue=enqueue, process_by="reaper")
        finally:
            connection.close()

    threads = connection.vendor == "postgresql"  # SQLite: sequential passes, stale reads
    _reads_interleaved(monkeypatch, threads=threads)
    if threads:
        passes = [threading.Thread(target=one_pass) for _ in range(2)]
        for thread in passes:
            thread.start()
        for thread in passes:
            thread.join(timeout=120)
            assert not thread.is_alive()
    else:
        reap(enqueue=enqueue, process_by="reaper")
        reap(enqueue=enqueue, process_by="reaper")

    sent = _sent(sqs_queue)
    stalled_message = (str(stalled.pk), "0")
    assert sent.pop(stalled_message) == 1
    resent_devices = {int(device): count for (_, device), count in sent.items()}
    assert resent_devices == {pk: 1 for pk in kinds["retry"] + kinds["wait"]}
    assert Counter(enqueued) == Counter(kinds["lease"] + kinds["hand_off"])
    assert (
        BulkChangeLog.objects.filter(
            bulk_change=stalled, log_entry_description="Bulk change re-queued"
        ).count()
        == 1
    )
