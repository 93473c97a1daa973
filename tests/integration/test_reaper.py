"""The reaper's stalled-bulk-change rule (docs/architecture.md §7): a running bulk change whose
PENDING devices have seen no progress for the grace period is sent again; one whose devices are
progressing is left alone. Progress is a device change's ``updated_at``, which every write —
the services' ``QuerySet.update()`` calls included — must move."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from bulkchanges.services.processing import device_change_claim
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
