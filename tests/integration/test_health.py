"""``/healthz``: each check's state in ``checks`` (the load balancer's 503 when any is an
error) and its figures in ``details`` — the heartbeats' ages, the dead-letter queue's depth
and oldest age. Dead letters are a warning for staff, never a 503."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from bulkchanges import heartbeats
from tests.conftest import Queue

pytestmark = pytest.mark.django_db


def test_a_fresh_poller_heartbeat_is_ok_with_its_age(client: Any, sqs_queue: Queue) -> None:
    heartbeats.heartbeat_beat(
        kind=heartbeats.POLLER, detail="receiving", now=timezone.now() - timedelta(seconds=3)
    )
    heartbeats.heartbeat_beat(kind=heartbeats.REAPER, detail="reaper: expired leases 0")

    response = client.get("/healthz")
    body = response.json()

    assert body["checks"]["poller"] == "ok"
    assert 3 <= body["details"]["poller"]["age_seconds"] < 60
    assert body["details"]["poller"]["processes"] == 1
    assert body["details"]["poller"]["detail"] == "receiving"
    assert body["checks"]["dead_letter_queue"] == "ok"
    assert body["details"]["dead_letter_queue"] == {"depth": 0, "oldest_age_seconds": None}
    assert body["details"]["queue"]["depth"]["ApproximateNumberOfMessages"] == 0
    # No qcluster runs in this test: the cluster is the only error, and it alone is the 503.
    errors = {name for name, value in body["checks"].items() if value.startswith("error")}
    assert errors == {"cluster"} and response.status_code == 503
    assert body["details"]["cluster"] == {"age_seconds": None}


def test_a_stale_or_missing_poller_heartbeat_is_an_error(client: Any, sqs_queue: Queue) -> None:
    assert client.get("/healthz").json()["checks"]["poller"] == (
        "error: no poll_sqs heartbeat in 60 s"
    )
    heartbeats.heartbeat_beat(kind=heartbeats.POLLER, now=timezone.now() - timedelta(seconds=90))
    body = client.get("/healthz").json()
    assert body["checks"]["poller"].startswith("error")
    assert body["details"]["poller"]["age_seconds"] >= 90


def test_the_reaper_heartbeat_is_stale_after_four_missed_passes(
    client: Any, sqs_queue: Queue, settings: Any
) -> None:
    settings.BULKCHANGE_REAPER_INTERVAL_SECONDS = 30
    assert client.get("/healthz").json()["checks"]["reaper"] == (
        "error: no run_reaper heartbeat in 120 s"
    )
    heartbeats.heartbeat_beat(
        kind=heartbeats.REAPER, detail="reaper: …", now=timezone.now() - timedelta(seconds=100)
    )
    body = client.get("/healthz").json()
    assert body["checks"]["reaper"] == "ok"
    assert body["details"]["reaper"]["processes"] == 1
    assert body["details"]["reaper"]["detail"] == "reaper: …"
    heartbeats.heartbeat_beat(kind=heartbeats.REAPER, now=timezone.now() - timedelta(seconds=130))
    assert client.get("/healthz").json()["checks"]["reaper"].startswith("error")


def test_dead_letters_are_a_warning_with_depth_and_age_not_an_outage(
    client: Any, sqs_queue: Queue
) -> None:
    for _ in range(2):
        sqs_queue.client.send_message(QueueUrl=sqs_queue.dlq_url, MessageBody="x")

    body = client.get("/healthz").json()

    assert body["checks"]["dead_letter_queue"].startswith("warning: 2 messages, oldest ")
    assert body["details"]["dead_letter_queue"]["depth"] == 2
    assert body["details"]["dead_letter_queue"]["oldest_age_seconds"] >= 0
    assert body["warnings"] == ["dead_letter_queue"]
    errors = {name for name, value in body["checks"].items() if value.startswith("error")}
    assert "dead_letter_queue" not in errors


def test_an_unreachable_sqs_is_a_queue_error_and_an_unknown_dead_letter_queue(
    client: Any, settings: Any
) -> None:
    from bulkchanges import sqs
    from tests.conftest import free_port

    sqs.sqs_client.cache_clear()
    settings.AWS_ENDPOINT_URL_SQS = f"http://127.0.0.1:{free_port()}"
    settings.PONDOPS_SQS_QUEUE_URL = settings.AWS_ENDPOINT_URL_SQS + "/000000000000/gone"
    settings.PONDOPS_SQS_DLQ_URL = settings.AWS_ENDPOINT_URL_SQS + "/000000000000/gone-dlq"
    try:
        response = client.get("/healthz")
    finally:
        sqs.sqs_client.cache_clear()
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["queue"].startswith("error: get_queue_attributes: unreachable")
    assert body["checks"]["dead_letter_queue"] == "unknown: SQS unreachable"
