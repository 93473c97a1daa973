"""The systemd units in deploy/systemd/ pass ``systemd-analyze verify`` and say what the
deployment promises: one dedicated user, the environment file, the whole control group killed,
restarts, hardening, and one metrics directory shared by the host's processes.

``systemd-analyze`` runs offline against a scratch root holding the units, the distribution's
own units (the targets ours order against) and stand-ins for the venv's executables: it checks
the unit files, not an installation. Nothing boots systemd.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[2]
UNITS_DIR = ROOT / "deploy" / "systemd"
PROCESS_UNITS = {
    "pondops-web.service": "gunicorn -c python:pondops.gunicorn_conf pondops.wsgi",
    "pondops-qcluster.service": "django-admin qcluster",
    "pondops-poll-sqs.service": "django-admin poll_sqs",
    "pondops-run-reaper.service": "django-admin run_reaper",
}
VENV_BIN = "/opt/pondops/venv/bin"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
# systemd-analyze security's scale: 0 (locked down) to 10 (exposed); below 2 it says "OK".
MAX_EXPOSURE = 2.0

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None or not SYSTEM_UNITS.is_dir(),
    reason="systemd-analyze (Debian's systemd package) is not installed",
)


def unit_settings(path: Path) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit file, by key, in order (keys repeat: ExecStart, ...)."""
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def unit_files() -> list[Path]:
    return [*sorted(UNITS_DIR.glob("pondops*.service")), UNITS_DIR / "pondops.target"]


@pytest.fixture
def unit_root(tmp_path: Path) -> Path:
    """A scratch root for systemd-analyze: our units in /etc/systemd/system, the system's units
    beside them, and executable stand-ins where the units expect the venv's commands."""
    shutil.copytree(SYSTEM_UNITS, tmp_path / SYSTEM_UNITS.relative_to("/"), symlinks=True)
    units = tmp_path / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    for unit in unit_files():
        shutil.copy(unit, units / unit.name)
    bin_dir = tmp_path / VENV_BIN.lstrip("/")
    bin_dir.mkdir(parents=True)
    for name in ("django-admin", "gunicorn"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    return tmp_path


def analyze_verify(root: Path, names: list[str]) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    units = [str(root / "etc" / "systemd" / "system" / name) for name in names]
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", f"--root={root}", *units],
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_systemd_analyze
def test_every_unit_passes_systemd_analyze_verify_without_a_warning(unit_root: Path) -> None:
    result = analyze_verify(unit_root, [unit.name for unit in unit_files()])

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@needs_systemd_analyze
def test_verify_as_run_here_reports_a_bad_setting(unit_root: Path) -> None:
    """systemd-analyze exits 0 on a setting it ignores; the check above also needs silence."""
    web = unit_root / "etc" / "systemd" / "system" / "pondops-web.service"
    web.write_text(web.read_text().replace("KillMode=control-group", "KillMode=only-main"))

    result = analyze_verify(unit_root, [web.name])

    assert "Failed to parse kill mode" in result.stderr


@needs_systemd_analyze
@pytest.mark.parametrize("name", [*PROCESS_UNITS, "pondops-migrate.service"])
def test_units_are_hardened(unit_root: Path, name: str) -> None:
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", f"--root={unit_root}", "--no-pager", name],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)

    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE


@pytest.mark.parametrize(("name", "command"), PROCESS_UNITS.items())
def test_process_units_run_as_the_deployment_promises(name: str, command: str) -> None:
    unit = unit_settings(UNITS_DIR / name)

    assert unit["ExecStart"] == [f"{VENV_BIN}/{command}"]
    assert unit["User"] == unit["Group"] == ["pondops"]
    assert unit["EnvironmentFile"] == ["/etc/pondops/pondops.env"]
    assert unit["KillMode"] == ["control-group"]
    assert unit["Restart"] == ["always"]
    assert unit["RestartSec"] == ["5"]
    assert unit["PartOf"] == ["pondops.target"]
    assert unit["WantedBy"] == ["pondops.target"]
    for setting in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes"):
        key, value = setting.split("=")
        assert unit[key] == [value]
    # One metrics directory for the host, made empty by the unit they all require.
    assert "PROMETHEUS_MULTIPROC_DIR=/run/pondops-metrics" in unit["Environment"]
    assert unit["Requires"] == ["pondops-metrics-dir.service"]
    assert "pondops-metrics-dir.service" in unit["After"][0].split()
    assert "pondops-migrate.service" in unit["After"][0].split()


def test_the_target_groups_the_four_processes_and_not_the_release_step() -> None:
    target = unit_settings(UNITS_DIR / "pondops.target")
    wanted = {name for line in target["Wants"] for name in line.split()}

    assert set(PROCESS_UNITS) <= wanted
    assert "pondops-migrate.service" not in wanted


def test_the_metrics_directory_lives_with_its_unit() -> None:
    """systemd creates a RuntimeDirectory empty at start and removes it at stop; RemainAfterExit
    keeps it for as long as the target runs."""
    unit = unit_settings(UNITS_DIR / "pondops-metrics-dir.service")

    assert unit["RuntimeDirectory"] == ["pondops-metrics"]
    assert unit["Type"] == ["oneshot"]
    assert unit["RemainAfterExit"] == ["yes"]
    assert unit["User"] == ["pondops"]


def test_the_release_step_migrates_creates_the_cache_table_and_collects_static_files() -> None:
    unit = unit_settings(UNITS_DIR / "pondops-migrate.service")

    assert unit["Type"] == ["oneshot"]
    assert [line.split()[1] for line in unit["ExecStart"]] == [
        "migrate",
        "createcachetable",
        "collectstatic",
    ]


def test_the_units_management_commands_exist() -> None:
    """Every command a unit runs is one of ours (reset_metrics_dir included)."""
    commands = get_commands()
    for unit in unit_files():
        for line in unit_settings(unit).get("ExecStart", []):
            program, *arguments = line.split()
            if program.endswith("/django-admin"):
                assert arguments[0] in commands, f"{unit.name}: {line}"
