"""Slow carriers, end to end: real ``qcluster``, ``poll_sqs`` and web (``runserver``, whose
``/carriers/…/callbacks/…`` is the receiver) subprocesses, moto's SQS and the simulators, which
complete requests after simulated minutes to hours and call back over loopback HTTP. Carrier
time is compressed with ``BULKCHANGE_CARRIER_TIME_SCALE`` on our side and the completion
delays on the simulators' side (docs/architecture.md §7)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bulkchanges.models import BulkChange, BulkChangeLog, CarrierCallback, DeviceChange
from bulkchanges.services.callback_registration import carrier_callback_register
from integrations.simulators.control import SimulatorControl
from tests.conftest import Processes, Queue, free_port, wait_for
from tests.fixtures.pipeline import OUTCOME, TealWorld, ThingSpaceWorld

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

CALLBACK = "Carrier callback received"


@dataclass
class Stack:
    processes: Processes
    base_url: str  # CARRIER_CALLBACK_BASE_URL: the web subprocess

    def start_workers(self) -> None:
        self.processes.start("qcluster")
        self.processes.start("poll_sqs")

    def wait_final(self, bulk_change: BulkChange, *, timeout: float = 120) -> None:
        def final() -> bool:
            bulk_change.refresh_from_db()
            return bulk_change.status in BulkChange.TERMINAL

        try:
            wait_for(final, timeout=timeout, interval=0.5, message=f"bulk change {bulk_change.pk}")
        except AssertionError:
            print(self.processes.logs())
            raise


def stack(processes: Processes, settings: Any, *, time_scale: float, **env: str) -> Stack:
    """The web receiver up, the settings of this process and of every subprocess in step."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    shared = {
        "CARRIER_CALLBACK_BASE_URL": base_url,
        "BULKCHANGE_CARRIER_TIME_SCALE": repr(time_scale),
        **env,
    }
    settings.CARRIER_CALLBACK_BASE_URL = base_url
    settings.BULKCHANGE_CARRIER_TIME_SCALE = time_scale
    processes.env.update(shared)  # every subprocess of the test: web, qcluster, poll_sqs
    processes.start("runserver", f"127.0.0.1:{port}", "--noreload")
    answered = wait_for(
        lambda: _answers(f"{base_url}/carriers/thingspace/callbacks/0/"),
        timeout=30,
        interval=0.2,
        message="the web receiver",
    )
    assert answered
    return Stack(processes, base_url)


def _answers(url: str) -> bool:
    import requests

    try:
        return requests.post(url, json={}, timeout=2).status_code == 404
    except requests.ConnectionError:
        return False


@pytest.fixture
def thingspace(simulator: SimulatorControl, device_statuses: None) -> Iterator[ThingSpaceWorld]:
    world = ThingSpaceWorld.arrange(simulator)
    yield world
    simulator.set_thingspace_completion_delay(0)


def preactive_with_imei(world: ThingSpaceWorld, count: int) -> list[Any]:
    devices = world.devices(count)
    world.simulator.seed_thingspace_devices(
        account_name=world.ACCOUNT,
        devices=[
            {"iccid": device.iccid, "state": "preactive", "imei": f"9900{n:011d}"}
            for n, device in enumerate(devices)
        ],
    )
    return devices


ACTIVATE = {"service_plan": "m2m4G", "mdn_zip_code": "30301"}


def test_an_activation_is_confirmed_by_its_callback_after_40_simulated_minutes(
    thingspace: ThingSpaceWorld, sqs_queue: Queue, processes: Processes, settings: Any
) -> None:
    # A simulated minute is 0.1 s: the request completes after 4 s, the waiting schedule's
    # next check is an hour (6 s) away, so it is the callback that wakes the device.
    running = stack(
        processes,
        settings,
        time_scale=1 / 600,
        BULKCHANGE_WAITING_SCHEDULE_MINUTES="60",
        BULKCHANGE_CONFIRM_SECONDS="0.2",
    )
    carrier_callback_register(credentials=thingspace.credentials)
    thingspace.simulator.set_thingspace_completion_delay(40 * 60 * 1000 // 600)
    [device] = preactive_with_imei(thingspace, 1)
    running.start_workers()
    bulk_change = thingspace.create([device], status="active", options=ACTIVATE)
    running.wait_final(bulk_change)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    change = DeviceChange.objects.get(bulk_change=bulk_change)
    assert change.status == DeviceChange.Status.PROCESSED
    assert change.attempts == 0 and change.carrier_waits >= 1
    callback = CarrierCallback.objects.get()
    assert (callback.device_change_id, callback.outcome) == (change.pk, "SUCCEEDED")
    assert callback.request_id == change.carrier_request_id
    assert thingspace.credentials.callback_password not in callback.body
    rows = list(
        BulkChangeLog.objects.filter(device_change=change)
        .order_by("processed_at", "id")
        .values_list("log_entry_description", flat=True)
    )
    # The callback decided: after it, CONFIRM made no status call before the outcome.
    after = rows[rows.index(CALLBACK) + 1 :]
    assert ThingSpaceWorld.CHECK not in after and after[-1] == OUTCOME
    assert thingspace.simulator.thingspace_device(device.iccid)["state"] == "active"
    assert len(thingspace.simulator.thingspace_device(device.iccid)["requests"]) == 1


def test_200_activations_completing_after_two_simulated_hours_end_processed_without_retries(
    thingspace: ThingSpaceWorld, sqs_queue: Queue, processes: Processes, settings: Any
) -> None:
    # Two hours in 3 s (the activation deadline, 12 hours, is 18 s away); callbacks and the
    # waiting schedule both wake the devices, whichever comes first.
    running = stack(processes, settings, time_scale=3 / 7200, BULKCHANGE_CONFIRM_SECONDS="0.3")
    carrier_callback_register(credentials=thingspace.credentials)
    thingspace.simulator.set_thingspace_completion_delay(3000)
    devices = preactive_with_imei(thingspace, 200)
    running.start_workers()
    bulk_change = thingspace.create(devices, status="active", options=ACTIVATE)
    running.wait_final(bulk_change, timeout=240)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    changes = DeviceChange.objects.filter(bulk_change=bulk_change)
    assert set(changes.values_list("status", flat=True)) == {DeviceChange.Status.PROCESSED}
    assert set(changes.values_list("attempts", flat=True)) == {0}  # zero retries consumed
    assert all(waits >= 1 for waits in changes.values_list("carrier_waits", flat=True))
    assert not BulkChangeLog.objects.filter(
        bulk_change=bulk_change, log_entry_description="Retry scheduled"
    ).exists()
    submits = [
        len(thingspace.simulator.thingspace_device(device.iccid)["requests"]) for device in devices
    ]
    assert set(submits) == {1}  # one activation per line: waiting never re-submits
    assert CarrierCallback.objects.filter(device_change__bulk_change=bulk_change).count() == 200


def test_teal_signals_reach_the_receiver_and_wake_the_waiting_devices(
    simulator: SimulatorControl,
    device_statuses: None,
    sqs_queue: Queue,
    processes: Processes,
    settings: Any,
) -> None:
    world = TealWorld.arrange(simulator)
    # Teal's 30-minute confirm deadline becomes 15 s: the signals (after 2 s) wake the devices
    # long before it, with room for a loaded machine.
    running = stack(
        processes,
        settings,
        time_scale=1 / 120,
        BULKCHANGE_WAITING_SCHEDULE_MINUTES="60",
        BULKCHANGE_CONFIRM_SECONDS="0.2",
    )
    simulator.configure_teal(completion_seconds=2, callbacks=True, callback_method="POST")
    devices = world.devices(3)
    world.seed(devices)
    running.start_workers()
    try:
        bulk_change = world.create(devices)
        running.wait_final(bulk_change)
    finally:
        simulator.configure_teal(completion_seconds=0)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    changes = DeviceChange.objects.filter(bulk_change=bulk_change)
    assert set(changes.values_list("attempts", flat=True)) == {0}
    signals = CarrierCallback.objects.filter(device_change__bulk_change=bulk_change)
    assert signals.count() == 3 and set(signals.values_list("outcome", flat=True)) == {"SIGNAL"}
    row = world.credentials
    assert all(row.callback_token not in signal.path for signal in signals)
    # Teal was told our receiver's URL, token and all, on every operation call.
    urls = {operation["callbackUrl"] for operation in simulator.teal_operations()}
    assert urls == {
        f"{running.base_url}/carriers/teal/callbacks/{row.pk}/?token={row.callback_token}"
    }
