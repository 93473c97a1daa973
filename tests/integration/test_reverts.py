"""Reverts over real HTTP to the POND simulator (django-q2 inline): the revert preview reads each
changed device, leaves out what cannot be reverted (no previous status; a return POND refuses)
and lists the Rev.io services that stay; the revert is one bulk change per previous status,
``reverts`` set, no RevService, created once. The worker records ``previous_status`` on another
branch; here the finished bulk change's rows are written directly."""

from __future__ import annotations

import pytest

from bulkchanges.errors import ApplicationError
from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange, Preview
from bulkchanges.models import PreviewDevice as Row
from bulkchanges.services import logs
from bulkchanges.services.reverts import revert_create, revert_preview_create
from tests.conftest import DISTRIBUTOR, PondWorld, create_bulk_change, iccids, seed_sims

pytestmark = pytest.mark.django_db(transaction=True)

V = Row.Verdict


def _finished(world: PondWorld, status: str, previous: dict[str, str]) -> BulkChange:
    """A PROCESSED bulk change to ``status`` that changed each device from ``previous``, with a
    Rev.io service per device, its rows written directly (nothing polls its queue)."""
    bulk_change = create_bulk_change(world, list(previous), status=status)
    BulkChange.objects.filter(pk=bulk_change.pk).update(status=BulkChange.Status.PROCESSED)
    for n, (iccid, before) in enumerate(previous.items()):
        DeviceChange.objects.filter(bulk_change=bulk_change, iccid=iccid).update(
            status=DeviceChange.Status.PROCESSED,
            is_processed=True,
            previous_status=before,
            rev_service_id=9000 + n,
        )
    bulk_change.refresh_from_db()
    return bulk_change


@pytest.fixture
def pond(pond_world: PondWorld, inline_workers: None) -> PondWorld:
    return pond_world


def test_a_revert_sets_each_device_back_to_its_previous_status_one_bulk_change_each(
    pond: PondWorld,
) -> None:
    was_active, was_terminated_no, no_previous, terminated_since, was_active_2 = iccids(5)
    seed_sims(pond, [was_active, no_previous, was_active_2, was_terminated_no], services="DISABLED")
    pond.simulator.seed_pond_sims(
        distributor_id=DISTRIBUTOR,
        sims=[{"iccid": terminated_since, "status_of_sim": "Terminated"}],
    )
    bulk_change = _finished(
        pond,
        "SUSPENDED",
        {
            was_active: "ACTIVE",
            was_terminated_no: "TERMINATED",
            no_previous: "",
            terminated_since: "ACTIVE",
            was_active_2: "active",
        },
    )

    preview = revert_preview_create(bulk_change=bulk_change, actor="admin:ops")
    preview.refresh_from_db()

    assert preview.status == Preview.Status.DONE
    rows = {row.iccid: row for row in preview.devices.all()}
    assert {iccid: row.verdict for iccid, row in rows.items()} == {
        was_active: V.WOULD_CHANGE,
        was_terminated_no: V.WOULD_CHANGE,
        no_previous: V.NOT_REVERTIBLE,
        terminated_since: V.TRANSITION_REFUSED,
        was_active_2: V.WOULD_CHANGE,
    }
    assert rows[no_previous].message == "no previous status was recorded for this change"
    assert rows[was_active_2].target_status == "ACTIVE"
    assert {row.rev_service_id for row in rows.values()} == set(range(9000, 9005))
    # No read of a not-revertible device, and nothing but reads.
    assert pond.simulator.call_count("pond", "read_sim_status", no_previous) == 0
    assert set(pond.simulator.calls()["pond"]) <= {"read_sim_status", "list_packages"}

    created = revert_create(preview=preview, actor="admin:ops")

    by_target = {bc.request["UpdateStatus"]: bc for bc in created}
    assert set(by_target) == {"ACTIVE", "TERMINATED"}
    assert sorted(by_target["ACTIVE"].device_changes.values_list("iccid", flat=True)) == sorted(
        [was_active, was_active_2]
    )
    assert list(by_target["TERMINATED"].device_changes.values_list("iccid", flat=True)) == [
        was_terminated_no
    ]
    for revert in created:
        revert.refresh_from_db()
        assert revert.reverts_id == bulk_change.pk
        assert revert.preview_id == preview.pk
        assert revert.request["RevService"] is None
    row = BulkChangeLog.objects.get(
        bulk_change=bulk_change, log_entry_description=logs.REVERT_CREATED
    )
    assert row.process_by == "admin:ops"
    assert "Rev.io services not undone: 9000, 9001, 9002, 9003, 9004" in row.response_text

    with pytest.raises(ApplicationError, match="already created"):
        revert_create(preview=preview, actor="admin:other")


def test_out_of_pond_terminated_nothing_is_revertible(pond: PondWorld) -> None:
    numbers = iccids(2)
    pond.simulator.seed_pond_sims(
        distributor_id=DISTRIBUTOR,
        sims=[{"iccid": iccid, "status_of_sim": "Terminated"} for iccid in numbers],
    )
    bulk_change = _finished(pond, "TERMINATED", dict.fromkeys(numbers, "ACTIVE"))

    preview = revert_preview_create(bulk_change=bulk_change, actor="cli:ops")
    preview.refresh_from_db()

    assert preview.status == Preview.Status.DONE
    assert set(preview.devices.values_list("verdict", "message")) == {
        (V.NOT_REVERTIBLE, "POND refuses a change from TERMINATED to ACTIVE")
    }
    assert pond.simulator.call_count("pond") == 0
    with pytest.raises(ApplicationError, match="no device to set back"):
        revert_create(preview=preview, actor="cli:ops")


def test_only_a_final_bulk_change_can_be_reverted(pond: PondWorld) -> None:
    numbers = iccids(1)
    seed_sims(pond, numbers)
    bulk_change = create_bulk_change(pond, numbers)
    BulkChange.objects.filter(pk=bulk_change.pk).update(status=BulkChange.Status.SCHEDULED)
    bulk_change.refresh_from_db()

    with pytest.raises(ApplicationError, match="final status") as refused:
        revert_preview_create(bulk_change=bulk_change, actor="cli:ops")
    assert refused.value.status == 409
