"""Observability in one process: a device outcome's log line is JSON with its ids, a web
request's id goes in and out and onto its lines, /metrics counts a real bulk change and is
protected by its token (the multiprocess run is test_observability_e2e.py)."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from bulkchanges.models import BulkChange, DeviceChange
from tests.conftest import (
    POND_KEY,
    PondWorld,
    Queue,
    create_bulk_change,
    drain,
    iccids,
    seed_sims,
)
from tests.fixtures.logs import json_lines

pytestmark = pytest.mark.django_db(transaction=True)

DEVICE_RUN_LOGGER = "bulkchanges.services.processing.device_run"


def scrape(client: Client, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics parsed: (sample name, sorted labels) -> value."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


def test_a_device_outcome_line_is_json_with_its_bulk_change_device_change_request_and_carrier(
    pond_world: PondWorld,
    sqs_queue: Queue,
    inline_workers: None,
    configured_logs: Callable[[str], StringIO],
) -> None:
    buffer = configured_logs("json")
    numbers = iccids(5)
    seed_sims(pond_world, numbers)
    bulk_change = create_bulk_change(pond_world, numbers, idempotency_key="req-obs-1")
    drain(bulk_change)
    assert bulk_change.status == BulkChange.Status.PROCESSED

    lines = json_lines(buffer.getvalue())
    outcomes = [
        line
        for line in lines
        if line["logger"] == DEVICE_RUN_LOGGER and "PROCESSED" in line["message"]
    ]
    device_ids = set(
        DeviceChange.objects.filter(bulk_change=bulk_change).values_list("pk", flat=True)
    )
    assert {line["device_change_id"] for line in outcomes} == device_ids
    for line in outcomes:
        assert line["bulk_change_id"] == bulk_change.pk
        assert line["carrier"] == "POND"
        assert line["request_id"] == "req-obs-1"
        assert line["level"] == "INFO" and isinstance(line["process"], int)
    assert POND_KEY not in buffer.getvalue()


def test_metrics_count_the_carrier_calls_and_outcomes_of_a_bulk_change(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None, client: Client
) -> None:
    numbers = iccids(4)
    seed_sims(pond_world, numbers)
    before = scrape(client)
    bulk_change = create_bulk_change(pond_world, numbers, with_rev=False)
    queued = scrape(client)
    drain(bulk_change)
    after = scrape(client)

    pond = {"carrier": "POND"}
    assert total(queued, "pondops_bulk_changes_open", status="QUEUED") == 1
    assert total(queued, "pondops_device_changes_unfinished", carrier="POND", status="PENDING") == 4
    assert total(after, "pondops_bulk_changes_open") == 0
    assert total(after, "pondops_device_changes_unfinished") == 0
    assert total(after, "pondops_bulk_change_oldest_open_age_seconds") == 0
    # Three POND calls per device (status, package list, package): 204, 200, 204.
    calls = total(after, "pondops_carrier_requests_total", **pond) - total(
        before, "pondops_carrier_requests_total", **pond
    )
    assert calls == 12
    assert (
        total(after, "pondops_carrier_request_duration_seconds_count", **pond)
        - total(before, "pondops_carrier_request_duration_seconds_count", **pond)
        == 12
    )
    processed = {"carrier": "POND", "status": "PROCESSED"}
    assert (
        total(after, "pondops_device_outcomes_total", **processed)
        - total(before, "pondops_device_outcomes_total", **processed)
        == 4
    )
    assert total(after, "pondops_scrape_source_up", source="database") == 1
    assert total(after, "pondops_scrape_source_up", source="sqs") == 1
    assert ("pondops_sqs_messages", (("state", "visible"),)) in after
    assert ("pondops_sqs_dead_letters", ()) in after


def test_a_request_id_goes_in_and_out_and_onto_the_requests_log_lines(
    client: Client, settings: Any, configured_logs: Callable[[str], StringIO]
) -> None:
    settings.PONDOPS_METRICS_TOKEN = "metrics-token-9b1c"
    buffer = configured_logs("json")

    response = client.get("/metrics", headers={"X-Request-ID": "lb-7f3a.1"})
    made = client.get("/metrics", headers={"X-Request-ID": "not a sane\tid"})

    assert response.status_code == 401 and response["X-Request-ID"] == "lb-7f3a.1"
    assert made["X-Request-ID"] != "not a sane\tid" and len(made["X-Request-ID"]) == 32
    refused = [line for line in json_lines(buffer.getvalue()) if line["logger"] == "django.request"]
    assert [line["request_id"] for line in refused] == ["lb-7f3a.1", made["X-Request-ID"]]
    assert "metrics-token-9b1c" not in buffer.getvalue()


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer wrong-token", 401),
        ("metrics-token-9b1c", 401),
        ("Bearer metrics-token-9b1c", 200),
    ],
)
def test_with_a_token_metrics_wants_it_as_a_bearer(
    client: Client, settings: Any, authorization: str | None, status: int
) -> None:
    settings.PONDOPS_METRICS_TOKEN = "metrics-token-9b1c"
    headers = {"Authorization": authorization} if authorization else {}

    response = client.get("/metrics", headers=headers)

    assert response.status_code == status
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert b"pondops_" not in response.content


def test_without_a_token_metrics_is_open_and_never_redirected_to_https(
    client: Client, settings: Any
) -> None:
    settings.PONDOPS_METRICS_TOKEN = ""
    settings.SECURE_SSL_REDIRECT = True

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert client.get("/admin/login/").status_code == 301  # what the exemption is from


def test_reset_metrics_dir_empties_the_metrics_files_and_nothing_else(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_4711.db").write_bytes(b"old boot")
    (directory / "histogram_4712.db").write_bytes(b"old boot")
    (directory / "notes.txt").write_text("someone else's")
    out = StringIO()

    call_command("reset_metrics_dir", "--dir", str(directory), stdout=out)

    assert sorted(path.name for path in directory.iterdir()) == ["notes.txt"]
    assert "2 metrics files removed" in out.getvalue()
    call_command("reset_metrics_dir", "--dir", str(tmp_path / "new"), stdout=out)
    assert (tmp_path / "new").is_dir()
