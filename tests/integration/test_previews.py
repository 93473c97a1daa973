"""Previews over real HTTP to the carrier simulators, with django-q2 in sync mode (each task runs
inline): one verdict per device per carrier, every read audited on the preview, no carrier
write ever sent (the simulators' request counters list read operations only), transient
failures retried then COULD_NOT_READ, the credentials' rate limit held, a stalled preview
re-enqueued by the reaper, and a bulk change created from a preview with only the devices that
would change."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from bulkchanges.errors import ApplicationError
from bulkchanges.models import BulkChange, BulkChangeLog, IntegrationAuthentication, Preview
from bulkchanges.models import PreviewDevice as Row
from bulkchanges.services import logs
from bulkchanges.services.bulk_changes import status_update_request_validate
from bulkchanges.services.previews import (
    preview_bulk_change_create,
    preview_create,
    preview_of_bulk_change_create,
)
from bulkchanges.services.reaper import reap
from bulkchanges.types import DeviceRef
from integrations.base import Step, UpdateContext, WriteRefused
from integrations.pond import PondProcessor
from integrations.simulators.control import SimulatorControl
from tests.conftest import DISTRIBUTOR, POND_KEY, PondWorld, iccids, seed_sims
from tests.fixtures.pipeline import TealWorld, TelegenceWorld, ThingSpaceWorld

pytestmark = pytest.mark.django_db(transaction=True)

V = Row.Verdict
POND_READS = {"read_sim_status", "list_packages"}


def _preview(
    *, tenant: Any, integration: str, status: str, devices: list[DeviceRef], **request: Any
) -> Preview:
    validated = status_update_request_validate(
        tenant=tenant, integration=integration, update_status=status, **request
    )
    preview = preview_create(tenant=tenant, actor="cli:ops", validated=validated, devices=devices)
    preview.refresh_from_db()
    return preview


def _verdicts(preview: Preview) -> dict[str, str]:
    return dict(preview.devices.values_list("iccid", "verdict"))


def _ops(simulator: SimulatorControl, carrier: str) -> set[str]:
    return set(simulator.calls().get(carrier, {}))


@pytest.fixture
def pond(pond_world: PondWorld, inline_workers: None) -> PondWorld:
    return pond_world


def test_a_pond_preview_judges_each_device_and_only_reads(pond: PondWorld) -> None:
    on, off, gone, unknown = iccids(4)
    seed_sims(pond, [on])
    seed_sims(pond, [off], services="DISABLED")
    pond.simulator.seed_pond_sims(
        distributor_id=DISTRIBUTOR, sims=[{"iccid": gone, "status_of_sim": "Terminated"}]
    )

    preview = _preview(
        tenant=pond.tenant,
        integration="POND",
        status="ACTIVE",
        devices=[DeviceRef(iccid=i) for i in (on, off, gone, unknown)],
    )

    assert preview.status == Preview.Status.DONE
    assert _verdicts(preview) == {
        on: V.ALREADY_IN_TARGET,
        off: V.WOULD_CHANGE,
        gone: V.TRANSITION_REFUSED,
        unknown: V.UNKNOWN_TO_CARRIER,
    }
    assert preview.devices.get(iccid=gone).message == (
        "POND refuses a change from TERMINATED to ACTIVE"
    )
    assert preview.devices.get(iccid=off).status_read == "SUSPENDED"
    # Nothing but reads reached POND, and every one has its audit row on the preview.
    assert _ops(pond.simulator, "pond") <= POND_READS
    calls = BulkChangeLog.objects.filter(
        preview=preview, log_entry_description="Read POND SIM status"
    )
    assert calls.count() == 4
    assert not calls.filter(bulk_change__isnull=False).exists()
    assert not calls.filter(in_flight=True).exists()
    assert BulkChangeLog.objects.filter(
        preview=preview, log_entry_description=logs.PREVIEW_FINISHED
    ).exists()
    assert pond.simulator.pond_sim(off)["sim_data_service_status"] == "DISABLED"


def test_a_read_only_client_refuses_a_write_before_sending_it(pond: PondWorld) -> None:
    (iccid,) = iccids(1)
    seed_sims(pond, [iccid])
    processor = PondProcessor(credentials=pond.pond.as_credentials(), read_only=True)
    context = UpdateContext(
        device_change_id=1, bulk_change_id=1, iccid=iccid, target_status="SUSPENDED"
    )

    with pytest.raises(WriteRefused, match="only reads"):
        processor.perform(Step.CARRIER_STATUS, context)

    assert processor.read_status(context) == "ACTIVE"  # reads still go through
    assert _ops(pond.simulator, "pond") == POND_READS


def test_a_read_that_keeps_failing_is_could_not_read_after_the_retries(
    pond: PondWorld, settings: Any
) -> None:
    settings.BULKCHANGE_MAX_RETRIES = 2
    settings.BULKCHANGE_PREVIEW_RETRY_BASE_SECONDS = 0
    flaky, fine = iccids(2)
    seed_sims(pond, [flaky, fine])
    pond.simulator.add_fault("pond", "read_sim_status", key=flaky, status=503, times=-1)

    preview = _preview(
        tenant=pond.tenant,
        integration="POND",
        status="SUSPENDED",
        devices=[DeviceRef(iccid=flaky), DeviceRef(iccid=fine)],
    )

    assert _verdicts(preview) == {flaky: V.COULD_NOT_READ, fine: V.WOULD_CHANGE}
    assert preview.devices.get(iccid=flaky).message.startswith("gave up after 2 retries: HTTP 503")
    assert pond.simulator.call_count("pond", "read_sim_status", flaky) == 3


def test_a_preview_holds_the_credentials_rate_limit(pond: PondWorld) -> None:
    IntegrationAuthentication.objects.filter(pk=pond.pond.pk).update(rate_limit=8)
    numbers = iccids(12)
    seed_sims(pond, numbers)

    preview = _preview(
        tenant=pond.tenant,
        integration="POND",
        status="SUSPENDED",
        devices=[DeviceRef(iccid=i) for i in numbers],
    )

    assert set(_verdicts(preview).values()) == {V.WOULD_CHANGE}
    stats = pond.simulator.stats()["pond"]
    assert stats["requests"] == 24
    assert stats["max_requests_in_1s"] <= 8


def test_thingspace_verdicts_include_a_refused_move_and_a_missing_imei(
    simulator: SimulatorControl, device_statuses: None, inline_workers: None
) -> None:
    world = ThingSpaceWorld.arrange(simulator)
    active, suspended, deactivated, unknown = world.devices(4)
    world.seed([active])
    world.seed([suspended], status="suspended")
    world.seed([deactivated], status="deactivated")
    devices = [active, suspended, deactivated, unknown]

    to_suspend = _preview(
        tenant=world.tenant, integration="THINGSPACE", status="suspended", devices=devices
    )
    to_activate = _preview(
        tenant=world.tenant,
        integration="THINGSPACE",
        status="active",
        devices=[deactivated, suspended],
        options={"service_plan": "M2M-5GB", "mdn_zip_code": "10001"},
    )

    assert _verdicts(to_suspend) == {
        active.iccid: V.WOULD_CHANGE,
        suspended.iccid: V.ALREADY_IN_TARGET,
        deactivated.iccid: V.TRANSITION_REFUSED,
        unknown.iccid: V.UNKNOWN_TO_CARRIER,
    }
    assert _verdicts(to_activate) == {
        deactivated.iccid: V.MISSING_IDENTIFIER,  # an activation needs the IMEI or a SKU
        suspended.iccid: V.WOULD_CHANGE,  # a restore needs neither
    }
    assert "IMEI" in to_activate.devices.get(iccid=deactivated.iccid).message
    assert _ops(simulator, "thingspace") <= {"oauth_token", "session_login", "list_devices"}
    assert world.carrier_status(active) == "active"


def test_teal_without_an_eid_is_missing_an_identifier(
    simulator: SimulatorControl, device_statuses: None, inline_workers: None
) -> None:
    teal = TealWorld.arrange(simulator)
    (with_eid,) = teal.devices(1)
    teal.seed([with_eid])
    without = DeviceRef(iccid=iccids(1, start=50)[0])

    preview = _preview(
        tenant=teal.tenant, integration="TEAL", status="enabled", devices=[with_eid, without]
    )

    assert _verdicts(preview) == {
        with_eid.iccid: V.WOULD_CHANGE,
        without.iccid: V.MISSING_IDENTIFIER,
    }
    assert "EID" in preview.devices.get(iccid=without.iccid).message
    assert _ops(simulator, "teal") <= {"esim_info", "operation_result"}
    assert teal.carrier_status(with_eid) == "stopped"


def test_telegence_without_an_msisdn_is_missing_an_identifier(
    simulator: SimulatorControl, device_statuses: None, inline_workers: None
) -> None:
    telegence = TelegenceWorld.arrange(simulator)
    active, cancelled = telegence.devices(2)
    telegence.seed([active])
    telegence.seed([cancelled], status="Cancelled")
    without = DeviceRef(iccid=iccids(1, start=60)[0])

    preview = _preview(
        tenant=telegence.tenant,
        integration="TELEGENCE",
        status="Suspended",
        devices=[active, cancelled, without],
    )

    assert _verdicts(preview) == {
        active.iccid: V.WOULD_CHANGE,
        cancelled.iccid: V.TRANSITION_REFUSED,
        without.iccid: V.MISSING_IDENTIFIER,
    }
    assert _ops(simulator, "telegence") == {"read_line"}


def test_a_bulk_change_from_a_preview_takes_only_the_devices_that_would_change(
    pond: PondWorld,
) -> None:
    change, already, unknown = iccids(3)
    seed_sims(pond, [change])
    seed_sims(pond, [already], services="DISABLED")
    preview = _preview(
        tenant=pond.tenant,
        integration="POND",
        status="SUSPENDED",
        devices=[DeviceRef(iccid=i) for i in (change, already, unknown)],
    )

    bulk_change, created = preview_bulk_change_create(preview=preview, actor="cli:ops")
    with_already, _ = preview_bulk_change_create(
        preview=preview, actor="cli:ops", include_already_in_target=True
    )

    assert created
    assert bulk_change.preview_id == preview.pk
    assert list(bulk_change.device_changes.values_list("iccid", flat=True)) == [change]
    assert sorted(with_already.device_changes.values_list("iccid", flat=True)) == [change, already]
    assert bulk_change.request["UpdateStatus"] == "SUSPENDED"
    assert BulkChangeLog.objects.filter(
        bulk_change=bulk_change,
        process_by="cli:ops",
        log_entry_description=logs.PREVIEW_BULK_CHANGE_CREATED,
    ).exists()


def test_a_preview_of_an_existing_bulk_change_reads_its_devices(pond: PondWorld) -> None:
    numbers = iccids(2)
    seed_sims(pond, numbers)
    validated = status_update_request_validate(
        tenant=pond.tenant, integration="POND", update_status="SUSPENDED"
    )
    from bulkchanges.services.bulk_changes import bulk_change_create

    # A scheduled one, so that it does not run meanwhile.
    bulk_change, _ = bulk_change_create(
        tenant=pond.tenant,
        created_by="test",
        validated=validated,
        devices=[DeviceRef(iccid=i) for i in numbers],
    )
    BulkChange.objects.filter(pk=bulk_change.pk).update(status=BulkChange.Status.SCHEDULED)

    preview = preview_of_bulk_change_create(bulk_change=bulk_change, actor="admin:ops")
    preview.refresh_from_db()

    assert preview.bulk_change_id == bulk_change.pk
    assert preview.status == Preview.Status.DONE
    assert set(_verdicts(preview)) == set(numbers)


def test_a_bulk_change_is_created_only_from_a_finished_preview(pond: PondWorld) -> None:
    (iccid,) = iccids(1)
    seed_sims(pond, [iccid])
    preview = _preview(
        tenant=pond.tenant, integration="POND", status="SUSPENDED", devices=[DeviceRef(iccid=iccid)]
    )
    Preview.objects.filter(pk=preview.pk).update(status=Preview.Status.RUNNING)
    preview.refresh_from_db()

    with pytest.raises(ApplicationError, match="finished"):
        preview_bulk_change_create(preview=preview, actor="cli:ops")


def _lost_preview(world: PondWorld, count: int, *, lease_until: Any) -> Preview:
    """A RUNNING preview queued an hour ago whose task never ran (a lost task), one of its
    devices claimed by a reader whose lease ends at ``lease_until``."""
    numbers = iccids(count)
    seed_sims(world, numbers)
    from django_q.conf import Conf

    Conf.SYNC = False  # the task is put on the (unserved) broker instead of run inline
    try:
        preview = _preview(
            tenant=world.tenant,
            integration="POND",
            status="SUSPENDED",
            devices=[DeviceRef(iccid=i) for i in numbers],
        )
    finally:
        Conf.SYNC = True
    long_ago = timezone.now() - timedelta(hours=1)
    Preview.objects.filter(pk=preview.pk).update(status=Preview.Status.RUNNING, queued_at=long_ago)
    Row.objects.filter(pk=preview.devices.values_list("pk", flat=True)[0]).update(
        claim_token=uuid.uuid4(), claimed_until=lease_until
    )
    return preview


def test_the_reaper_re_enqueues_a_preview_whose_worker_died(pond: PondWorld) -> None:
    preview = _lost_preview(pond, 3, lease_until=timezone.now() - timedelta(minutes=30))
    assert preview.devices.filter(verdict="").count() == 3

    report = reap(enqueue=lambda ids: None, process_by="reaper")

    preview.refresh_from_db()
    assert report.previews_resent == 1
    assert preview.status == Preview.Status.DONE
    assert set(_verdicts(preview).values()) == {V.WOULD_CHANGE}
    assert POND_KEY not in "".join(
        BulkChangeLog.objects.filter(preview=preview).values_list("request_text", flat=True)
    )


def test_the_reaper_leaves_a_preview_that_is_being_read(pond: PondWorld) -> None:
    preview = _lost_preview(pond, 2, lease_until=timezone.now() + timedelta(minutes=1))

    report = reap(enqueue=lambda ids: None, process_by="reaper")

    assert report.previews_resent == 0
    assert pond.simulator.call_count("pond") == 0
    assert Preview.objects.get(pk=preview.pk).status == Preview.Status.RUNNING
