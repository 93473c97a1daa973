"""``manage.py demo_seed``: the demo's data for compose's demo profile, where the simulators run
in a container of their own — the same rows as ``run_demo`` seeds, then one demo bulk change
per carrier, and refusals before any write."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from bulkchanges.models import BulkChange, DeviceChange, IntegrationAuthentication, Tenant
from integrations.simulators import SimulatorServer
from integrations.simulators.control import SimulatorControl

CARRIERS = {"POND", "THINGSPACE", "JASPER", "TELEGENCE", "TEAL"}


def test_demo_seed_writes_the_demo_data_seeds_the_simulators_and_queues_a_bulk_change_each(
    simulator: SimulatorControl, simulator_server: SimulatorServer, device_statuses: None
) -> None:
    out = StringIO()

    call_command(
        "demo_seed",
        "--simulator-url",
        simulator_server.url,
        "--admin-password",
        "compose-demo-pass",
        stdout=out,
    )

    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("compose-demo-pass")
    rows = IntegrationAuthentication.objects.all()
    assert {row.integration for row in rows} == CARRIERS | {"REV"}
    assert all(row.base_url.startswith(simulator_server.url) for row in rows)
    bulk_changes = BulkChange.objects.order_by("pk")
    assert {bulk_change.integration for bulk_change in bulk_changes} == CARRIERS
    for bulk_change in bulk_changes:
        assert DeviceChange.objects.filter(bulk_change=bulk_change).count() == 20
    pond = rows.get(integration="POND")
    iccid = DeviceChange.objects.filter(bulk_change__integration="POND").first()
    assert iccid is not None
    assert simulator.pond_sim(iccid.iccid)  # the simulator knows the seeded SIM
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("demo data: tenant 'Demo IoT', user 'admin', 6 credentials rows")
    assert lines[1:] == [f"demo bulk change {b.pk} {b.integration}" for b in bulk_changes]
    assert pond.secret not in out.getvalue()


def test_demo_seed_without_bulk_changes_seeds_only(
    simulator: SimulatorControl, simulator_server: SimulatorServer, device_statuses: None
) -> None:
    call_command(
        "demo_seed",
        "--simulator-url",
        simulator_server.url,
        "--no-demo-bulk-change",
        stdout=StringIO(),
    )

    assert Tenant.objects.filter(name="Demo IoT").exists()
    assert not BulkChange.objects.exists()


@pytest.mark.django_db
def test_demo_seed_refuses_simulators_the_workers_may_not_reach(settings: Any) -> None:
    settings.PONDOPS_CARRIER_EXTRA_ORIGINS = ["http://127.0.0.1:*"]

    with pytest.raises(CommandError, match="PONDOPS_CARRIER_EXTRA_ORIGINS=http://simulators:8766"):
        call_command("demo_seed", "--simulator-url", "http://simulators:8766", stdout=StringIO())

    assert not Tenant.objects.exists()


@pytest.mark.django_db
def test_demo_seed_refuses_outside_the_local_environment(settings: Any) -> None:
    settings.ENVIRONMENT_NAME = "production"

    with pytest.raises(CommandError, match="PONDOPS_ENVIRONMENT=local"):
        call_command("demo_seed", "--simulator-url", "http://127.0.0.1:8765", stdout=StringIO())

    assert not Tenant.objects.exists()
