"""Fixtures for the partner API: two tenants with credentials, partner clients with real
(hashed) API keys, a recorder in place of SQS sends, and a loopback webhook receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from bulkchanges import sqs
from bulkchanges.models import (
    BulkChange,
    DeviceChange,
    IntegrationAuthentication,
    PartnerApiKey,
    PartnerProfile,
    Tenant,
)
from bulkchanges.services.partners import partner_api_key_issue
from tests.conftest import PondWorld, create_bulk_change, iccids

API = "/api/v1"


def key_client(key: str | None, **defaults: Any) -> APIClient:
    """An API client sending ``Authorization: Api-Key <key>`` (and ``defaults``, e.g.
    REMOTE_ADDR) with every request."""
    client = APIClient(**defaults)
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def partner_key(
    username: str,
    tenant: Tenant,
    *,
    role: str = PartnerApiKey.Role.SUBMIT,
    staff: bool = False,
    superuser: bool = False,
    expiry_date: datetime | None = None,
) -> str:
    """A new partner user of ``tenant`` and an API key for it, issued by the service."""
    user = get_user_model().objects.create_user(
        username=username, is_staff=staff or superuser, is_superuser=superuser
    )
    PartnerProfile.objects.create(user=user, tenant=tenant)
    api_key = PartnerApiKey(user=user, tenant=tenant, role=role, expiry_date=expiry_date)
    return partner_api_key_issue(api_key=api_key, created_by="tests")


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """SQS sends recorded instead of made (tests that process use the real queue instead)."""
    messages: list[Any] = []

    def record(message: Any, *, delay_seconds: int = 0) -> str:
        messages.append(message)
        return "recorded"

    monkeypatch.setattr(sqs, "send", record)
    return messages


@dataclass
class Partner:
    world: PondWorld
    client: APIClient
    key: str

    @property
    def tenant(self) -> Tenant:
        return self.world.tenant


def partner_of(world: PondWorld) -> Partner:
    """The world's tenant's partner, with a submit key."""
    key = partner_key("acme-api", world.tenant)
    return Partner(world, key_client(key), key)


@pytest.fixture
def partner(pond_world: PondWorld) -> Partner:
    return partner_of(pond_world)


@dataclass
class Other:
    tenant: Tenant
    credentials: IntegrationAuthentication
    client: APIClient
    bulk_change: BulkChange


def other_tenant(pond_world: PondWorld) -> Other:
    """A second tenant, with its own POND credentials, partner key and bulk change."""
    tenant = Tenant.objects.create(name="Globex")
    credentials = IntegrationAuthentication.objects.create(
        tenant=tenant,
        integration="POND",
        base_url=pond_world.pond.base_url,
        account="9999",
        secret="globex-pond-key",
    )
    world = PondWorld(tenant, credentials, pond_world.rev, pond_world.simulator)
    bulk_change = create_bulk_change(world, iccids(3, start=5000), with_rev=False)
    return Other(tenant, credentials, key_client(partner_key("globex-api", tenant)), bulk_change)


@pytest.fixture
def other(pond_world: PondWorld, sent: list[Any]) -> Other:
    return other_tenant(pond_world)


def device_rows(numbers: list[str]) -> list[dict[str, str]]:
    return [{"iccid": number} for number in numbers]


def create_body(numbers: list[str], **overrides: Any) -> dict[str, Any]:
    return {
        "integration": "POND",
        "target_status": "Suspended",
        "devices": device_rows(numbers),
    } | (overrides)


def fail_devices(
    bulk_change: BulkChange, count: int, *, error: str = "carrier said no"
) -> list[int]:
    """Mark the first ``count`` devices ERROR and the rest PROCESSED, as a worker would."""
    ids = list(
        DeviceChange.objects.filter(bulk_change=bulk_change)
        .order_by("id")
        .values_list("pk", flat=True)
    )
    DeviceChange.objects.filter(pk__in=ids[:count]).update(
        status=DeviceChange.Status.ERROR, is_processed=True, last_error=error, attempts=2
    )
    DeviceChange.objects.filter(pk__in=ids[count:]).update(
        status=DeviceChange.Status.PROCESSED, is_processed=True
    )
    BulkChange.objects.filter(pk=bulk_change.pk).update(
        status=BulkChange.Status.PROCESSED_WITH_ERRORS
    )
    return ids[:count]


# --- A loopback webhook receiver ------------------------------------------------------------


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # scripted; 200 once exhausted

    def wait(
        self, count: int, *, timeout: float = 20, poll: Callable[[], object] | None = None
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver got {len(self.requests)} of {count} requests")
            if poll is not None:
                poll()
            time.sleep(0.05)
        return self.requests


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A tiny HTTP server on a free loopback port that records every POST."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.requests.append(Received(time.monotonic(), dict(self.headers.items()), body))
            status = state.statuses.pop(0) if state.statuses else 200
            payload = b'{"ok": true}' if status < 300 else b"receiver is down"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/pondops?token=abc123"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The schemathesis figures (operations, cases, failures) after a run that fuzzed."""
    import sys

    module = sys.modules.get("tests.api.test_schema")
    figures = getattr(module, "FIGURES", None)
    if not figures or not figures["cases"]:
        return
    terminalreporter.write_sep("-", "schemathesis")
    terminalreporter.write_line(
        f"{len(figures['operations'])} operations, {sum(figures['cases'].values())} cases, "
        f"{sum(figures['failures'].values())} failures"
    )
    for operation in sorted(figures["operations"]):
        terminalreporter.write_line(
            f"  {operation}: {figures['cases'][operation]} cases, "
            f"{figures['failures'][operation]} failures"
        )
