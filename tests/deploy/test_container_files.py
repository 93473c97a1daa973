"""The container's entrypoint picks the process by its first argument, and compose.yaml wires
the stack as docs/operations/containers.md says: one image, migrate and the queues before the
processes, every setting from deploy/compose.env. (deploy/container/smoke runs the image.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "container" / "entrypoint"
APP_PROCESSES = {"web", "qcluster", "poll_sqs", "run_reaper"}
ENTRYPOINT_COMMANDS = APP_PROCESSES | {"migrate", "manage", "simulators", "sqs", "healthcheck"}


def entrypoint(*args: str, tmpdir: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """The entrypoint with this checkout's venv first on PATH, as the image's venv is."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "TMPDIR": str(tmpdir), **extra_env}
    env.setdefault("DJANGO_SETTINGS_MODULE", "pondops.settings")
    return subprocess.run(
        [str(ENTRYPOINT), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "compose.yaml").read_text()))


def test_manage_runs_a_management_command(tmp_path: Path) -> None:
    result = entrypoint("manage", "check", tmpdir=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize("args", [("no-such-process",), ("manage",)])
def test_an_unknown_or_incomplete_command_is_refused_with_the_list(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    result = entrypoint(*args, tmpdir=tmp_path)

    assert result.returncode == 2
    assert "web " in result.stderr and "manage ARGS" in result.stderr


def test_the_healthcheck_probes_livez_only_in_the_web_container(tmp_path: Path) -> None:
    assert entrypoint("healthcheck", tmpdir=tmp_path).returncode == 0  # not the web: passes

    (tmp_path / "pondops-process").write_text("web\n")
    # Nothing listens on the discard port.
    result = entrypoint("healthcheck", tmpdir=tmp_path, PONDOPS_WEB_BIND="127.0.0.1:9")

    assert result.returncode == 1
    assert "/livez" in result.stderr


def test_compose_runs_every_app_process_from_the_one_image_with_the_env_file() -> None:
    services = compose()["services"]
    for name, service in services.items():
        if "command" in service and "image" in service and "pondops" in service["image"]:
            assert service["command"][0] in ENTRYPOINT_COMMANDS, name

    assert {services[name]["command"][0] for name in APP_PROCESSES} == APP_PROCESSES
    for name in [*APP_PROCESSES, "migrate", "queues", "demo-seed"]:
        service = services[name]
        assert service["build"]["target"] == "runtime", name
        assert service["env_file"] == [{"path": "deploy/compose.env", "required": True}], name
        assert service["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/run/pondops-metrics"
        assert service["read_only"] is True


def test_compose_starts_the_processes_after_migrate_and_the_queues_succeed() -> None:
    services = compose()["services"]

    for name in APP_PROCESSES:
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert depends["queues"] == {"condition": "service_completed_successfully"}
        assert depends["redis"] == {"condition": "service_healthy"}
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert services["migrate"]["restart"] == "no"
    for name in ("postgres", "redis", "sqs", "simulators"):
        assert services[name]["healthcheck"]["test"], name
    assert services["simulators"]["profiles"] == services["demo-seed"]["profiles"] == ["demo"]
    assert services["demo-seed"]["depends_on"]["simulators"] == {"condition": "service_healthy"}


def test_the_env_example_sets_what_production_requires_and_no_secret_value() -> None:
    lines = (ROOT / "deploy" / "compose.env.example").read_text().splitlines()
    values = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))

    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "PONDOPS_SQS_QUEUE_URL",
        "PONDOPS_SQS_DLQ_URL",
        "PONDOPS_ENVIRONMENT",
        "DJANGO_ALLOWED_HOSTS",
    ):
        assert values[name], name
    assert values["DJANGO_SECRET_KEY"] == values["PONDOPS_FERNET_KEYS"] == ""


def test_the_build_context_leaves_out_local_state_and_the_env_file() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()

    for entry in (".git", ".venv", "var", "deploy/compose.env"):
        assert entry in ignored
