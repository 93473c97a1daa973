"""``preview_bulk_change`` and ``revert_bulk_change`` against the POND simulator (django-q2 in
sync mode: the preview is read before the command waits for it)."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from bulkchanges.models import BulkChange, DeviceChange, Preview
from tests.conftest import PondWorld, create_bulk_change, iccids, seed_sims

pytestmark = pytest.mark.django_db(transaction=True)


def _run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_preview_bulk_change_waits_and_prints_the_verdicts(
    pond_world: PondWorld, inline_workers: None, tmp_path: Path
) -> None:
    change, already = iccids(2)
    seed_sims(pond_world, [change])
    seed_sims(pond_world, [already], services="DISABLED")
    devices = tmp_path / "devices.csv"
    devices.write_text(f"iccid\n{change}\n{already}\nnot-an-iccid\n")
    common = ["--tenant", "Acme IoT", "--integration", "pond", "--status", "suspended"]

    waited = _run("preview_bulk_change", *common, "--iccids-file", str(devices), "--wait")
    started = _run("preview_bulk_change", *common, "--iccids-file", str(devices))

    assert "would change: 1" in waited
    assert "already in target (would be skipped): 1" in waited
    preview_id = int(waited.split()[-1])
    assert Preview.objects.get(pk=preview_id).created_by.startswith("cli:")
    assert int(started.split()[-1]) == preview_id + 1
    assert set(pond_world.simulator.calls()["pond"]) <= {"read_sim_status", "list_packages"}


def test_preview_bulk_change_refuses_bad_input_in_one_line(
    pond_world: PondWorld, tmp_path: Path
) -> None:
    devices = tmp_path / "devices.csv"
    devices.write_text(f"{iccids(1)[0]}\n")
    with pytest.raises(CommandError, match="cannot set status"):
        _run(
            "preview_bulk_change",
            *("--tenant", "Acme IoT", "--integration", "POND", "--status", "SLEEPING"),
            *("--iccids-file", str(devices)),
        )


def test_revert_bulk_change_previews_then_creates_the_revert(
    pond_world: PondWorld, inline_workers: None
) -> None:
    numbers = iccids(3)
    seed_sims(pond_world, numbers, services="DISABLED")
    bulk_change = create_bulk_change(pond_world, numbers, status="SUSPENDED")
    BulkChange.objects.filter(pk=bulk_change.pk).update(status=BulkChange.Status.PROCESSED)
    DeviceChange.objects.filter(bulk_change=bulk_change).update(
        status=DeviceChange.Status.PROCESSED, is_processed=True, previous_status="ACTIVE"
    )
    DeviceChange.objects.filter(bulk_change=bulk_change, iccid=numbers[0]).update(
        previous_status="", rev_service_id=777
    )

    dry = _run("revert_bulk_change", str(bulk_change.pk), "--dry-run")
    real = _run("revert_bulk_change", str(bulk_change.pk))

    assert "would change: 2" in dry
    assert "cannot be reverted: 1" in dry
    assert "Rev.io services not undone: 777" in dry
    assert f"left out {numbers[0]}: no previous status was recorded" in dry
    assert "dry run: no bulk change created" in dry
    reverts = BulkChange.objects.filter(reverts=bulk_change).values_list("pk", flat=True)
    assert list(reverts) == [int(real.split()[-1])]
    revert = BulkChange.objects.get(pk=int(real.split()[-1]))
    assert revert.reverts_id == bulk_change.pk
    assert revert.device_changes.count() == 2


def test_revert_bulk_change_of_an_unfinished_one_exits_with_a_reason(
    pond_world: PondWorld,
) -> None:
    bulk_change = create_bulk_change(pond_world, iccids(1))
    with pytest.raises(CommandError, match="only a bulk change in a final status"):
        _run("revert_bulk_change", str(bulk_change.pk))
    with pytest.raises(CommandError, match="does not exist"):
        _run("revert_bulk_change", "999999")
