"""The gates from the command line: ``create_bulk_change --scheduled-for``, a destructive
target awaiting approval (the CLI cannot approve), ``reschedule_bulk_change`` and
``cancel_bulk_change`` — a summary on success, a one-line reason and a non-zero exit on bad
input."""

from __future__ import annotations

import getpass
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command, get_commands
from django.utils import timezone

from bulkchanges import sqs
from bulkchanges.models import BulkChange, BulkChangeLog, Tenant
from tests.conftest import ROOT, iccids
from tests.integration.test_gates import tenant  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db
Status = BulkChange.Status


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def devices(tenant: Tenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    monkeypatch.setattr(sqs, "send", lambda message, *, delay_seconds=0: "recorded")
    path = tmp_path / "iccids.txt"
    path.write_text("\n".join(iccids(3)) + "\n")
    return path


def create(devices: Path, *extra: str, status: str = "SUSPENDED") -> tuple[BulkChange, str]:
    out = run(
        "create_bulk_change",
        "--tenant",
        "Acme IoT",
        "--integration",
        "POND",
        "--status",
        status,
        "--iccids-file",
        str(devices),
        *extra,
    )
    return BulkChange.objects.get(pk=int(out.split()[-1])), out


def test_create_with_scheduled_for_prints_when_it_starts(devices: Path) -> None:
    when = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
    bulk_change, out = create(devices, "--scheduled-for", when.isoformat())
    assert bulk_change.status == Status.SCHEDULED and bulk_change.scheduled_for == when
    assert f"scheduled 3 devices for {when.isoformat()}" in out


def test_a_destructive_target_from_the_cli_awaits_approval(devices: Path) -> None:
    bulk_change, out = create(devices, status="TERMINATED")
    assert bulk_change.status == Status.AWAITING_APPROVAL
    assert bulk_change.created_by == f"cli:{getpass.getuser()}"
    assert (
        "3 devices await approval in the console or the API, because target TERMINATED is "
        "destructive"
    ) in out
    assert "approve_bulk_change" not in get_commands()  # the CLI cannot approve (DESIGN §7a)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("next tuesday", "is not an ISO 8601 time"),
        ("2030-01-01T12:00", "has no UTC offset"),
        ("2000-01-01T12:00+00:00", "is in the past"),
        ("2999-01-01T12:00+00:00", "more than 180 days ahead"),
        ("2030-02-30T12:00+00:00", "is not an ISO 8601 time"),
    ],
)
def test_a_bad_scheduled_for_is_a_one_line_reason(devices: Path, value: str, reason: str) -> None:
    with pytest.raises(CommandError, match=reason) as refused:
        create(devices, "--scheduled-for", value)
    assert "\n" not in str(refused.value)
    assert not BulkChange.objects.exists()


def test_reschedule_and_cancel(devices: Path) -> None:
    bulk_change, _ = create(
        devices, "--scheduled-for", (timezone.now() + timedelta(hours=1)).isoformat()
    )
    new = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    out = run("reschedule_bulk_change", str(bulk_change.pk), "--scheduled-for", new.isoformat())
    assert out.strip() == (
        f"bulk change {bulk_change.pk}: SCHEDULED, scheduled for {new.isoformat()}"
    )
    row = BulkChangeLog.objects.get(log_entry_description="Bulk change rescheduled")
    assert row.process_by == f"cli:{getpass.getuser()}"

    out = run("cancel_bulk_change", str(bulk_change.pk))
    assert out.strip().startswith(
        f"bulk change {bulk_change.pk}: CANCELLED. 3 devices cancelled now"
    )
    assert BulkChange.objects.get(pk=bulk_change.pk).status == Status.CANCELLED

    with pytest.raises(CommandError, match="is CANCELLED; only a scheduled bulk change"):
        run("reschedule_bulk_change", str(bulk_change.pk), "--scheduled-for", new.isoformat())
    with pytest.raises(CommandError, match="does not exist"):
        run("cancel_bulk_change", "999999")


def test_reschedule_to_now_releases_it(devices: Path) -> None:
    bulk_change, _ = create(
        devices, "--scheduled-for", (timezone.now() + timedelta(hours=1)).isoformat()
    )
    out = run(
        "reschedule_bulk_change", str(bulk_change.pk), "--scheduled-for", timezone.now().isoformat()
    )
    assert f"bulk change {bulk_change.pk}: QUEUED" in out


def test_a_bad_time_exits_1_with_one_line() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "reschedule_bulk_change",
            "1",
            "--scheduled-for",
            "soon",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "sqlite:////nonexistent/x.sqlite3"},
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "CommandError: --scheduled-for 'soon' is not an ISO 8601 time (for example "
        "2026-12-02T18:00:00+00:00)"
    )
