"""Device leases that die with their worker (docs/architecture.md §6): the keeper renews a
live worker's claims however slow its carrier is; once nobody renews them, the reaper takes
them back."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from bulkchanges import transitions
from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from bulkchanges.services import logs
from bulkchanges.services.processing import device_change_claim
from bulkchanges.services.processing.claims import DEVICE_LEASES
from bulkchanges.services.reaper import reap
from tests.conftest import (
    PondWorld,
    Queue,
    create_bulk_change,
    drain,
    iccids,
    seed_sims,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_slow_live_worker_keeps_its_lease_while_the_reaper_runs(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None, settings: Any
) -> None:
    """Every carrier call takes longer than the whole lease; the keeper renews it every
    third of the lease, so a reaper running all along never takes a device from its worker."""
    settings.BULKCHANGE_LEASE_SECONDS = 0.6
    numbers = iccids(3)
    seed_sims(pond_world, numbers)
    pond_world.simulator.config(latency_ms=1000)
    bulk_change = create_bulk_change(pond_world, numbers, with_rev=False)
    stop = threading.Event()
    passes_seeing_work: list[int] = []

    def reaper_loop() -> None:
        try:
            while not stop.is_set():
                in_flight = DeviceChange.objects.filter(
                    bulk_change=bulk_change, status=DeviceChange.Status.PROCESSING
                ).count()
                report = reap(enqueue=lambda ids: None, process_by="reaper")
                assert report.leases_expired == 0, report
                if in_flight:
                    passes_seeing_work.append(in_flight)
                stop.wait(0.1)
        finally:
            connection.close()

    loop = threading.Thread(target=reaper_loop)
    loop.start()
    try:
        drain(bulk_change, timeout=120)
    finally:
        stop.set()
        loop.join(timeout=60)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    assert passes_seeing_work, "no reaper pass ran while devices were in flight"
    assert not BulkChangeLog.objects.filter(
        bulk_change=bulk_change, log_entry_description=logs.LEASE_EXPIRED
    ).exists()
    calls = pond_world.simulator.calls()["pond"]["set_sim_status"]
    assert sorted(calls) == numbers and set(calls.values()) == {1}


def test_a_claim_nobody_renews_any_more_is_taken_back_by_the_reaper(
    pond_world: PondWorld, sqs_queue: Queue, settings: Any
) -> None:
    settings.BULKCHANGE_LEASE_SECONDS = 0.6
    bulk_change = create_bulk_change(pond_world, iccids(1), with_rev=False)
    device_change = DeviceChange.objects.get(bulk_change=bulk_change)
    assert device_change_claim(ids=[device_change.pk]) == [device_change.pk]
    device_change.refresh_from_db()
    first_lease = device_change.claimed_until
    assert first_lease is not None

    with DEVICE_LEASES.holding(device_change.claim_token):
        renewed = wait_for(
            lambda: DeviceChange.objects.filter(
                pk=device_change.pk, claimed_until__gt=first_lease
            ).exists(),
            timeout=30,
            interval=0.05,
            message="the keeper renewing the claim",
        )
        assert renewed
        assert reap(enqueue=lambda ids: None, process_by="reaper").leases_expired == 0

    # Released (its worker died): the lease runs out and the reaper takes the device back.
    wait_for(
        lambda: (
            not DeviceChange.objects.filter(
                pk=device_change.pk, claimed_until__gte=timezone.now() - timedelta(seconds=0.05)
            ).exists()
        ),
        timeout=30,
        interval=0.05,
        message="the lease to expire",
    )
    handed: list[list[int]] = []
    assert reap(enqueue=handed.append, process_by="reaper").leases_expired == 1
    assert handed == [[device_change.pk]]


def test_a_chunk_a_cluster_takes_off_the_queue_is_held_for_it_until_its_worker_takes_over(
    pond_world: PondWorld, sqs_queue: Queue
) -> None:
    """django-q2's pusher takes a chunk into its cluster's local queue (lost if the cluster is
    killed there): at that moment its PENDING rows are handed to the pusher's process."""
    from django_q.brokers import get_broker

    from bulkchanges.brokers import HandOffOrm
    from bulkchanges.leases import keeper
    from bulkchanges.services.processing.claims import chunk_held
    from bulkchanges.tasks import enqueue_devices

    bulk_change = create_bulk_change(pond_world, iccids(3), with_rev=False)
    ids = sorted(DeviceChange.objects.filter(bulk_change=bulk_change).values_list("pk", flat=True))
    broker = get_broker()
    assert isinstance(broker, HandOffOrm)
    enqueue_devices(ids)

    [(ack_id, _)] = broker.dequeue()
    broker.acknowledge(ack_id)

    rows = DeviceChange.objects.filter(pk__in=ids)
    [pusher_token] = set(rows.values_list("claim_token", flat=True))
    assert pusher_token is not None and pusher_token in keeper().held(DEVICE_LEASES)
    leases = rows.values_list("claimed_until", flat=True)
    assert all(until is not None and until > timezone.now() for until in leases)
    with chunk_held(ids=ids):  # the worker takes the hand-off over
        [worker_token] = set(rows.values_list("claim_token", flat=True))
        assert worker_token != pusher_token
        keeper().renew_due(now=float("inf"))
        assert pusher_token not in keeper().held(DEVICE_LEASES)


@contextmanager
def row_locked_elsewhere(pk: int) -> Iterator[None]:
    """Another process's short write to a row (a hand-off, a renewal), held open while the
    block runs. PostgreSQL only: SQLite has no row locks."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    locked, release = threading.Event(), threading.Event()

    def write() -> None:
        try:
            with transaction.atomic():
                DeviceChange.objects.filter(pk=pk).update(claimed_until=timezone.now())
                locked.set()
                release.wait(timeout=60)
        finally:
            connection.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert locked.wait(timeout=30)
        yield
    finally:
        release.set()
        writer.join(timeout=60)


def _someone_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        (waiting,) = cursor.fetchone()
    return bool(waiting)


def test_a_claim_waits_for_a_row_being_written_instead_of_skipping_it(
    pond_world: PondWorld, sqs_queue: Queue
) -> None:
    """Skipping a locked row would strand a claimable device: its chunk moves on without it."""
    bulk_change = create_bulk_change(pond_world, iccids(1), with_rev=False)
    pk = DeviceChange.objects.get(bulk_change=bulk_change).pk
    won: list[list[int]] = []
    claimer = threading.Thread(target=lambda: won.append(device_change_claim(ids=[pk])))
    with row_locked_elsewhere(pk):
        claimer.start()
        wait_for(_someone_waits_for_a_lock, timeout=30, message="the claim waiting for the row")
    claimer.join(timeout=60)
    assert won == [[pk]]


def test_a_renewal_skips_a_row_being_written_and_keeps_its_token(
    pond_world: PondWorld, sqs_queue: Queue
) -> None:
    bulk_change = create_bulk_change(pond_world, iccids(2), with_rev=False)
    first, second = DeviceChange.objects.filter(bulk_change=bulk_change).order_by("pk")
    token = uuid.uuid4()
    transitions.device_changes_hand_off(
        ids=[first.pk, second.pk], token=token, lease_until=timezone.now()
    )
    later = timezone.now() + timedelta(hours=1)
    with row_locked_elsewhere(first.pk):
        held = transitions.device_changes_renew_leases(tokens=[token], lease_until=later)
        assert held == frozenset({token})  # returned while the first row is still locked
    assert DeviceChange.objects.get(pk=second.pk).claimed_until == later


def test_with_the_redis_broker_a_taken_chunk_is_held_too(
    pond_world: PondWorld, sqs_queue: Queue
) -> None:
    """The Redis broker hands a task out once (BLPOP): a cluster killed with it never gives it
    back, so holding it at that moment is all that brings its devices home."""
    import redis
    from django_q.signing import SignedPackage

    from bulkchanges.brokers import HandOffRedis
    from bulkchanges.leases import keeper
    from bulkchanges.tasks import PROCESS_DEVICES

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    bulk_change = create_bulk_change(pond_world, iccids(2), with_rev=False)
    ids = sorted(DeviceChange.objects.filter(bulk_change=bulk_change).values_list("pk", flat=True))
    broker = HandOffRedis(list_key=f"pondops-test-{uuid.uuid4().hex}")
    try:
        broker.enqueue(SignedPackage.dumps({"func": PROCESS_DEVICES, "args": (ids,)}))
        assert len(broker.dequeue()) == 1
    finally:
        broker.delete_queue()
    tokens = set(DeviceChange.objects.filter(pk__in=ids).values_list("claim_token", flat=True))
    assert len(tokens) == 1 and tokens <= keeper().held(DEVICE_LEASES)
    for token in tokens:
        DEVICE_LEASES.release(token)


class _Killed(BaseException):
    """The pusher's process dies here (SIGKILL runs no handler: nothing after it is written)."""


def _reachable_after_one_lease(ids: list[int]) -> set[int]:
    """The devices that someone hands out again once one lease has passed: the reaper (an
    expired hand-off) or the ORM queue (a task no cluster holds locked)."""
    from django.conf import settings
    from django_q.models import OrmQ

    later = timezone.now() + timedelta(seconds=settings.BULKCHANGE_LEASE_SECONDS + 1)
    handed: list[list[int]] = []
    reap(enqueue=handed.append, process_by="reaper", now=later)
    offered = {pk for task in OrmQ.objects.filter(lock__lt=later) for pk in task.args()[0]}
    return ({pk for chunk in handed for pk in chunk} | offered) & set(ids)


def test_a_pusher_killed_between_taking_a_chunk_and_holding_it_strands_no_device(
    pond_world: PondWorld, sqs_queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end-to-end kill test's stranded chunk (its devices PENDING, held by nobody, their
    task locked for django-q2's ``retry``): the ORM broker's lock and the hand-off commit
    together, so a pusher dying between them took nothing and the queue offers the chunk
    again at once."""
    from django_q.brokers import get_broker

    from bulkchanges.brokers import HandOffOrm
    from bulkchanges.tasks import enqueue_devices

    bulk_change = create_bulk_change(pond_world, iccids(3), with_rev=False)
    ids = sorted(DeviceChange.objects.filter(bulk_change=bulk_change).values_list("pk", flat=True))
    broker = get_broker()
    if not isinstance(broker, HandOffOrm):
        pytest.skip("the ORM broker (REDIS_URL is set)")
    enqueue_devices(ids)

    def killed(**_: Any) -> int:
        raise _Killed

    with monkeypatch.context() as patched:
        patched.setattr(transitions, "device_changes_hand_off", killed)
        with pytest.raises(_Killed):
            broker.dequeue()

    rows = DeviceChange.objects.filter(pk__in=ids)
    assert set(rows.values_list("status", "claim_token")) == {(DeviceChange.Status.PENDING, None)}
    assert _reachable_after_one_lease(ids) == set(ids)
    [(ack_id, _)] = broker.dequeue()  # a live cluster takes it, and holds it
    broker.acknowledge(ack_id)
    assert None not in set(rows.values_list("claim_token", flat=True))
    for token in set(rows.values_list("claim_token", flat=True)):
        DEVICE_LEASES.release(token)


def test_with_the_redis_broker_a_pusher_killed_mid_take_gives_the_chunk_back(
    pond_world: PondWorld, sqs_queue: Queue, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """Redis hands a task out once: a pusher dying between the pop and the hold would lose it.
    The pop records the task as being taken; the next dequeue after one lease puts it back."""
    import redis
    from django_q.signing import SignedPackage

    from bulkchanges.brokers import HandOffRedis
    from bulkchanges.tasks import PROCESS_DEVICES

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    settings.BULKCHANGE_LEASE_SECONDS = 2
    bulk_change = create_bulk_change(pond_world, iccids(2), with_rev=False)
    ids = sorted(DeviceChange.objects.filter(bulk_change=bulk_change).values_list("pk", flat=True))
    broker = HandOffRedis(list_key=f"pondops-test-{uuid.uuid4().hex}")
    payload = SignedPackage.dumps({"func": PROCESS_DEVICES, "args": (ids,)})

    def killed(**_: Any) -> int:
        raise _Killed

    try:
        broker.enqueue(payload)
        with monkeypatch.context() as patched:
            patched.setattr(transitions, "device_changes_hand_off", killed)
            with pytest.raises(_Killed):
                broker.dequeue()
        assert broker.queue_size() == 0  # taken, held by nobody: only the taking set has it
        assert broker.dequeue() is None  # within the deadline the dead taker keeps it
        wait_for(lambda: broker.dequeue(), timeout=10, message="the task offered again")
        assert broker.queue_size() == 0
        assert broker.connection.zcard(broker.taking_key) == 0
    finally:
        broker.delete_queue()
    tokens = set(DeviceChange.objects.filter(pk__in=ids).values_list("claim_token", flat=True))
    assert len(tokens) == 1 and None not in tokens
    for token in tokens:
        DEVICE_LEASES.release(token)
