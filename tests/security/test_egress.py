"""Replays of issue 13's finding 1 (carrier secrets exfiltrated by editing ``base_url``) and of
the SSRF half of finding 6 (webhooks): each is refused with a clear message, and nothing
reaches the listener an attacker (or a rebinding DNS answer) pointed PondOps at."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from bulkchanges.models import (
    BulkChange,
    BulkChangeLog,
    CredentialsChange,
    DeviceChange,
    IntegrationAuthentication,
    OperatorMembership,
    Tenant,
    WebhookDelivery,
)
from bulkchanges.services import bulk_change_create, status_update_request_validate, webhooks
from bulkchanges.services.processing import bulk_change_complete_if_done
from bulkchanges.types import DeviceRef
from integrations.base import CallRecord, CarrierHttp, Credentials, PermanentError
from tests.admin.conftest import credentials_form_data
from tests.conftest import ROOT, Queue, database_url, drain, iccids

POND_HOST = "www.mydashboard.pondmobile.com"
POND_PATH = "/ds/u/distributorPPUService/v1"
POND_BASE_URL = f"https://{POND_HOST}{POND_PATH}"
POND_KEY = "pond-secret-key-7f3a9c"


# --- Listeners ---------------------------------------------------------------------------


@dataclass
class Listener:
    """A raw TCP listener on loopback that counts the connections it accepts and the bytes
    it receives: what an attacker's listener would have got."""

    port: int
    connections: int = 0
    received: bytearray = field(default_factory=bytearray)

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}/steal"


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    state = Listener(port=server.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            state.connections += 1
            with connection:
                connection.settimeout(1)
                try:
                    state.received.extend(connection.recv(65536))
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield state
    stop.set()
    thread.join(timeout=2)
    server.close()


@pytest.fixture
def redirector(listener: Listener) -> Iterator[str]:
    """A loopback HTTP server answering every request with a 302 to the listener."""

    class Handler(BaseHTTPRequestHandler):
        def _redirect(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(302)
            self.send_header("Location", listener.url)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _redirect

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def resolve_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS answers 127.0.0.1 for POND's own host name (a rebinding or poisoned answer)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host == POND_HOST else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


# --- Data ----------------------------------------------------------------------------------


@pytest.fixture
def pond_row(db: None) -> IntegrationAuthentication:
    tenant = Tenant.objects.create(name="Acme IoT")
    return IntegrationAuthentication.objects.create(
        tenant=tenant, integration="POND", base_url=POND_BASE_URL, account="1234", secret=POND_KEY
    )


def operator(tenant: Tenant, *codenames: str) -> Client:
    """A staff user of ``tenant`` who may change credentials but not read secrets (nobody
    can)."""
    user = User.objects.create_user(username="operator", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="bulkchanges", codename__in=codenames)
    )
    OperatorMembership.objects.create(user=user, tenant=tenant)
    client = Client()
    client.force_login(user)
    return client


# --- Finding 1: base_url is not free text --------------------------------------------------


def test_finding_1_the_admin_refuses_a_base_url_on_the_operators_own_listener(
    pond_row: IntegrationAuthentication,
) -> None:
    client = operator(
        pond_row.tenant, "change_integrationauthentication", "view_integrationauthentication"
    )
    url = reverse("admin:bulkchanges_integrationauthentication_change", args=[pond_row.pk])

    response = client.post(
        url,
        credentials_form_data(
            pond_row, base_url="https://listener.attacker.example/steal", secret="typed-again"
        ),
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert (
        "POND base_url must be https and one of its known origins: "
        "https://www.mydashboard.pondmobile.com, https://ws.telna.com "
        f"(each followed by {POND_PATH})"
    ) in page
    pond_row.refresh_from_db()
    assert (pond_row.base_url, pond_row.secret) == (POND_BASE_URL, POND_KEY)
    assert not CredentialsChange.objects.exists()


def test_finding_1_the_admin_refuses_a_base_url_change_that_does_not_re_enter_the_secret(
    pond_row: IntegrationAuthentication,
) -> None:
    client = operator(
        pond_row.tenant, "change_integrationauthentication", "view_integrationauthentication"
    )
    url = reverse("admin:bulkchanges_integrationauthentication_change", args=[pond_row.pk])
    telna = f"https://ws.telna.com{POND_PATH}"

    refused = client.post(url, credentials_form_data(pond_row, base_url=telna))

    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert errors["secret"] == [
        "Changing base_url requires re-entering secret: it is sent to the new host."
    ]
    pond_row.refresh_from_db()
    assert pond_row.base_url == POND_BASE_URL

    accepted = client.post(url, credentials_form_data(pond_row, base_url=telna, secret="new-key"))

    assert accepted.status_code == 302
    pond_row.refresh_from_db()
    assert (pond_row.base_url, pond_row.secret) == (telna, "new-key")
    change = CredentialsChange.objects.get()
    assert (change.actor, change.via, change.secret_reentered) == ("operator", "admin", True)
    assert change.changes == {"base_url": {"old": POND_BASE_URL, "new": telna}}
    page = client.get(url).content.decode()
    assert f"base_url: {POND_BASE_URL} → {telna}; secret re-entered" in page
    assert "new-key" not in page and POND_KEY not in str(change.changes)


@pytest.mark.django_db(transaction=True)
def test_finding_1_the_command_refuses_the_cloud_metadata_address() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "set_integration_credentials",
            "--tenant",
            "Acme",
            "--create-tenant",
            "--integration",
            "THINGSPACE",
            "--base-url",
            "http://169.254.169.254/latest/meta-data/",
        ],
        capture_output=True,
        text=True,
        input="client-secret\nuws-password\n",
        cwd=ROOT,
        check=False,
        env={**os.environ, "DATABASE_URL": database_url()},
    )

    assert result.returncode != 0
    assert (
        "ThingSpace base_url must be https and one of its known origins: "
        "https://thingspace.verizon.com"
    ) in result.stderr
    assert not IntegrationAuthentication.objects.exists()


def test_finding_1_the_command_refuses_a_base_url_change_without_the_secrets(
    pond_row: IntegrationAuthentication, monkeypatch: pytest.MonkeyPatch
) -> None:
    from io import StringIO

    monkeypatch.setattr(sys, "stdin", StringIO(""))
    telna = f"https://ws.telna.com{POND_PATH}"
    arguments = ["--tenant", "Acme IoT", "--integration", "POND", "--account", "1234"]

    with pytest.raises(CommandError) as refused:
        call_command("set_integration_credentials", *arguments, "--base-url", telna)

    assert str(refused.value) == (
        "changing the POND base_url requires re-entering secret (on stdin, one a line) "
        "(secret: Changing base_url requires re-entering secret: it is sent to the new host.)"
    )
    pond_row.refresh_from_db()
    assert pond_row.base_url == POND_BASE_URL

    call_command("set_integration_credentials", *arguments, "--writes-disabled")
    change = CredentialsChange.objects.get()
    assert change.via == "command" and change.actor.endswith("(shell)")
    assert change.changes == {"writes_enabled": {"old": True, "new": False}}
    assert not change.secret_reentered


def test_finding_1_a_known_host_resolving_to_loopback_is_refused_before_any_byte_is_sent(
    listener: Listener, resolve_to_loopback: None, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[CallRecord] = []
    http = CarrierHttp(
        carrier="POND",
        credentials=Credentials(
            integration_authentication_id=1,
            integration="POND",
            base_url=f"https://{POND_HOST}:{listener.port}{POND_PATH}",
            account="1234",
            secret=POND_KEY,
        ),
        auth_failure="POND rejected the API key",
        on_call=calls.append,
    )

    with pytest.raises(PermanentError) as refused:
        http.request("GET", "1234/sim/89148000000000000001/status", description="Read SIM")

    assert str(refused.value) == (
        f"POND not called: refused to connect to {POND_HOST}: it resolves to a loopback "
        "address (127.0.0.1)"
    )
    assert listener.connections == 0 and listener.received == b""
    [call] = calls
    assert call.response_status is None and "refused to connect" in call.response_text
    assert "POND call refused" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_finding_1_a_bulk_change_against_a_rebound_host_fails_audited_and_sends_nothing(
    completed: Complete,
    listener: Listener,
    resolve_to_loopback: None,
) -> None:
    tenant = Tenant.objects.create(name="Acme IoT")
    IntegrationAuthentication.objects.create(
        tenant=tenant,
        integration="POND",
        base_url=f"https://{POND_HOST}:{listener.port}{POND_PATH}",
        account="1234",
        secret=POND_KEY,
        rate_limit=0,
    )
    validated = status_update_request_validate(
        tenant=tenant, integration="POND", update_status="SUSPENDED", is_ignore_current_status=True
    )
    bulk_change, _ = bulk_change_create(
        tenant=tenant, created_by="test", validated=validated, devices=[DeviceRef(iccids(1)[0])]
    )

    drain(bulk_change)

    device_change = DeviceChange.objects.get(bulk_change=bulk_change)
    assert device_change.status == "ERROR"
    assert "refused to connect to www.mydashboard.pondmobile.com" in device_change.last_error
    logged = BulkChangeLog.objects.filter(bulk_change=bulk_change, response_status=None)
    assert any("refused to connect" in row.response_text for row in logged)
    assert listener.connections == 0


def test_finding_1_a_carriers_redirect_is_not_followed(listener: Listener, redirector: str) -> None:
    http = CarrierHttp(
        carrier="POND",
        credentials=Credentials(
            integration_authentication_id=1,
            integration="POND",
            base_url=redirector,
            secret=POND_KEY,
        ),
        auth_failure="POND rejected the API key",
    )

    with pytest.raises(PermanentError) as refused:
        http.request("GET", "1234/sim/1/status", description="Read SIM")

    assert str(refused.value) == "HTTP 302 from POND: a redirect to localhost, not followed"
    assert listener.connections == 0


# --- Finding 6 (SSRF part): webhooks --------------------------------------------------------


Complete = Callable[[str], BulkChange]


@pytest.fixture
def completed(sqs_queue: Queue, inline_workers: None, device_statuses: None) -> Complete:
    """Completes a bulk change whose devices are done, through the real service, with the
    given callback URL (its webhook is sent inline)."""

    def complete(callback_url: str) -> BulkChange:
        tenant = Tenant.objects.create(name="Webhook Co")
        IntegrationAuthentication.objects.create(
            tenant=tenant, integration="POND", base_url=POND_BASE_URL, account="9", secret="k"
        )
        validated = status_update_request_validate(
            tenant=tenant, integration="POND", update_status="SUSPENDED"
        )
        bulk_change, _ = bulk_change_create(
            tenant=tenant,
            created_by="test",
            validated=validated,
            devices=[DeviceRef(iccids(1)[0])],
        )
        BulkChange.objects.filter(pk=bulk_change.pk).update(callback_url=callback_url)
        DeviceChange.objects.filter(bulk_change=bulk_change).update(
            status="PROCESSED", is_processed=True
        )
        assert bulk_change_complete_if_done(bulk_change_id=bulk_change.pk, process_by="test")
        return bulk_change

    return complete


@pytest.mark.django_db(transaction=True)
def test_finding_6_debug_no_longer_turns_the_webhook_ssrf_guard_off(
    completed: Complete, listener: Listener, settings: Any
) -> None:
    from bulkchanges.errors import ApplicationError

    settings.DEBUG = True
    settings.PONDOPS_WEBHOOK_EXTRA_ORIGINS = []
    target = f"http://127.0.0.1:{listener.port}/hook"

    with pytest.raises(ApplicationError) as refused:
        webhooks.callback_url_validate(target)
    assert str(refused.value) == "callback_url must use https (callback_url: must use https)"
    completed(target)  # stored before the rule, or by a path that skipped it

    delivery = WebhookDelivery.objects.get()
    assert delivery.error_text == (
        "gave up after 1 attempt: refused: refused to connect to 127.0.0.1: a loopback "
        "address (127.0.0.1)"
    )
    assert listener.connections == 0


@pytest.mark.django_db(transaction=True)
def test_finding_6_a_webhook_host_resolving_inside_is_refused_at_connect_time(
    completed: Complete,
    listener: Listener,
    resolve_to_loopback: None,
) -> None:
    # A name that passed the save-time check, whose DNS answer later points inside.
    completed(f"https://{POND_HOST}:{listener.port}/hook")

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "FAILED" and not WebhookDelivery.objects.filter(attempt=2).exists()
    assert delivery.error_text == (
        f"gave up after 1 attempt: refused: refused to connect to {POND_HOST}: it resolves "
        "to a loopback address (127.0.0.1)"
    )
    assert listener.connections == 0


@pytest.mark.django_db(transaction=True)
def test_finding_6_a_webhook_redirect_is_not_followed(
    completed: Complete,
    listener: Listener,
    redirector: str,
) -> None:
    completed(f"{redirector}/hook")

    delivery = WebhookDelivery.objects.get()
    assert delivery.error_text == (
        "gave up after 1 attempt: HTTP 302 from the callback URL: a redirect to localhost, "
        "not followed"
    )
    assert listener.connections == 0


@pytest.mark.django_db(transaction=True)
def test_finding_6_a_webhook_dns_failure_is_retried(
    completed: Complete,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "hooks.partner.example":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    completed("https://hooks.partner.example/hook")

    first = WebhookDelivery.objects.get(attempt=1)
    assert first.status == "FAILED" and "Failed to resolve domain" in first.error_text
    assert not first.error_text.startswith("gave up")
    assert WebhookDelivery.objects.get(attempt=2).status == "SCHEDULED"
