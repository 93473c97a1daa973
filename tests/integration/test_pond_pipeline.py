"""POND status updates through the whole pipeline against the simulator, on the contract's wire
format: every page of a SIM's package list read, TERMINATED packages left alone, the SIM never
purged, ``RequestId`` on every call, and POND's errors reaching the operator readably.
(The generic pipeline — retries, resumption, Rev.io, ordering — is test_processing.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from bulkchanges.models import BulkChange, Device, DeviceChange
from integrations.pond import SIM_SERVICE_FIELDS
from tests.conftest import PondWorld, Queue, approved, create_bulk_change, drain, iccids

pytestmark = pytest.mark.django_db(transaction=True)

DISTRIBUTOR = "1234"  # tests.conftest's distributor


def seed(world: PondWorld, iccid: str, packages: list[str], **sim: Any) -> None:
    world.simulator.seed_pond_sims(
        distributor_id=DISTRIBUTOR,
        sims=[{"iccid": iccid, **sim, "packages": [{"status": s} for s in packages]}],
    )


def package_statuses(world: PondWorld, iccid: str) -> list[str]:
    return [package["status"] for package in world.simulator.pond_sim(iccid)["packages"]]


def services(world: PondWorld, iccid: str) -> set[str]:
    sim = world.simulator.pond_sim(iccid)
    return {sim[name] for name in SIM_SERVICE_FIELDS}


def test_suspend_reads_every_page_and_leaves_terminated_packages_alone(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [iccid] = iccids(1)
    seed(pond_world, iccid, ["ACTIVE", "TERMINATED", "ACTIVE", "NOT_ACTIVE", "ACTIVE"])
    pond_world.simulator.set_pond_page_size(2)

    bulk_change = drain(create_bulk_change(pond_world, [iccid], with_rev=False))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    assert services(pond_world, iccid) == {"DISABLED"}
    assert package_statuses(pond_world, iccid) == [
        "NOT_ACTIVE",
        "TERMINATED",
        "NOT_ACTIVE",
        "NOT_ACTIVE",
        "NOT_ACTIVE",
    ]
    lists = pond_world.simulator.requests(carrier="pond", op="list_packages", key=iccid)
    assert [r["carrier_path"] for r in lists] == [
        f"/{DISTRIBUTOR}/sim/{iccid}/package/infos?offset={offset}&count=100"
        for offset in (0, 2, 4)
    ]
    writes = pond_world.simulator.requests(carrier="pond", op="set_package_status", key=iccid)
    assert [r["body"] for r in writes] == [{"package_status": "NOT_ACTIVE"}] * 3
    every_call = pond_world.simulator.requests(carrier="pond")
    assert all(r["request_id"] for r in every_call)  # RequestId on every call
    assert pond_world.simulator.call_count("pond", "purge_sim") == 0


def test_terminate_disables_services_and_terminates_live_packages_without_purging(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [iccid] = iccids(1)
    seed(pond_world, iccid, ["ACTIVE", "NOT_ACTIVE", "TERMINATED"])

    bulk_change = drain(
        approved(create_bulk_change(pond_world, [iccid], status="TERMINATED", with_rev=False))
    )

    assert bulk_change.status == BulkChange.Status.PROCESSED
    assert services(pond_world, iccid) == {"DISABLED"}
    assert package_statuses(pond_world, iccid) == ["TERMINATED"] * 3
    assert pond_world.simulator.call_count("pond", "set_package_status", iccid) == 2
    assert pond_world.simulator.call_count("pond", "purge_sim") == 0
    assert pond_world.simulator.pond_sim(iccid)["status_of_sim"] == "In-Service"
    assert Device.objects.filter(iccid=iccid, status__code="TERMINATED").exists()


def test_activating_a_sim_with_old_terminated_packages_skips_them(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [iccid] = iccids(1)
    seed(pond_world, iccid, ["TERMINATED", "NOT_ACTIVE"], services="DISABLED")

    bulk_change = drain(create_bulk_change(pond_world, [iccid], status="ACTIVE", with_rev=False))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    assert services(pond_world, iccid) == {"ENABLED"}
    assert package_statuses(pond_world, iccid) == ["TERMINATED", "ACTIVE"]
    assert pond_world.simulator.call_count("pond", "set_package_status", iccid) == 1


def test_a_terminated_sim_refuses_activation_permanently_with_ponds_reference_id(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [iccid] = iccids(1)
    seed(pond_world, iccid, [], services="DISABLED", status_of_sim="Terminated")

    bulk_change = drain(create_bulk_change(pond_world, [iccid], status="ACTIVE", with_rev=False))

    device_change = DeviceChange.objects.get(bulk_change=bulk_change)
    assert device_change.status == DeviceChange.Status.ERROR
    assert device_change.attempts == 0  # permanent: not retried
    assert device_change.last_error.startswith(
        f"HTTP 409 from POND: SIM {iccid} is terminated and cannot be enabled (reference "
    )
    assert pond_world.simulator.call_count("pond", "set_sim_status", iccid) == 1
    assert pond_world.simulator.call_count("pond", "list_packages", iccid) == 0


@pytest.mark.parametrize(
    ("sim", "packages", "target", "skipped"),
    [
        pytest.param(
            {"status_of_sim": "Terminated"}, ["NOT_ACTIVE"], "TERMINATED", True, id="sim-terminated"
        ),
        pytest.param(
            {"services": "DISABLED"},
            ["TERMINATED", "NOT_ACTIVE"],
            "SUSPENDED",
            True,
            id="suspended-with-history",
        ),
        pytest.param(
            {"status_of_sim": "Pre-Service", "services": "DISABLED"},
            ["NOT_ACTIVE"],
            "SUSPENDED",
            False,
            id="pre-service-unknown",
        ),
        pytest.param(
            {"services": "ENABLED"}, ["NOT_ACTIVE"], "SUSPENDED", False, id="mixed-unknown"
        ),
    ],
)
def test_the_current_status_read_decides_which_devices_are_skipped(
    pond_world: PondWorld,
    sqs_queue: Queue,
    inline_workers: None,
    sim: dict[str, str],
    packages: list[str],
    target: str,
    skipped: bool,
) -> None:
    [iccid] = iccids(1)
    seed(pond_world, iccid, packages, **sim)

    bulk_change = drain(
        approved(
            create_bulk_change(
                pond_world, [iccid], status=target, with_rev=False, ignore_current=False
            )
        )
    )

    device_change = DeviceChange.objects.get(bulk_change=bulk_change)
    assert (device_change.status == DeviceChange.Status.SKIPPED) is skipped
    assert pond_world.simulator.call_count("pond", "read_sim_status", iccid) == 1
    assert pond_world.simulator.call_count("pond", "set_sim_status", iccid) == (0 if skipped else 1)
