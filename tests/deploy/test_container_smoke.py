"""The container image built and run for real: ``deploy/container/smoke`` builds it with podman
and runs migrate, the web, qcluster, poll_sqs and run_reaper against this machine's
PostgreSQL, Redis, moto's SQS server and the carrier simulators, through one bulk change.

Minutes of work (an image build), so it runs only with ``PONDOPS_CONTAINER_TESTS=1``:
``PONDOPS_CONTAINER_TESTS=1 ./dev test tests/deploy/test_container_smoke.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "deploy" / "container" / "smoke"

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("PONDOPS_CONTAINER_TESTS") != "1",
        reason="builds and runs the container image (minutes): set PONDOPS_CONTAINER_TESTS=1",
    ),
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
]


@pytest.mark.timeout(3600)
def test_the_image_builds_migrates_serves_and_processes_a_bulk_change() -> None:
    result = subprocess.run(
        [sys.executable, str(SMOKE)], capture_output=True, text=True, timeout=3500
    )
    print(result.stdout[-6000:])

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[-1] == "smoke: OK"
    assert any(line.startswith("smoke: figure: image size: ") for line in lines)
    assert any(" -> 200" in line and "/livez" in line for line in lines)
    assert any(": PROCESSED; devices PROCESSED|20" in line for line in lines)
