"""Shared fixtures: a real SQS endpoint (moto's server, a subprocess on a free loopback port),
per-test queues with a DLQ, the carrier simulators over real HTTP, demo-like data, and the
real ``qcluster`` / ``poll_sqs`` processes for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection

from bulkchanges import sqs
from bulkchanges.consumer import SqsConsumer
from bulkchanges.models import (
    BulkChange,
    BulkChangeLog,
    DeviceChange,
    IntegrationAuthentication,
    Tenant,
)
from bulkchanges.services import bulk_change_create, status_update_request_validate
from bulkchanges.types import DeviceRef
from integrations.rev_request import RevProduct, RevServiceRequest
from integrations.simulators.control import SimulatorControl
from tests.fixtures.redisdb import redis_database_flush

# The simulators, SQS and webhook receivers run on random loopback ports: the tests allow them
# as extra egress origins, as the demo does (production allows none). The settings were read
# before this module is imported, so they are set both here and in the environment that
# subprocesses (qcluster, poll_sqs, the web server) inherit.
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
for _name in ("PONDOPS_CARRIER_EXTRA_ORIGINS", "PONDOPS_WEBHOOK_EXTRA_ORIGINS"):
    os.environ[_name] = ",".join(LOOPBACK_ORIGINS)
    setattr(django_settings, _name, list(LOOPBACK_ORIGINS))

pytest_plugins = [
    "tests.fixtures.simulators",
    "tests.fixtures.scripted_carrier",
    "tests.fixtures.callback_listener",
    "tests.fixtures.logs",
    "tests.fixtures.tls_proxy",
]

ROOT = Path(__file__).resolve().parent.parent
POND_KEY = "pond-secret-key-7f3a9c"
REV_PASSWORD = "rev-secret-pw-51b2e8"
REV_SUBSCRIPTION_KEY = "rev-apim-key-0c7d41e9"
DISTRIBUTOR = "1234"
REV_CLIENT = "ACME"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float = 60,
    interval: float = 0.2,
    message: str = "condition",
) -> Any:
    """Poll ``predicate`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


# --- SQS -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    """moto's SQS server as a real HTTP endpoint on a free loopback port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(url + "/moto-api/", timeout=1).status_code < 500
        except requests.RequestException:
            return False

    try:
        wait_for(up, timeout=30, message="moto server")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Queue:
    url: str
    dlq_url: str
    client: Any

    def messages(self, url: str | None = None) -> int:
        attributes = self.client.get_queue_attributes(
            QueueUrl=url or self.url, AttributeNames=["All"]
        )["Attributes"]
        return sum(
            int(attributes[name])
            for name in (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            )
        )

    def receive_all(self, url: str | None = None, wait: int = 0) -> list[dict[str, Any]]:
        response = self.client.receive_message(
            QueueUrl=url or self.url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        )
        return list(response.get("Messages", []))


@pytest.fixture
def sqs_queue(sqs_endpoint: str, settings: Any) -> Iterator[Queue]:
    """A fresh queue + DLQ (maxReceiveCount 2, visibility 2 s) wired into settings."""
    settings.AWS_ENDPOINT_URL_SQS = sqs_endpoint
    settings.BULKCHANGE_SQS_WAIT_SECONDS = 1
    settings.BULKCHANGE_MALFORMED_VISIBILITY_SECONDS = 0
    sqs.sqs_client.cache_clear()
    name = f"test-{uuid.uuid4().hex[:10]}"
    out = _call(
        "create_queues", "--name", name, "--visibility-timeout", "2", "--max-receive-count", "2"
    )
    urls = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    settings.PONDOPS_SQS_QUEUE_URL = urls["PONDOPS_SQS_QUEUE_URL"]
    settings.PONDOPS_SQS_DLQ_URL = urls["PONDOPS_SQS_DLQ_URL"]
    client = boto3.client(
        "sqs",
        endpoint_url=sqs_endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    yield Queue(urls["PONDOPS_SQS_QUEUE_URL"], urls["PONDOPS_SQS_DLQ_URL"], client)
    sqs.sqs_client.cache_clear()


def dead_letter_malformed(queue: Queue) -> None:
    """Send a message the consumer refuses ("BulkChangeId is not a number: 'abc'") and poll
    until the redrive policy (2 receives in tests) has moved it to the dead-letter queue."""
    queue.client.send_message(
        QueueUrl=queue.url,
        MessageBody="Not used",
        MessageAttributes={"BulkChangeId": {"DataType": "String", "StringValue": "abc"}},
    )
    consumer = SqsConsumer(wait_seconds=1)
    wait_for(
        lambda: consumer.poll_once() is not None and queue.messages(queue.dlq_url),
        timeout=30,
        interval=0,
        message="the message in the DLQ",
    )


def _call(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# --- Processing in one process -------------------------------------------------------------


@pytest.fixture
def inline_workers(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """django-q2 in sync mode: every hand-off runs inline; retries wait about 1 s."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)
    settings.BULKCHANGE_RETRY_BASE_SECONDS = 1
    settings.BULKCHANGE_CHUNK_SIZE = 10


def approved(bulk_change: BulkChange) -> BulkChange:
    """A destructive target (or a bulk change above its tenant's threshold) waits for a second
    person (four-eyes): approve it, as someone else, so it runs."""
    from bulkchanges.services.approvals import bulk_change_approve

    if bulk_change.status != BulkChange.Status.AWAITING_APPROVAL:
        return bulk_change
    return bulk_change_approve(bulk_change=bulk_change, actor="admin:approver")


def drain(bulk_change: BulkChange, *, timeout: float = 30) -> BulkChange:
    """Poll the queue (the consumer hands off inline) until the bulk change is final."""
    consumer = SqsConsumer(wait_seconds=1)

    def final() -> bool:
        consumer.poll_once()
        bulk_change.refresh_from_db()
        return bulk_change.status in BulkChange.TERMINAL

    wait_for(final, timeout=timeout, interval=0, message=f"bulk change {bulk_change.pk} final")
    return bulk_change


def descriptions(bulk_change: BulkChange, device_change: DeviceChange | None = None) -> list[str]:
    rows = BulkChangeLog.objects.filter(bulk_change=bulk_change).order_by("processed_at", "id")
    if device_change is not None:
        rows = rows.filter(device_change=device_change)
    return list(rows.values_list("log_entry_description", flat=True))


# --- Data ------------------------------------------------------------------------------------


def iccids(count: int, *, start: int = 0) -> list[str]:
    return [f"8914800000{start + n:010d}" for n in range(count)]


@dataclass
class PondWorld:
    tenant: Tenant
    pond: IntegrationAuthentication
    rev: IntegrationAuthentication
    simulator: SimulatorControl


@pytest.fixture
def device_statuses(db: None) -> None:
    """The statuses the data migration seeds (transactional tests flush them after each test)."""
    import importlib

    from django.apps import apps

    importlib.import_module("bulkchanges.migrations.0002_seed_device_statuses").seed(apps, None)


@pytest.fixture
def pond_world(simulator: SimulatorControl, device_statuses: None) -> PondWorld:
    """A tenant with POND and Rev.io credentials pointing at the simulators."""
    tenant = Tenant.objects.create(name="Acme IoT")
    simulator.add_pond_account(distributor_id=DISTRIBUTOR, api_key=POND_KEY, rate_limit=0)
    simulator.add_rev_account(
        client_code=REV_CLIENT,
        username="ops",
        password=REV_PASSWORD,
        subscription_key=REV_SUBSCRIPTION_KEY,
        calls_per_minute=0,
    )
    simulator.add_rev_customers(client_code=REV_CLIENT, customer_ids=[42])
    pond = IntegrationAuthentication.objects.create(
        tenant=tenant,
        integration="POND",
        base_url=simulator.pond_base_url,
        account=DISTRIBUTOR,
        secret=POND_KEY,
        rate_limit=0,
        max_concurrency=4,
    )
    rev = IntegrationAuthentication.objects.create(
        tenant=tenant,
        integration="REV",
        base_url=simulator.rev_base_url,
        account=REV_CLIENT,
        username="ops",
        secret=REV_PASSWORD,
        secret_2=REV_SUBSCRIPTION_KEY,
        rate_limit=0,
        max_concurrency=4,
    )
    return PondWorld(tenant, pond, rev, simulator)


def seed_sims(world: PondWorld, numbers: list[str], services: str = "ENABLED") -> None:
    """POND SIMs In-Service with all three services ``services``, each with one package in
    the matching state."""
    world.simulator.seed_pond_sims(
        distributor_id=DISTRIBUTOR,
        sims=[{"iccid": iccid, "services": services} for iccid in numbers],
    )


def create_bulk_change(
    world: PondWorld,
    numbers: list[str],
    *,
    status: str = "SUSPENDED",
    with_rev: bool = True,
    ignore_current: bool = True,
    idempotency_key: str | None = None,
) -> BulkChange:
    """A bulk change created through the same services every entry point uses."""
    rev = RevServiceRequest(
        customer_id=42,
        service_type_id=7,
        integration_authentication_id=world.rev.pk,
        products=(RevProduct(product_id=55, rate=Decimal("4.50")),),
    )
    validated = status_update_request_validate(
        tenant=world.tenant,
        integration="POND",
        update_status=status,
        is_ignore_current_status=ignore_current,
        rev_service=rev if with_rev else None,
    )
    bulk_change, _ = bulk_change_create(
        tenant=world.tenant,
        created_by="test",
        validated=validated,
        devices=[DeviceRef(iccid=iccid) for iccid in numbers],
        idempotency_key=idempotency_key,
    )
    return bulk_change


# --- Subprocesses ----------------------------------------------------------------------------


def database_url() -> str:
    """The test database as a URL for subprocesses (they cannot see pytest's settings)."""
    conf = connection.settings_dict
    if conf["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{conf['NAME']}"
    user = conf.get("USER") or "root"
    host = conf.get("HOST") or "127.0.0.1"
    port = conf.get("PORT") or 5432
    return f"postgresql://{user}@{host}:{port}/{conf['NAME']}"


class Processes:
    """Starts ``manage.py`` subprocesses against the test database and stops them all."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.running: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(
        self, *args: str, start_new_session: bool = False, **env: str
    ) -> subprocess.Popen[bytes]:
        """Start ``manage.py *args``; ``start_new_session`` lets a test kill its process group
        (qcluster and its worker processes) at once."""
        return self.start_command(
            args[0], [str(ROOT / "manage.py"), *args], start_new_session=start_new_session, **env
        )

    def start_command(
        self, name: str, argv: list[str], *, start_new_session: bool = False, **env: str
    ) -> subprocess.Popen[bytes]:
        """Start ``python *argv`` (a module with ``-m``, say gunicorn) as :meth:`start` does."""
        log = self.log_dir / f"{name}-{len(self.running)}.log"
        process = subprocess.Popen(
            [sys.executable, *argv],
            env={**self.env, **env},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=start_new_session,
        )
        self.running.append((process, log))
        return process

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-6000:]}" for _, log in self.running
        )

    def stop_all(self) -> None:
        for process, _ in self.running:
            if process.poll() is None:
                process.terminate()
        for process, _ in self.running:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def processes(
    sqs_queue: Queue, sqs_endpoint: str, settings: Any, tmp_path: Path
) -> Iterator[Processes]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pondops.settings",
        "DATABASE_URL": database_url(),
        "PONDOPS_SQS_QUEUE_URL": sqs_queue.url,
        "PONDOPS_SQS_DLQ_URL": sqs_queue.dlq_url,
        "AWS_ENDPOINT_URL_SQS": sqs_endpoint,
        "BULKCHANGE_SQS_WAIT_SECONDS": "1",
        "BULKCHANGE_MALFORMED_VISIBILITY_SECONDS": "0",
        "BULKCHANGE_RETRY_BASE_SECONDS": str(settings.BULKCHANGE_RETRY_BASE_SECONDS),
        "BULKCHANGE_MAX_RETRIES": str(settings.BULKCHANGE_MAX_RETRIES),
        "BULKCHANGE_LEASE_SECONDS": str(settings.BULKCHANGE_LEASE_SECONDS),
        "BULKCHANGE_CHUNK_SIZE": str(settings.BULKCHANGE_CHUNK_SIZE),
        "PONDOPS_Q_POLL_SECONDS": "0.3",
        "PONDOPS_LOG_LEVEL": "INFO",
    }
    # With REDIS_URL set for the test run (CI's Redis pass), the processes use that Redis for
    # django-q2's broker, the limiters and the cache, as production does; its database
    # (a number of its own, never 0) is emptied first. Unset: the database does all three.
    if settings.REDIS_URL:
        redis_database_flush(settings.REDIS_URL)
        env["REDIS_URL"] = settings.REDIS_URL
    else:
        env.pop("REDIS_URL", None)
    running = Processes(env, tmp_path)
    yield running
    running.stop_all()
