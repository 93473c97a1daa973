"""``poll_sqs`` survives its dependencies: SQS going away and coming back (a moto server of the
test's own, killed and restarted on the same port), throttling and 5xx answers (a scripted SQS
over real HTTP), and a database outage while a message is handled. Each outage is logged once
when it starts and once when it ends, the heartbeat says what is wrong, and consumption resumes
with no manual step."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
import requests
from django.db import connection

from bulkchanges import consumer as consumer_module
from bulkchanges import heartbeats, sqs
from bulkchanges.consumer import SqsConsumer
from bulkchanges.models import BulkChange, ProcessHeartbeat
from tests.conftest import (
    PondWorld,
    Processes,
    Queue,
    create_bulk_change,
    free_port,
    iccids,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE_NAME = "pondops-outage"


class MotoServer:
    """moto's SQS server on a fixed loopback port that the test can kill and start again (its
    queues die with it: ``create_queue`` brings the same URL back)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._up, timeout=30, message="moto server")
        client = boto3.client(
            "sqs",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        queue_url: str = client.create_queue(QueueName=QUEUE_NAME)["QueueUrl"]
        return queue_url

    def _up(self) -> bool:
        try:
            return requests.get(self.url + "/moto-api/", timeout=1).status_code < 500
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def moto(settings: Any) -> Iterator[tuple[MotoServer, Queue]]:
    server = MotoServer()
    url = server.start()
    settings.AWS_ENDPOINT_URL_SQS = server.url
    settings.PONDOPS_SQS_QUEUE_URL = url
    settings.PONDOPS_SQS_DLQ_URL = ""
    settings.BULKCHANGE_SQS_WAIT_SECONDS = 1
    sqs.sqs_client.cache_clear()
    client = boto3.client(
        "sqs",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    yield server, Queue(url, "", client)
    server.stop()
    sqs.sqs_client.cache_clear()


@pytest.fixture
def beat_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer_module, "HEARTBEAT_INTERVAL_SECONDS", 0)


def finished_bulk_change(world: PondWorld) -> BulkChange:
    """Creating it queues its message; the bulk change is then final, so the message is a
    no-op that the consumer deletes: proof that it consumed again."""
    bulk_change = create_bulk_change(world, iccids(1), with_rev=False)
    BulkChange.objects.filter(pk=bulk_change.pk).update(status=BulkChange.Status.PROCESSED)
    return bulk_change


def poller_detail() -> str:
    return heartbeats.heartbeat_state(kind=heartbeats.POLLER, fresh=heartbeats.PRUNE_AFTER).detail


def outage_records(caplog: Any, text: str, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage() and r.levelno == level]


def consumed_again(consumer: SqsConsumer, queue: Queue) -> None:
    """Step until the finished bulk change's message was received and deleted as a no-op."""
    wait_for(
        lambda: consumer.step() == 0 and consumer.stats.no_ops == 1,
        timeout=30,
        interval=0,
        message="the message consumed after the outage",
    )
    assert queue.messages() == 0


def outage_logged_once(caplog: Any, name: str) -> list[logging.LogRecord]:
    """One ERROR when the outage of ``name`` started, one INFO when it ended; returns the
    ERROR."""
    assert len(outage_records(caplog, f"{name} reachable again after", logging.INFO)) == 1
    started = outage_records(caplog, f"{name} unreachable:", logging.ERROR)
    assert len(started) == 1
    return started


def test_the_poller_waits_out_sqs_going_away_and_consumes_again_when_it_returns(
    pond_world: PondWorld,
    moto: tuple[MotoServer, Queue],
    beat_every_step: None,
    caplog: Any,
) -> None:
    server, queue = moto
    caplog.set_level(logging.INFO)
    consumer = SqsConsumer(wait_seconds=1, jitter=lambda: 0.0)
    assert consumer.step() == 0
    assert poller_detail() == "receiving"

    server.stop()
    delays = [consumer.step() for _ in range(3)]
    assert delays == [0.5, 1.0, 2.0]  # exponential, reset only by a success
    assert poller_detail().startswith("SQS unreachable since ")
    assert "EndpointConnectionError" in poller_detail()

    server.start()  # the same port; the queue is created again, as SQS would still have it
    finished_bulk_change(pond_world)
    consumed_again(consumer, queue)
    [started] = outage_logged_once(caplog, "SQS")
    assert "receive_message: unreachable: EndpointConnectionError" in started.getMessage()
    assert not [r for r in caplog.records if r.name == consumer_module.__name__ and r.exc_info]
    assert consumer.stats.outages == 1
    assert poller_detail() == "receiving"


def test_the_poll_sqs_process_stays_up_while_sqs_is_down_and_stops_on_sigterm(
    pond_world: PondWorld, moto: tuple[MotoServer, Queue], processes: Processes
) -> None:
    server, queue = moto
    poller = processes.start(
        "poll_sqs",
        AWS_ENDPOINT_URL_SQS=server.url,
        PONDOPS_SQS_QUEUE_URL=queue.url,
        PONDOPS_SQS_DLQ_URL="",
    )
    wait_for(lambda: poller_detail() == "receiving", timeout=30, message="first heartbeat")

    server.stop()
    wait_for(lambda: "SQS unreachable:" in processes.logs(), timeout=30, message="outage logged")
    wait_for(
        lambda: poller_detail().startswith("SQS unreachable since"),
        timeout=30,
        message="the heartbeat names the outage",
    )
    assert poller.poll() is None  # still running

    server.start()
    finished_bulk_change(pond_world)
    wait_for(
        lambda: queue.messages() == 0 and "SQS reachable again after" in processes.logs(),
        timeout=90,
        message="consumption resumed",
    )
    logs = processes.logs()
    assert logs.count("SQS unreachable:") == 1
    assert "Traceback" not in logs
    wait_for(lambda: poller_detail() == "receiving", timeout=30, message="heartbeat recovered")
    poller.send_signal(signal.SIGTERM)
    assert poller.wait(timeout=40) == 0
    assert "poll_sqs: stopped" in processes.logs()


class ScriptedSqs(BaseHTTPRequestHandler):
    """Answers SQS's JSON protocol from a script: (status, error code) per request, then an
    empty receive for every request after it."""

    script: list[tuple[int, str]] = []
    requests: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).requests.append(self.headers.get("X-Amz-Target", ""))
        body: dict[str, Any]
        if type(self).script:
            status, code = type(self).script.pop(0)
            body = {"__type": f"com.amazonaws.sqs#{code}", "message": f"scripted {code}"}
        else:
            status, body = 200, {"Messages": []}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def scripted_sqs(settings: Any) -> Iterator[type[ScriptedSqs]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedSqs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    settings.AWS_ENDPOINT_URL_SQS = endpoint
    settings.PONDOPS_SQS_QUEUE_URL = f"{endpoint}/000000000000/scripted"
    sqs.sqs_client.cache_clear()
    ScriptedSqs.requests = []
    yield ScriptedSqs
    server.shutdown()
    server.server_close()
    sqs.sqs_client.cache_clear()


def test_throttling_and_server_errors_are_waited_out_with_backoff_and_logged_once(
    scripted_sqs: type[ScriptedSqs], caplog: Any
) -> None:
    caplog.set_level(logging.INFO)
    scripted_sqs.script = [
        (400, "ThrottlingException"),
        (400, "ThrottlingException"),
        (500, "InternalError"),
        (503, "ServiceUnavailable"),
    ]
    consumer = SqsConsumer(wait_seconds=0, jitter=lambda: 0.0)

    delays = [consumer.step() for _ in range(5)]

    assert delays == [0.5, 1.0, 2.0, 4.0, 0.0]
    assert len(scripted_sqs.requests) == 5  # no hidden botocore retries under our backoff
    assert set(scripted_sqs.requests) == {"AmazonSQS.ReceiveMessage"}
    [started] = outage_records(caplog, "SQS unreachable:", logging.ERROR)
    assert "throttled: ThrottlingException" in started.getMessage()
    changed = outage_records(caplog, "SQS still unreachable, now:", logging.WARNING)
    assert ["server error 500" in r.getMessage() for r in changed] == [True, False]
    assert len(outage_records(caplog, "SQS reachable again after", logging.INFO)) == 1
    assert not [r for r in caplog.records if r.exc_info]

    scripted_sqs.script = [(500, "InternalError")]
    assert consumer.step() == 0.5  # a success reset the backoff


def test_a_database_outage_while_handling_keeps_the_message_and_the_poller(
    pond_world: PondWorld, sqs_queue: Queue, caplog: Any
) -> None:
    caplog.set_level(logging.INFO)
    finished_bulk_change(pond_world)
    consumer = SqsConsumer(wait_seconds=1, jitter=lambda: 0.0)
    name = connection.settings_dict["NAME"]
    connection.close()
    connection.settings_dict["NAME"] = (
        "/proc/pondops-no-such-dir/db.sqlite3" if connection.vendor == "sqlite" else f"{name}_gone"
    )
    try:
        wait_for(
            lambda: consumer.step() > 0 and consumer.stats.received,
            timeout=20,
            interval=0,
            message="the message received while the database is down",
        )
        assert consumer.step() > 0  # still down: asked first, nothing received
        assert consumer.stats.received == 1
    finally:
        connection.close()
        connection.settings_dict["NAME"] = name
    consumed_again(consumer, sqs_queue)
    [started] = outage_logged_once(caplog, "database")
    assert "OperationalError" in started.getMessage() and "kept" in started.getMessage()
    assert ProcessHeartbeat.objects.filter(kind=heartbeats.POLLER).exists()
