"""The local demo: ``demo_seed`` can run on every start for all five carriers, and
``manage.py run_demo`` brings the whole system up, processes one demo bulk change per carrier
and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.contrib.auth import get_user_model
from django.db.models import Count

from bulkchanges.models import Device, DeviceStatus, IntegrationAuthentication, Tenant
from bulkchanges.services.demo import DEMO_CARRIERS, DemoData, demo_seed
from bulkchanges.types import DeviceRef
from integrations.base import Credentials
from integrations.jasper import JasperClient
from integrations.pond import PondClient
from integrations.rev import RevClient
from integrations.simulators import SimulatorServer
from integrations.simulators.control import SimulatorControl, SimulatorControlError
from integrations.teal import TealClient
from integrations.telegence import TelegenceClient
from integrations.thingspace import ThingSpaceClient
from tests.conftest import ROOT, free_port, wait_for

CARRIERS = ("POND", "THINGSPACE", "JASPER", "TELEGENCE", "TEAL")
# Each carrier's seeded status: in our inventory, and as its simulator shows it.
INVENTORY_STATUS = {
    "POND": "ACTIVE",
    "THINGSPACE": "active",
    "JASPER": "ACTIVATED",
    "TELEGENCE": "Active",
    "TEAL": "online",
}
SUSPENDED = {
    "POND": "SUSPENDED",
    "THINGSPACE": "suspended",
    "JASPER": "DEACTIVATED",
    "TELEGENCE": "Suspended",
    "TEAL": "stopped",
}
# POND's SIM services as our status (every demo SIM has its three services alike).
POND_SERVICES = {"ENABLED": "ACTIVE", "DISABLED": "SUSPENDED"}


def _simulator_status(simulator: SimulatorControl, integration: str, device: DeviceRef) -> str:
    """The device's status as the carrier's simulator holds it (SimulatorControlError when the
    simulator does not know it)."""
    if integration == "POND":
        return POND_SERVICES[simulator.pond_sim(device.iccid)["sim_data_service_status"]]
    if integration == "THINGSPACE":
        return str(simulator.thingspace_device(device.iccid)["state"])
    if integration == "JASPER":
        return str(simulator.jasper_device(device.iccid)["status"])
    if integration == "TELEGENCE":
        return str(simulator.telegence_subscriber(device.msisdn)["status"])
    return str(simulator.teal_esim(device.eid)["status"])


def carrier_status(credentials: Credentials, integration: str, device: DeviceRef) -> str:
    """The device's status read through our own client with the stored credentials: proves the
    secrets in our database are the ones the simulator accepts (Teal needs
    CARRIER_CALLBACK_BASE_URL set for its asynchronous read)."""
    if integration == "POND":
        return POND_SERVICES[PondClient(credentials=credentials).read_sim(iccid=device.iccid).data]
    if integration == "THINGSPACE":
        found = ThingSpaceClient(credentials=credentials).read_device(iccid=device.iccid)
        return found.state if found is not None else ""
    if integration == "JASPER":
        return str(JasperClient(credentials=credentials).get_device(iccid=device.iccid)["status"])
    if integration == "TELEGENCE":
        return str(TelegenceClient(credentials=credentials).read_line(msisdn=device.msisdn).target)
    teal = TealClient(credentials=credentials)
    request_id = uuid.uuid4().hex  # Teal's read is asynchronous: queue it, wait for its result
    teal.request_info(eid=device.eid, request_id=request_id, callback_url=credentials.callback_url)
    result = wait_for(
        lambda: (answer := teal.operation_result(request_id=request_id)).done and answer,
        timeout=10,
        interval=0.2,
        message="Teal's read",
    )
    return str(result.entries[0].fields["deviceStatus"])


def _base_url(simulator: SimulatorControl, integration: str) -> str:
    urls: dict[str, Callable[[], str]] = {
        "POND": lambda: simulator.pond_base_url,
        "THINGSPACE": lambda: simulator.thingspace_base_url,
        "JASPER": lambda: simulator.jasper_base_url,
        "TELEGENCE": lambda: simulator.telegence_base_url,
        "TEAL": lambda: simulator.teal_base_url,
        "REV": lambda: simulator.rev_base_url,
    }
    return urls[integration]()


def _counts() -> dict[str, Any]:
    def per_integration(model: Any) -> dict[str, int]:
        rows = model.objects.order_by().values_list("integration").annotate(n=Count("id"))
        return dict(rows)

    return {
        "users": get_user_model().objects.count(),
        "tenants": Tenant.objects.count(),
        "credentials": per_integration(IntegrationAuthentication),
        "devices": per_integration(Device),
    }


def _secrets(data: DemoData) -> dict[str, tuple[str, str]]:
    return {name: (row.secret, row.secret_2) for name, row in data.credentials.items()}


def test_the_demo_carriers_are_all_five_with_distinct_readable_identifiers() -> None:
    assert tuple(carrier.integration.value for carrier in DEMO_CARRIERS) == CARRIERS
    devices = {carrier.integration.value: carrier.devices(3) for carrier in DEMO_CARRIERS}
    iccids = [device.iccid for refs in devices.values() for device in refs]
    assert len(set(iccids)) == len(iccids)
    assert all(len(iccid) == 20 and iccid.isdigit() for iccid in iccids)
    assert len({iccid[:7] for iccid in iccids}) == 5  # one prefix a carrier
    assert [len(device.msisdn) for device in devices["TELEGENCE"]] == [10] * 3
    assert [len(device.eid) for device in devices["TEAL"]] == [32] * 3
    others = [
        d for name, refs in devices.items() if name not in ("TELEGENCE", "TEAL") for d in refs
    ]
    assert all(not device.msisdn and not device.eid for device in others)


@pytest.mark.django_db(transaction=True)
def test_demo_seed_twice_keeps_the_rows_and_seeds_the_empty_simulator_again(
    simulator: SimulatorControl,
    simulator_server: SimulatorServer,
    device_statuses: None,
    settings: Any,
) -> None:
    settings.CARRIER_CALLBACK_BASE_URL = "http://127.0.0.1:8000"  # as the launcher sets it
    first = demo_seed(
        simulator=simulator, simulator_url=simulator_server.url, admin_password="first-pass"
    )
    counts = _counts()
    assert counts == {
        "users": 1,
        "tenants": 1,
        "credentials": {**dict.fromkeys(CARRIERS, 1), "REV": 1},
        "devices": dict.fromkeys(CARRIERS, 50),
    }
    assert set(first.devices) == set(CARRIERS)
    for integration in CARRIERS:
        device = first.devices[integration][0]
        assert _simulator_status(simulator, integration, device) == INVENTORY_STATUS[integration]
    secrets = _secrets(first)
    assert all(secret for secret, _ in secrets.values())
    assert secrets["THINGSPACE"][1] and secrets["THINGSPACE"][1] != secrets["THINGSPACE"][0]
    # Rev.io's second secret is its API-management subscription key.
    assert secrets["REV"][1] and secrets["REV"][1] != secrets["REV"][0]
    two_secrets = ("THINGSPACE", "REV")
    assert all(not second for name, (_, second) in secrets.items() if name not in two_secrets)

    simulator.reset()  # the simulators start empty on every run; the database persists
    for integration in CARRIERS:
        with pytest.raises(SimulatorControlError):
            _simulator_status(simulator, integration, first.devices[integration][0])
    for integration in CARRIERS:  # the demo bulk changes moved some devices on
        Device.objects.filter(
            integration=integration,
            iccid__in=[device.iccid for device in first.devices[integration][:5]],
        ).update(
            status=DeviceStatus.objects.get(integration=integration, code=SUSPENDED[integration])
        )
    second = demo_seed(
        simulator=simulator, simulator_url=simulator_server.url, admin_password="second-pass"
    )

    assert _counts() == counts
    assert second.devices == first.devices
    assert _secrets(second) == secrets  # the generated secrets are kept
    for name, row in second.credentials.items():
        assert row.pk == first.credentials[name].pk
        assert row.base_url == _base_url(simulator, name)
        assert row.rate_limit == (8 if name == "REV" else 50)  # Rev.io: 500 calls a minute
        assert row.is_active and row.writes_enabled
    assert second.credentials["REV"].account == "DEMO"
    assert second.credentials["REV"].username == "pondops"
    assert second.credentials["THINGSPACE"].client_id
    assert second.credentials["THINGSPACE"].username
    for integration in ("JASPER", "TELEGENCE", "TEAL"):
        assert second.credentials[integration].username, integration
    # No stored callback URL (Teal's would carry its token in clear): the launcher gives the
    # processes CARRIER_CALLBACK_BASE_URL instead.
    assert all(not row.own_callback_url for row in second.credentials.values())
    for integration in CARRIERS:
        seeded = second.devices[integration]
        expected = INVENTORY_STATUS[integration]
        assert {_simulator_status(simulator, integration, d) for d in seeded} == {expected}
        inventory = Device.objects.filter(tenant__name="Demo IoT", integration=integration)
        assert set(inventory.values_list("status__code", flat=True)) == {expected}
        assert sorted(inventory.values_list("iccid", "msisdn", "eid")) == sorted(
            (d.iccid, d.msisdn, d.eid) for d in seeded
        )
        # The secrets in our database are the ones the simulator now accepts.
        credentials = second.credentials[integration].as_credentials()
        assert carrier_status(credentials, integration, seeded[0]).upper() == expected.upper()
    # Rev.io accepts the stored password and subscription key (a look-up finds nothing yet).
    rev = RevClient(credentials=second.credentials["REV"].as_credentials())
    assert rev.find_service(number=second.devices["POND"][0].iccid, customer_id=42) is None
    pond = [simulator.pond_sim(d.iccid) for d in second.devices["POND"][:3]]
    assert all(len(sim["packages"]) == 1 for sim in pond)
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password("second-pass")


class _Output:
    """Collects a subprocess's output lines in a thread, so the test can wait on them."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        stream = process.stdout
        self._thread = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join(timeout=10)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def search(self, pattern: str) -> re.Match[str] | None:
        return re.search(pattern, self.text, re.MULTILINE)


def _processes_with(marker: bytes) -> list[int]:
    """Live processes whose environment holds ``marker`` (children and their workers); Linux
    only, an empty list where there is no /proc."""
    found: list[int] = []
    if not Path("/proc").is_dir():
        return found
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:
            continue  # gone, or not ours to read
        if marker in environment.split(b"\0"):
            found.append(int(entry.name))
    return found


@pytest.fixture
def run_demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], _Output, dict[str, int]]]:
    var_dir = tmp_path / "var"
    ports = {"web": free_port(), "sqs": free_port(), "simulators": free_port()}
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "PONDOPS_VAR_DIR": str(var_dir),
        "PONDOPS_Q_POLL_SECONDS": "0.3",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "run_demo",
            "--web-port",
            str(ports["web"]),
            "--sqs-port",
            str(ports["sqs"]),
            "--simulator-port",
            str(ports["simulators"]),
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = _Output(process)
    try:
        yield process, output, ports
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        marker = f"PONDOPS_VAR_DIR={var_dir}".encode()
        for pid in _processes_with(marker):  # never leave a stray child behind a failed test
            os.kill(pid, signal.SIGKILL)


FINISHED = (
    r"^demo bulk change (?P<id>\d+) (?P<carrier>\w+)\s+finished: (?P<status>\w+) "
    r"\((?P<counts>[^)]*)\) in [\d.]+ s$"
)


@pytest.mark.e2e
def test_run_demo_comes_up_processes_a_demo_bulk_change_per_carrier_and_stops_on_sigint(
    run_demo: tuple[subprocess.Popen[str], _Output, dict[str, int]], tmp_path: Path
) -> None:
    process, output, ports = run_demo

    def running(pattern: str) -> re.Match[str] | None:
        if process.poll() is not None:
            raise AssertionError(f"run_demo exited with {process.returncode}:\n{output.text}")
        return output.search(pattern)

    def finished() -> list[re.Match[str]]:
        if process.poll() is not None:
            raise AssertionError(f"run_demo exited with {process.returncode}:\n{output.text}")
        return list(re.finditer(FINISHED, output.text, re.MULTILINE))

    admin_url = f"http://127.0.0.1:{ports['web']}/admin/"
    try:
        wait_for(
            lambda: running(rf"Admin:\s+{re.escape(admin_url)}$"),
            timeout=120,
            message="the admin URL",
        )
        wait_for(
            lambda: len(finished()) == len(CARRIERS),
            timeout=180,
            message="the five demo bulk changes' final statuses",
        )
    except AssertionError:
        print(output.text)
        raise
    text = output.text
    final = {match["carrier"]: match for match in finished()}
    assert set(final) == set(CARRIERS), text
    for match in final.values():
        assert match["status"] == "PROCESSED", text
        assert match["counts"] == "20 processed, 0 skipped, 0 error, 0 cancelled", text
    assert re.search(r"Login:\s+admin / pondops-demo$", text, re.MULTILINE)
    announced = dict(
        re.findall(
            r"^ {4}(\w+)\s+http://127\.0\.0\.1:\d+/admin/bulkchanges/bulkchange/(\d+)/\S* "
            r"\(20 devices -> ",
            text,
            re.MULTILINE,
        )
    )
    assert set(announced) == set(CARRIERS), text
    assert {carrier: match["id"] for carrier, match in final.items()} == announced
    assert "(20 devices -> SUSPENDED, each with a Rev.io service)" in text
    for target in ("suspended", "DEACTIVATED", "Suspended", "disabled"):
        assert f"(20 devices -> {target})" in text, target
    assert requests.get(admin_url + "login/", timeout=10).status_code == 200
    for name in ("sqs", "simulators", "web", "qcluster", "poll_sqs", "run_reaper"):
        assert (tmp_path / "var" / "logs" / f"{name}.log").stat().st_size > 0, name

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0, output.text
    output.join()
    assert output.text.rstrip().endswith("stopped"), output.text
    children = [int(pid) for pid in re.findall(r" pid (\d+) ", output.text)]
    assert len(children) == 6
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    marker = f"PONDOPS_VAR_DIR={tmp_path / 'var'}".encode()
    assert wait_for(lambda: not _processes_with(marker), timeout=10, message="children gone")
