"""The automation commands (docs/architecture.md §11): same validation as every other entry point,
secrets only on stdin, ids as the last token, a one-line reason and exit 1 on bad input."""

from __future__ import annotations

import subprocess
import sys
import threading
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from bulkchanges.models import (
    BulkChange,
    BulkChangeLog,
    Device,
    DeviceChange,
    IntegrationAuthentication,
    Tenant,
)
from bulkchanges.services.processing import device_change_claim
from tests.conftest import ROOT, PondWorld, Queue, create_bulk_change, database_url, iccids


def run(*args: str, stdin: str = "") -> str:
    out = StringIO()
    old = sys.stdin
    sys.stdin = StringIO(stdin)
    try:
        call_command(*args, stdout=out, stderr=StringIO())
    finally:
        sys.stdin = old
    return out.getvalue()


@pytest.mark.django_db
def test_set_integration_credentials_reads_secrets_from_stdin_and_updates_in_place() -> None:
    out = run(
        "set_integration_credentials",
        "--tenant",
        "Acme",
        "--create-tenant",
        "--integration",
        "pond",
        "--base-url",
        "http://127.0.0.1:9/pond",
        "--account",
        "1234",
        "--rate-limit",
        "25",
        stdin="the-key\n",
    )
    first_id = int(out.split()[-1])
    row = IntegrationAuthentication.objects.get(pk=first_id)
    assert (row.secret, row.rate_limit, row.integration) == ("the-key", 25, "POND")

    out = run(
        "set_integration_credentials",
        "--tenant",
        "Acme",
        "--integration",
        "POND",
        "--account",
        "1234",
        "--writes-disabled",
    )
    assert int(out.split()[-1]) == first_id
    row.refresh_from_db()
    assert row.secret == "the-key" and not row.writes_enabled  # no stdin: secret kept

    run(
        "set_integration_credentials",
        "--tenant",
        "Acme",
        "--integration",
        "THINGSPACE",
        "--base-url",
        "http://127.0.0.1:9/ts",
        "--account",
        "0000123456-00001",
        "--username",
        "uws",
        "--client-id",
        "oauth-key",
        stdin="client-secret\nuws-password\n",
    )
    thingspace = IntegrationAuthentication.objects.get(integration="THINGSPACE")
    assert (thingspace.secret, thingspace.secret_2) == ("client-secret", "uws-password")


@pytest.mark.django_db
def test_set_integration_credentials_refuses_an_unknown_tenant_and_a_new_row_without_secret() -> (
    None
):
    with pytest.raises(CommandError, match="tenant 'Nobody' does not exist"):
        run(
            "set_integration_credentials",
            "--tenant",
            "Nobody",
            "--integration",
            "POND",
            "--base-url",
            "http://127.0.0.1:9/",
            stdin="k\n",
        )
    Tenant.objects.create(name="Acme")
    with pytest.raises(CommandError, match="a secret on stdin"):
        run(
            "set_integration_credentials",
            "--tenant",
            "Acme",
            "--integration",
            "POND",
            "--base-url",
            "http://127.0.0.1:9/",
        )


def test_set_integration_credentials_as_a_process_exits_1_with_one_line() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "set_integration_credentials",
            "--tenant",
            "Nobody",
            "--integration",
            "POND",
        ],
        capture_output=True,
        text=True,
        input="",
        cwd=ROOT,
        check=False,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "sqlite:////nonexistent/x.sqlite3"},
    )
    assert result.returncode == 1


@pytest.mark.django_db
def test_import_devices_loads_inventory_with_a_status(
    tmp_path: Path, device_statuses: None
) -> None:
    Tenant.objects.create(name="Acme")
    devices = tmp_path / "devices.csv"
    numbers = iccids(3)
    devices.write_text(
        "iccid,msisdn\n" + "\n".join(f"{n},214555010{i}" for i, n in enumerate(numbers)) + "\nbad\n"
    )
    out = run(
        "import_devices",
        str(devices),
        "--tenant",
        "Acme",
        "--integration",
        "POND",
        "--status",
        "active",
    )
    assert "imported 3 new and 0 existing devices; skipped 1 malformed" in out
    assert Device.objects.filter(status__code="ACTIVE", msisdn__startswith="214").count() == 3
    with pytest.raises(
        CommandError, match="no POND status 'happy'; choose one of ACTIVE, SUSPENDED, TERMINATED"
    ):
        run(
            "import_devices",
            str(devices),
            "--tenant",
            "Acme",
            "--integration",
            "POND",
            "--status",
            "happy",
        )


@pytest.mark.django_db(transaction=True)
def test_create_bulk_change_validates_like_every_entry_point_and_is_idempotent(
    pond_world: PondWorld, sqs_queue: Queue, tmp_path: Path
) -> None:
    devices = tmp_path / "iccids.txt"
    devices.write_text("\n".join(iccids(3)) + "\n" + iccids(1)[0] + "\n")
    args = [
        "create_bulk_change",
        "--tenant",
        "Acme IoT",
        "--integration",
        "pond",
        "--status",
        "suspended",
        "--iccids-file",
        str(devices),
        "--request-id",
        "job-1",
        "--rev-customer-id",
        "42",
        "--rev-service-type-id",
        "7",
        "--rev-product-id",
        "55",
        "--rev-rate",
        "4.50",
    ]
    out = run(*args)
    bulk_change = BulkChange.objects.get(pk=int(out.split()[-1]))
    assert "queued 3 devices (1 duplicates" in out
    assert bulk_change.status == BulkChange.Status.QUEUED
    assert bulk_change.request["UpdateStatus"] == "SUSPENDED"
    assert bulk_change.request["RevService"]["RevCustomerId"] in (42, "42")
    assert sqs_queue.messages() == 1
    assert int(run(*args).split()[-1]) == bulk_change.pk  # the request id makes it a repeat
    assert BulkChange.objects.count() == 1

    with pytest.raises(CommandError, match="POND cannot set status 'HAPPY'; allowed: ACTIVE"):
        run(*[a if a != "suspended" else "HAPPY" for a in args[:9]])
    IntegrationAuthentication.objects.create(
        tenant=pond_world.tenant,
        integration="POND",
        base_url="http://127.0.0.1:9/",
        account="5678",
        secret="x",
    )
    with pytest.raises(CommandError, match="several active POND credentials; choose one of"):
        run(*args[:9])
    with pytest.raises(CommandError, match="No such file"):
        run(
            "create_bulk_change",
            "--tenant",
            "Acme IoT",
            "--integration",
            "POND",
            "--status",
            "ACTIVE",
            "--iccids-file",
            str(tmp_path / "missing"),
            "--credentials",
            str(pond_world.pond.pk),
        )


@pytest.mark.django_db(transaction=True)
def test_unsupported_change_types_and_integrations_are_refused_at_creation(
    pond_world: PondWorld,
) -> None:
    from bulkchanges.errors import ApplicationError
    from bulkchanges.services import status_update_request_validate

    with pytest.raises(ApplicationError, match="'Archival' is recognised but not processed"):
        status_update_request_validate(
            tenant=pond_world.tenant,
            integration="POND",
            update_status="ACTIVE",
            change_request_type="ARCHIVAL",
        )
    with pytest.raises(ApplicationError, match="cannot process status updates"):
        status_update_request_validate(
            tenant=pond_world.tenant, integration="REV", update_status="ACTIVE"
        )


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("postgresql" not in database_url(), reason="row locks need PostgreSQL")
def test_two_workers_claiming_the_same_devices_never_share_one(
    pond_world: PondWorld, sqs_queue: Queue
) -> None:
    bulk_change = create_bulk_change(pond_world, iccids(200), with_rev=False)
    ids = list(DeviceChange.objects.filter(bulk_change=bulk_change).values_list("pk", flat=True))
    won: list[list[int]] = [[], [], [], []]
    barrier = threading.Barrier(4)

    def claim(slot: int) -> None:
        try:
            barrier.wait()
            for start in range(0, len(ids), 20):
                won[slot] += device_change_claim(ids=ids[start : start + 20])
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [pk for slot in won for pk in slot]
    assert sorted(claimed) == sorted(ids)  # every device once, none twice


@pytest.mark.django_db(transaction=True)
def test_healthz_reports_database_queue_and_cluster(
    client: Any, sqs_queue: Queue, pond_world: PondWorld
) -> None:
    response = client.get("/healthz")
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["queue"] == "ok"
    assert body["checks"]["cluster"].startswith("error")  # no qcluster in this test
    assert response.status_code == 503


@pytest.mark.django_db(transaction=True)
def test_retry_refuses_unknown_devices_and_cancelled_bulk_changes(
    pond_world: PondWorld, sqs_queue: Queue
) -> None:
    bulk_change = create_bulk_change(pond_world, iccids(2), with_rev=False)
    with pytest.raises(CommandError, match=r"device changes \[999999\] are not part"):
        run("retry_bulk_change", str(bulk_change.pk), "--device", "999999")
    pending = DeviceChange.objects.filter(bulk_change=bulk_change).first()
    assert pending is not None
    with pytest.raises(CommandError, match="not eligible for retry"):
        run("retry_bulk_change", str(bulk_change.pk), "--device", str(pending.pk))
    out = run("retry_bulk_change", str(bulk_change.pk), "--include-stuck", "--dry-run")
    assert "would re-queue 0 devices" in out  # PENDING, but not stalled past the grace period
    run("reap_once")
    from bulkchanges.services import bulk_change_cancel

    bulk_change_cancel(bulk_change=bulk_change, actor="cli:test")
    with pytest.raises(CommandError, match="is cancelled; it cannot be retried"):
        run("retry_bulk_change", str(bulk_change.pk))
    # The cancel's row and, none in flight, its completion row: the refused retry wrote none.
    assert list(
        BulkChangeLog.objects.filter(bulk_change=bulk_change)
        .order_by("id")
        .values_list("log_entry_description", flat=True)
    ) == ["Bulk change cancelled", "Bulk change completed"]


@pytest.mark.django_db(transaction=True)
def test_redrive_dlq_moves_messages_back_with_their_attributes(sqs_queue: Queue) -> None:
    attributes = {"BulkChangeId": {"DataType": "String", "StringValue": "12"}}
    for _ in range(3):
        sqs_queue.client.send_message(
            QueueUrl=sqs_queue.dlq_url, MessageBody="Not used", MessageAttributes=attributes
        )
    assert "redrive: moved 3 messages" in run("redrive_dlq")
    assert sqs_queue.messages(sqs_queue.dlq_url) == 0
    moved = sqs_queue.receive_all()
    assert len(moved) == 3
    assert all(m["MessageAttributes"]["BulkChangeId"]["StringValue"] == "12" for m in moved)


@pytest.mark.django_db(transaction=True)
def test_changing_thingspace_credentials_lifts_the_login_lockout() -> None:
    from bulkchanges.tokens import token_store

    stdin = "client-secret\nuws-password\n"
    base = [
        "set_integration_credentials",
        "--tenant",
        "Acme",
        "--integration",
        "THINGSPACE",
        "--account",
        "0000123456-00001",
    ]
    row_id = int(
        run(
            *base,
            "--create-tenant",
            "--base-url",
            "http://127.0.0.1:9/ts",
            "--username",
            "uws",
            "--client-id",
            "key",
            stdin=stdin,
        ).split()[-1]
    )
    failures = f"thingspace:{row_id}:login_failures"
    token_store.set(failures, 2, ttl=3600)
    run(*base, "--rate-limit", "5")  # nothing that identifies the login changed
    assert token_store.get(failures) == 2
    run(*base, stdin="client-secret\nnew-uws-password\n")
    assert token_store.get(failures) is None


@pytest.mark.django_db(transaction=True)
def test_thingspace_daily_action_budget_is_checked_at_creation(device_statuses: None) -> None:
    from bulkchanges.errors import ApplicationError
    from bulkchanges.services import bulk_change_create, status_update_request_validate
    from bulkchanges.types import DeviceRef

    tenant = Tenant.objects.create(name="Acme")
    IntegrationAuthentication.objects.create(
        tenant=tenant,
        integration="THINGSPACE",
        base_url="http://127.0.0.1:9/ts",
        account="0000123456-00001",
        username="uws",
        client_id="key",
        secret="s",
        secret_2="p",
        daily_action_budget=2,
    )
    once, twice = iccids(2)

    def create(numbers: list[str]) -> None:
        validated = status_update_request_validate(
            tenant=tenant, integration="THINGSPACE", update_status="suspended"
        )
        bulk_change_create(
            tenant=tenant,
            created_by="test",
            validated=validated,
            devices=[DeviceRef(iccid=n) for n in numbers],
        )

    create([once, twice])
    create([twice])
    with pytest.raises(
        ApplicationError,
        match=f"1 devices would exceed the daily budget of 2 "
        f"provisioning actions per line: {twice}",
    ):
        create([once, twice])
    create([once])  # the other line still has room
