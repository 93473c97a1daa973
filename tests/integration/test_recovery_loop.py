"""``run_reaper``: the recovery loop in its own process (the reaper and the webhook sweep)."""

from __future__ import annotations

import signal
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from bulkchanges import heartbeats
from bulkchanges.models import DeviceChange, ProcessHeartbeat
from bulkchanges.services import recovery
from tests.conftest import (
    PondWorld,
    Processes,
    Queue,
    create_bulk_change,
    iccids,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_one_pass_returns_a_dead_workers_lease(pond_world: PondWorld, sqs_queue: Queue) -> None:
    [number] = iccids(1)
    bulk_change = create_bulk_change(pond_world, [number])
    DeviceChange.objects.filter(bulk_change=bulk_change).update(
        status=DeviceChange.Status.PROCESSING,
        claimed_until=timezone.now() - timedelta(seconds=1),
    )
    out = StringIO()
    call_command("run_reaper", "--once", stdout=out)
    assert "reaper: expired leases 1" in out.getvalue()
    assert "webhook sweep: 0 expired" in out.getvalue()
    device_change = DeviceChange.objects.get(bulk_change=bulk_change)
    assert device_change.status == DeviceChange.Status.RETRY_SCHEDULED
    assert device_change.last_error.startswith("worker lease expired")


def test_the_loop_beats_its_heartbeat_and_survives_a_failing_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passes = {"n": 0}
    real_pass = recovery.recovery_pass

    def flaky_pass() -> recovery.RecoveryReport:
        passes["n"] += 1
        if passes["n"] == 1:
            raise RuntimeError("database went away")
        if passes["n"] >= 3:
            stop.set()
        return real_pass()

    stop = threading.Event()
    monkeypatch.setattr(recovery, "recovery_pass", flaky_pass)
    assert recovery.recovery_run(stop=stop, interval=0.01) == 2
    beat = ProcessHeartbeat.objects.get(kind=heartbeats.REAPER)
    assert beat.detail.startswith("reaper: expired leases 0")
    state = heartbeats.heartbeat_state(kind=heartbeats.REAPER, fresh=timedelta(seconds=60))
    age = state.age_seconds(timezone.now())
    assert state.processes == 1 and age is not None and age < 60


def test_run_reaper_runs_until_sigterm(processes: Processes) -> None:
    reaper = processes.start("run_reaper", "--interval", "0.2")
    wait_for(
        lambda: ProcessHeartbeat.objects.filter(kind=heartbeats.REAPER).exists(),
        timeout=30,
        message="run_reaper never beat its heartbeat:\n" + processes.logs(),
    )
    reaper.send_signal(signal.SIGTERM)
    assert reaper.wait(timeout=30) == 0
    assert "run_reaper: stopped after" in processes.logs()
