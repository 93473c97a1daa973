"""/metrics during a bulk change run by real processes: ``qcluster`` (and its forked workers)
and ``poll_sqs`` write their counters into one PROMETHEUS_MULTIPROC_DIR, and the web's
/metrics (here Django's test client, reading the same directory) sums them; the workers' log
lines are JSON with each device's ids."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from pondops.metrics import metrics_directory_reset, metrics_process_id
from tests.conftest import (
    PondWorld,
    Processes,
    Queue,
    create_bulk_change,
    iccids,
    seed_sims,
    wait_for,
)
from tests.fixtures.logs import json_lines
from tests.integration.test_observability import scrape, total

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

DEVICES = 40
OUTCOME = "Device status change result"
FINAL = ("PROCESSED", "SKIPPED", "ERROR", "CANCELLED")


def test_metrics_summed_over_the_hosts_processes_move_through_a_bulk_change(
    pond_world: PondWorld,
    sqs_queue: Queue,
    processes: Processes,
    client: Client,
    settings: Any,
    tmp_path: Path,
) -> None:
    directory = tmp_path / "prometheus"
    metrics_directory_reset(str(directory))
    settings.PROMETHEUS_MULTIPROC_DIR = str(directory)
    numbers = iccids(DEVICES)
    seed_sims(pond_world, numbers)
    pond_world.simulator.config(latency_ms=60)  # long enough to scrape mid-run

    before = scrape(client)
    assert total(before, "pondops_carrier_requests_total") == 0
    assert total(before, "pondops_bulk_changes_open") == 0
    shared = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PONDOPS_LOG_FORMAT": "json"}
    processes.env.update(shared)  # every process of this "host" writes into the one directory
    cluster = processes.start("qcluster")
    processes.start("poll_sqs")
    bulk_change = create_bulk_change(pond_world, numbers, with_rev=False)

    def mid_run() -> dict[Any, float] | None:
        samples = scrape(client)
        started = total(samples, "pondops_carrier_requests_total", carrier="POND") > 0
        running = total(samples, "pondops_bulk_changes_open", status="PROCESSING") == 1
        left = total(samples, "pondops_device_changes_unfinished", carrier="POND")
        return samples if started and running and left > 0 else None

    during = wait_for(mid_run, timeout=120, interval=0.2, message="a scrape mid-run")
    wait_for(
        lambda: BulkChange.objects.get(pk=bulk_change.pk).status in BulkChange.TERMINAL,
        timeout=180,
        interval=0.5,
        message="the bulk change final",
    )
    after = scrape(client)

    calls = (
        BulkChangeLog.objects.filter(bulk_change=bulk_change, device_change__isnull=False)
        .exclude(log_entry_description=OUTCOME)
        .count()
    )  # one audit row per carrier call
    pond = {"carrier": "POND"}
    assert calls == 3 * DEVICES
    assert total(after, "pondops_carrier_requests_total", **pond) == calls
    assert total(after, "pondops_carrier_requests_total", **pond, code="204") == 2 * DEVICES
    assert total(after, "pondops_carrier_requests_total", **pond, code="200") == DEVICES
    assert total(after, "pondops_carrier_request_duration_seconds_count", **pond) == calls
    assert 0 < total(during, "pondops_carrier_requests_total", **pond) < calls
    finished = sum(
        total(after, "pondops_device_outcomes_total", **pond, status=status) for status in FINAL
    )
    assert finished == DEVICES
    assert total(after, "pondops_device_outcomes_total", **pond, status="PROCESSED") == DEVICES
    assert total(during, "pondops_bulk_change_oldest_open_age_seconds") > 0
    assert total(after, "pondops_bulk_changes_open") == 0
    assert total(after, "pondops_device_changes_unfinished") == 0
    assert total(after, "pondops_scrape_source_up") == 2  # the database and SQS both read
    # The counts came from the processes' files, each named by host name and pid.
    names = {path.name for path in directory.glob("counter_*.db")}
    host = re.escape(metrics_process_id(0).removesuffix("-0"))
    assert names and all(re.fullmatch(rf"counter_{host}-\d+\.db", name) for name in names)

    # The workers' lines: JSON, a device outcome's carrying its ids.
    processes.stop_all()
    worker_log = next(log for process, log in processes.running if process is cluster)
    outcomes = [
        line
        for line in json_lines(worker_log.read_text())
        if line.get("logger") == "bulkchanges.services.processing.device_run"
        and "PROCESSED" in line["message"]
    ]
    device_ids = set(
        DeviceChange.objects.filter(bulk_change=bulk_change).values_list("pk", flat=True)
    )
    assert {line["device_change_id"] for line in outcomes} == device_ids
    assert {line["bulk_change_id"] for line in outcomes} == {bulk_change.pk}
    assert {line["carrier"] for line in outcomes} == {"POND"}
