"""End to end with real processes: `manage.py poll_sqs` and `manage.py qcluster` run as
subprocesses against the test database, a moto SQS server and the carrier simulators."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import Count, QuerySet
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import OrmQ

from bulkchanges import sqs
from bulkchanges.brokers import HandOffRedis
from bulkchanges.models import BulkChange, BulkChangeLog, Device, DeviceChange
from bulkchanges.selectors import device_status_counts
from bulkchanges.services import logs
from tests.conftest import (
    PondWorld,
    Processes,
    Queue,
    create_bulk_change,
    iccids,
    seed_sims,
    wait_for,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

OUTCOME = "Device status change result"


UNFINISHED_COLUMNS = (
    "pk",
    "iccid",
    "status",
    "attempts",
    "claim_token",
    "claimed_until",
    "next_attempt_at",
    "write_started_at",
    "carrier_status_at",
    "updated_at",
    "last_error",
)


def unfinished_devices_report(bulk_change: BulkChange) -> str:
    """The rows of the bulk change's unfinished devices and the task queue's chunks, with the
    columns that say who (if anyone) still holds each device: what a timeout needs to show."""
    now = timezone.now()
    rows = (
        DeviceChange.objects.filter(bulk_change=bulk_change, status__in=DeviceChange.UNFINISHED)
        .order_by("pk")
        .values_list(*UNFINISHED_COLUMNS)
    )
    lines = [
        f"bulk change {bulk_change.pk} {bulk_change.status} at {now.isoformat()}; counts "
        f"{device_status_counts(bulk_change_id=bulk_change.pk)}",
        " | ".join(UNFINISHED_COLUMNS),
        *(" | ".join(str(value) for value in row) for row in rows[:50]),
    ]
    broker = get_broker()
    if isinstance(broker, HandOffRedis):
        lines.append(
            f"django-q2 Redis queue: {broker.queue_size()} tasks, "
            f"{broker.connection.zcard(broker.taking_key)} being taken"
        )
    queued = OrmQ.objects.all()
    lines.append(f"django-q2 ORM queue: {queued.count()} tasks")
    for task in queued[:50]:
        lines.append(f"  {task.key} lock={task.lock} {task.name()} args={task.args()}")
    return "\n".join(lines)


def wait_final(bulk_change: BulkChange, processes: Processes, *, timeout: float = 180) -> None:
    def final() -> bool:
        bulk_change.refresh_from_db()
        return bulk_change.status in BulkChange.TERMINAL

    try:
        wait_for(final, timeout=timeout, interval=0.5, message=f"bulk change {bulk_change.pk}")
    except AssertionError as error:
        print(processes.logs())
        report = unfinished_devices_report(bulk_change)
        print(report)
        raise AssertionError(f"{error}\n{report}") from None


def kill_group_mid_run(
    cluster: subprocess.Popen[bytes], devices: QuerySet[DeviceChange], *, done: int
) -> set[str]:
    """SIGKILL the cluster's process group once ``done`` devices are PROCESSED and some are
    mid-call; returns the ICCIDs in flight at the kill."""
    wait_for(
        lambda: (
            devices.filter(status=DeviceChange.Status.PROCESSED).count() >= done
            and devices.filter(status=DeviceChange.Status.PROCESSING).exists()
        ),
        timeout=90,
        interval=0.05,
        message="some devices processed and some in flight",
    )
    os.killpg(cluster.pid, signal.SIGKILL)  # the cluster and its worker processes, mid-chunk
    cluster.wait()
    return set(
        devices.filter(status=DeviceChange.Status.PROCESSING).values_list("iccid", flat=True)
    )


def assert_each_device_once_but_in_flight(
    bulk_change: BulkChange, world: PondWorld, numbers: list[str], in_flight: set[str]
) -> None:
    """PROCESSED with one outcome per device; the carrier saw each device once, but a device in
    flight at a kill at most twice (its answer may have been lost)."""
    assert bulk_change.status == BulkChange.Status.PROCESSED
    outcomes = (
        BulkChangeLog.objects.filter(bulk_change=bulk_change, log_entry_description=OUTCOME)
        .values("device_change")
        .annotate(n=Count("id"))
        .values_list("n", flat=True)
    )
    assert len(outcomes) == len(numbers) and set(outcomes) == {1}
    calls = world.simulator.calls()["pond"]["set_sim_status"]
    assert sorted(calls) == sorted(numbers)
    assert {iccid for iccid, count in calls.items() if count > 1} <= in_flight
    assert max(calls.values()) <= 2


def test_200_devices_flow_through_sqs_poller_and_qcluster_to_processed(
    pond_world: PondWorld, sqs_queue: Queue, processes: Processes
) -> None:
    numbers = iccids(200)
    seed_sims(pond_world, numbers)
    processes.start("qcluster")
    processes.start("poll_sqs")
    bulk_change = create_bulk_change(pond_world, numbers)
    wait_final(bulk_change, processes)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    statuses = DeviceChange.objects.filter(bulk_change=bulk_change).values_list("status", flat=True)
    assert set(statuses) == {DeviceChange.Status.PROCESSED}
    assert Device.objects.filter(iccid__in=numbers, status__code="SUSPENDED").count() == 200
    services = pond_world.simulator.rev_services()
    assert sorted(service["number"] for service in services) == numbers
    per_device = (
        BulkChangeLog.objects.filter(bulk_change=bulk_change, device_change__isnull=False)
        .values("device_change")
        .annotate(rows=Count("id"))
        .values_list("rows", flat=True)
    )
    assert set(per_device) == {8}  # 7 HTTP calls (3 POND, 4 Rev.io) + the outcome
    assert bulk_change.logs.filter(log_entry_description="Bulk change completed").count() == 1
    assert sqs_queue.messages() == 0


def test_duplicate_messages_two_pollers_and_two_clusters_call_the_carrier_once_per_device(
    pond_world: PondWorld, sqs_queue: Queue, processes: Processes
) -> None:
    numbers = iccids(100)
    seed_sims(pond_world, numbers)
    pond_world.simulator.config(latency_ms=20)
    for _ in range(2):
        processes.start("qcluster")
        processes.start("poll_sqs")
    bulk_change = create_bulk_change(pond_world, numbers, with_rev=False)
    sqs.send_bulk_change(bulk_change.pk)
    sqs.send_bulk_change(bulk_change.pk)
    wait_final(bulk_change, processes)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    calls = pond_world.simulator.calls()["pond"]["set_sim_status"]
    assert sorted(calls) == numbers
    assert set(calls.values()) == {1}
    outcomes = BulkChangeLog.objects.filter(
        bulk_change=bulk_change, log_entry_description=OUTCOME
    ).count()
    assert outcomes == 100


def test_a_killed_worker_loses_no_device_and_records_no_outcome_twice(
    pond_world: PondWorld, sqs_queue: Queue, processes: Processes, settings: Any
) -> None:
    numbers = iccids(60)
    seed_sims(pond_world, numbers)
    pond_world.simulator.config(latency_ms=150)
    # A 4 s lease so that the test need not wait for the default one.
    cluster = processes.start("qcluster", start_new_session=True, BULKCHANGE_LEASE_SECONDS="4")
    processes.start("poll_sqs")
    bulk_change = create_bulk_change(pond_world, numbers, with_rev=False)
    devices = DeviceChange.objects.filter(bulk_change=bulk_change)
    in_flight = kill_group_mid_run(cluster, devices, done=5)
    counts = device_status_counts(bulk_change_id=bulk_change.pk)
    assert in_flight, f"the kill should have caught devices mid-call: {counts}"
    # The killed worker's leases expire; its chunks' unclaimed devices show no progress for
    # longer than the grace period. (The reaper's schedule is minutes; reap_once is now.)
    settings.BULKCHANGE_REAPER_GRACE_SECONDS = 2
    wait_for(
        lambda: (
            not devices.filter(claimed_until__gte=timezone.now()).exists()
            and not devices.filter(updated_at__gte=timezone.now() - timedelta(seconds=2)).exists()
        ),
        timeout=30,
        message="leases expired and no progress within the grace period",
    )
    call_command("reap_once")
    processes.start("qcluster", BULKCHANGE_LEASE_SECONDS="4")
    wait_final(bulk_change, processes)

    assert_each_device_once_but_in_flight(bulk_change, pond_world, numbers, in_flight)
    reaped = DeviceChange.objects.filter(bulk_change=bulk_change, iccid__in=in_flight)
    assert all(device_change.attempts == 1 for device_change in reaped)
    # Every call the carrier saw has its audit row, the killed ones' included.
    carrier_calls = sum(
        sum(keys.values()) for keys in pond_world.simulator.calls()["pond"].values()
    )
    call_rows = BulkChangeLog.objects.filter(bulk_change=bulk_change).exclude(request_text="")
    assert carrier_calls <= call_rows.count()
    assert not call_rows.filter(in_flight=True).exists()
    unanswered = call_rows.filter(response_text=logs.NO_RESPONSE).count()
    assert call_rows.count() - unanswered <= carrier_calls


def test_a_call_in_flight_when_its_worker_is_killed_keeps_its_row_saying_no_answer_came(
    pond_world: PondWorld, sqs_queue: Queue, processes: Processes, settings: Any
) -> None:
    [number] = iccids(1)
    seed_sims(pond_world, [number])
    # The carrier holds the status change 60 s: the worker is killed while waiting for it.
    pond_world.simulator.add_fault(
        "pond", "set_sim_status", key=number, kind="timeout", delay_ms=60_000
    )
    cluster = processes.start("qcluster", start_new_session=True, BULKCHANGE_LEASE_SECONDS="3")
    processes.start("poll_sqs")
    bulk_change = create_bulk_change(pond_world, [number], with_rev=False)
    rows = BulkChangeLog.objects.filter(bulk_change=bulk_change)
    row = wait_for(
        lambda: rows.filter(in_flight=True).first(),
        timeout=60,
        interval=0.05,
        message="the status change's row, written before the call",
    )
    wait_for(
        lambda: pond_world.simulator.call_count("pond", "set_sim_status", number) == 1,
        timeout=30,
        message="the carrier received the status change",
    )
    assert row.response_status is None and row.response_text == ""
    assert row.request_text.startswith("PUT ") or row.request_text.startswith("POST ")

    os.killpg(cluster.pid, signal.SIGKILL)
    cluster.wait()
    wait_for(
        lambda: (
            not DeviceChange.objects.filter(
                bulk_change=bulk_change, claimed_until__gte=timezone.now()
            ).exists()
        ),
        timeout=30,
        message="the killed worker's lease expired",
    )
    call_command("reap_once")

    row.refresh_from_db()
    assert (row.in_flight, row.has_errors, row.response_text) == (False, True, logs.NO_RESPONSE)
    assert row.log_entry_description and row.process_by.startswith("worker:")
    assert rows.filter(log_entry_description=logs.LEASE_EXPIRED).count() == 1


def test_a_killed_cluster_group_recovers_on_leases_alone_calling_no_device_twice_but_in_flight(
    pond_world: PondWorld, sqs_queue: Queue, processes: Processes
) -> None:
    """SIGKILL of the whole qcluster group mid-run: devices in flight (PROCESSING) and the
    chunks the cluster had taken — running or waiting in its local queue — are held on leases
    nobody renews any more. A new cluster and ``run_reaper`` bring every device home with the
    stalled-bulk-change rule out of the way (grace of an hour) and django-q2's own redelivery
    (retry 360 s) far beyond the deadline: leases and hand-offs alone."""
    numbers = iccids(200)
    seed_sims(pond_world, numbers)
    pond_world.simulator.config(latency_ms=60)
    lease, chunk = "3", "10"
    cluster = processes.start(
        "qcluster",
        start_new_session=True,
        BULKCHANGE_LEASE_SECONDS=lease,
        BULKCHANGE_CHUNK_SIZE=chunk,
    )
    processes.start("poll_sqs", BULKCHANGE_LEASE_SECONDS=lease, BULKCHANGE_CHUNK_SIZE=chunk)
    bulk_change = create_bulk_change(pond_world, numbers, with_rev=False)
    devices = DeviceChange.objects.filter(bulk_change=bulk_change)
    in_flight = kill_group_mid_run(cluster, devices, done=20)
    held = devices.filter(status=DeviceChange.Status.PENDING, claim_token__isnull=False).count()
    done_at_kill = devices.filter(is_processed=True).count()
    assert in_flight and held, f"in flight {len(in_flight)}, held {held}"

    restarted = time.monotonic()
    processes.start("qcluster", BULKCHANGE_LEASE_SECONDS=lease, BULKCHANGE_CHUNK_SIZE=chunk)
    processes.start(
        "run_reaper",
        "--interval",
        "1",
        BULKCHANGE_LEASE_SECONDS=lease,
        BULKCHANGE_CHUNK_SIZE=chunk,
        BULKCHANGE_REAPER_GRACE_SECONDS="3600",  # the stalled-bulk-change rule out of the way
    )
    wait_for(
        lambda: devices.filter(is_processed=True).count() > done_at_kill,
        timeout=120,
        interval=0.1,
        message="progress after the restart",
    )
    first_progress = time.monotonic() - restarted
    wait_final(bulk_change, processes, timeout=240)
    print(
        f"recovery: first progress {first_progress:.1f} s after restart, final "
        f"{time.monotonic() - restarted:.1f} s after restart; at the kill {len(in_flight)} in "
        f"flight, {held} held by the dead cluster, {done_at_kill} done"
    )

    assert_each_device_once_but_in_flight(bulk_change, pond_world, numbers, in_flight)


def test_poll_sqs_drains_and_exits_zero_on_sigterm(
    pond_world: PondWorld, sqs_queue: Queue, processes: Processes
) -> None:
    poller = processes.start("poll_sqs")
    wait_for(lambda: "polling" in processes.logs(), timeout=30, message="poller started")
    started = time.monotonic()
    poller.send_signal(signal.SIGTERM)
    assert poller.wait(timeout=30) == 0
    assert time.monotonic() - started < 1 + 10  # one long-poll wait (1 s here) plus a batch
    assert "poll_sqs: stopped" in processes.logs()
