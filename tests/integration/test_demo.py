"""The local demo: ``demo_seed`` can run on every start, and ``manage.py run_demo`` brings the
whole system up, processes its demo bulk change and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model

from bulkchanges.models import Device, DeviceStatus, IntegrationAuthentication, Tenant
from bulkchanges.services.demo import demo_seed
from integrations.pond import PondClient
from integrations.simulators import SimulatorServer
from integrations.simulators.control import SimulatorControl, SimulatorControlError
from tests.conftest import ROOT, free_port, wait_for


def _counts() -> dict[str, int]:
    return {
        "users": get_user_model().objects.count(),
        "tenants": Tenant.objects.count(),
        "credentials": IntegrationAuthentication.objects.count(),
        "devices": Device.objects.count(),
    }


@pytest.mark.django_db(transaction=True)
def test_demo_seed_twice_keeps_the_rows_and_seeds_the_empty_simulator_again(
    simulator: SimulatorControl, simulator_server: SimulatorServer, device_statuses: None
) -> None:
    first = demo_seed(
        simulator=simulator, simulator_url=simulator_server.url, admin_password="first-pass"
    )
    counts = _counts()
    pond = first.credentials["POND"]
    iccids = [device.iccid for device in first.devices["POND"]]
    assert counts == {"users": 1, "tenants": 1, "credentials": 2, "devices": 50}
    assert simulator.pond_sim(iccids[0])["sim_status"] == "Active"

    simulator.reset()  # the simulators start empty on every run; the database persists
    with pytest.raises(SimulatorControlError):
        simulator.pond_sim(iccids[0])
    Device.objects.filter(iccid__in=iccids[:5]).update(
        status=DeviceStatus.objects.get(integration="POND", code="SUSPENDED")
    )
    second = demo_seed(
        simulator=simulator, simulator_url=simulator_server.url, admin_password="second-pass"
    )

    assert _counts() == counts
    assert second.devices == first.devices
    assert second.credentials["POND"].pk == pond.pk
    assert second.credentials["POND"].secret == pond.secret  # the generated key is kept
    assert second.credentials["POND"].base_url == simulator.pond_base_url
    assert second.credentials["POND"].rate_limit == 50
    assert second.credentials["REV"].account == "DEMO"
    assert second.credentials["REV"].username == "pondops"
    assert {sim["iccid"] for sim in map(simulator.pond_sim, iccids)} == set(iccids)
    assert all(len(simulator.pond_sim(iccid)["packages"]) == 1 for iccid in iccids[:3])
    inventory = Device.objects.filter(tenant__name="Demo IoT", integration="POND")
    assert set(inventory.values_list("status__code", flat=True)) == {"ACTIVE"}
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password("second-pass")
    # The key in our database is the one the simulator now accepts.
    client = PondClient(credentials=second.credentials["POND"].as_credentials())
    assert client.read_sim(iccid=iccids[0])["sim_status"] == "Active"


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


@pytest.mark.e2e
def test_run_demo_comes_up_processes_the_demo_bulk_change_and_stops_on_sigint(
    run_demo: tuple[subprocess.Popen[str], _Output, dict[str, int]], tmp_path: Path
) -> None:
    process, output, ports = run_demo

    def running(pattern: str) -> re.Match[str] | None:
        if process.poll() is not None:
            raise AssertionError(f"run_demo exited with {process.returncode}:\n{output.text}")
        return output.search(pattern)

    admin_url = f"http://127.0.0.1:{ports['web']}/admin/"
    try:
        wait_for(
            lambda: running(rf"Admin:\s+{re.escape(admin_url)}$"),
            timeout=120,
            message="the admin URL",
        )
        final = wait_for(
            lambda: running(r"demo bulk change \d+ finished: (\w+)"),
            timeout=120,
            message="the demo bulk change's final status",
        )
    except AssertionError:
        print(output.text)
        raise
    assert final.group(1) == "PROCESSED", output.text
    assert "20 processed, 0 skipped, 0 error" in output.text
    assert re.search(r"Login:\s+admin / pondops-demo$", output.text, re.MULTILINE)
    assert re.search(
        r"Bulk change:\s+http://127\.0\.0\.1:\d+/admin/bulkchanges/bulkchange/\d+/", output.text
    )
    assert requests.get(admin_url + "login/", timeout=10).status_code == 200
    for name in ("sqs", "simulators", "web", "qcluster", "poll_sqs"):
        assert (tmp_path / "var" / "logs" / f"{name}.log").stat().st_size > 0, name

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0, output.text
    output.join()
    assert output.text.rstrip().endswith("stopped"), output.text
    children = [int(pid) for pid in re.findall(r" pid (\d+) ", output.text)]
    assert len(children) == 5
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    marker = f"PONDOPS_VAR_DIR={tmp_path / 'var'}".encode()
    assert wait_for(lambda: not _processes_with(marker), timeout=10, message="children gone")
