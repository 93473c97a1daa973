"""Rev.io through the real pipeline (POND bulk changes with a Rev service per device): a real SQS
endpoint (moto server), real HTTP to the simulators, the real database and consumer, django-q2
in sync mode. What Rev.io's contract makes us do that a single page would not show: read every
page of a look-up before creating, and find the service a lost create answer made."""

from __future__ import annotations

from typing import Any

import pytest

from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from tests.conftest import (
    REV_CLIENT,
    REV_PASSWORD,
    REV_SUBSCRIPTION_KEY,
    PondWorld,
    Queue,
    create_bulk_change,
    descriptions,
    drain,
    iccids,
    seed_sims,
    wait_for,
)
from tests.fixtures.pipeline import assert_no_secret_recorded, run_until_retry_scheduled

pytestmark = pytest.mark.django_db(transaction=True)

FIND = "Find Rev.io service"
CREATE = "Create Rev.io service"
FIND_PRODUCTS = "Find Rev.io service products"
CREATE_PRODUCT = "Create Rev.io service product"
POND_ROWS = ["Update POND SIM status", "List POND SIM packages", "Update POND package status"]


def rev_account(world: PondWorld, **limits: Any) -> None:
    """The world's Rev.io client again (its customers kept), with API management's limits."""
    world.simulator.add_rev_account(
        client_code=REV_CLIENT,
        username=world.rev.username,
        password=REV_PASSWORD,
        subscription_key=REV_SUBSCRIPTION_KEY,
        calls_per_minute=0,
        **limits,
    )


def services_for(world: PondWorld, number: str) -> list[dict[str, Any]]:
    return [s for s in world.simulator.rev_services() if s["number"] == number]


def test_an_existing_service_on_page_3_of_the_customers_30_is_stored_not_created_again(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [iccid] = iccids(1)
    seed_sims(pond_world, [iccid])
    simulator = pond_world.simulator
    others = [{"customer_id": 42, "number": f"21455509{n:02d}"} for n in range(25)]
    seeded = simulator.seed_rev_services(
        client_code=REV_CLIENT,
        services=[*others, {"customer_id": 42, "number": iccid}, *others[:4]],
    )
    ours = seeded[25]  # the 26th of 30: page 3 of ten
    # Rev's search matches loosely (every service of the customer comes back), ten a page.
    simulator.configure_rev(number_search="ignored", max_page_size=10)

    bulk_change = drain(create_bulk_change(pond_world, [iccid]))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    change = DeviceChange.objects.get(bulk_change=bulk_change)
    assert change.status == DeviceChange.Status.PROCESSED
    assert change.rev_service_id == ours
    assert [s["service_id"] for s in services_for(pond_world, iccid)] == [ours]
    assert len(simulator.rev_services()) == 30  # nothing created
    assert simulator.call_count("rev", "create_service") == 0
    assert simulator.call_count("rev", "find_services") == 3
    assert descriptions(bulk_change, change) == [
        *POND_ROWS,
        FIND,
        FIND,
        FIND,
        FIND_PRODUCTS,
        CREATE_PRODUCT,
        "Device status change result",
    ]
    pages = BulkChangeLog.objects.filter(device_change=change, log_entry_description=FIND).order_by(
        "processed_at", "id"
    )
    assert [row.request_text.splitlines()[0] for row in pages] == [
        f"GET /rev/v1/Services?search.number={iccid}&search.customer_id=42&page_size=100{page}"
        for page in ("", "&page=2", "&page=3")
    ]
    [existing] = services_for(pond_world, iccid)
    assert [p["product_id"] for p in existing["products"]] == [55]
    assert_no_secret_recorded(bulk_change, REV_PASSWORD, REV_SUBSCRIPTION_KEY)


def test_a_lost_create_answer_is_found_by_the_retry_and_no_second_service_is_made(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None, settings: Any
) -> None:
    [iccid] = iccids(1)
    seed_sims(pond_world, [iccid])
    simulator = pond_world.simulator
    settings.BULKCHANGE_HTTP_READ_TIMEOUT = 0.3
    # Rev.io creates the service, but only after our client stopped waiting for the answer.
    simulator.add_fault("rev", "create_service", kind="timeout", delay_ms=900)
    bulk_change = create_bulk_change(pond_world, [iccid])

    waiting = run_until_retry_scheduled(bulk_change)
    assert (
        waiting.last_error
        == "carrier updated, Rev service not created yet: Rev.io timed out: ReadTimeout"
    )
    assert waiting.rev_service_id is None
    wait_for(lambda: services_for(pond_world, iccid), timeout=10, message="the late create")
    bulk_change = drain(bulk_change)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    change = DeviceChange.objects.get(bulk_change=bulk_change)
    [created] = services_for(pond_world, iccid)
    assert change.rev_service_id == created["service_id"]
    assert change.attempts == 1
    assert simulator.call_count("rev", "create_service") == 1
    assert simulator.call_count("pond", "set_sim_status", iccid) == 1  # the carrier once
    assert [p["product_id"] for p in created["products"]] == [55]
    assert descriptions(bulk_change, change) == [
        *POND_ROWS,
        FIND,
        CREATE,
        "Retry scheduled",
        FIND,
        FIND_PRODUCTS,
        CREATE_PRODUCT,
        "Device status change result",
    ]


def test_a_used_up_quota_schedules_a_retry_then_the_service_is_created_once(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [iccid] = iccids(1)
    seed_sims(pond_world, [iccid])
    # One call a period: the look-up passes, the create finds the quota used up.
    rev_account(pond_world, quota_calls=1, quota_period_seconds=1)
    bulk_change = create_bulk_change(pond_world, [iccid])

    waiting = run_until_retry_scheduled(bulk_change)

    assert waiting.last_error == (
        "carrier updated, Rev service not created yet: HTTP 403 from Rev.io: Out of call volume "
        "quota. Quota will be replenished in 00:00:01."
    )
    rev_account(pond_world)
    bulk_change = drain(bulk_change)
    assert bulk_change.status == BulkChange.Status.PROCESSED
    assert len(services_for(pond_world, iccid)) == 1
