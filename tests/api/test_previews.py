"""The partner API's previews and reverts: a preview from the create body (read inline, django-q2
in sync mode, over the POND simulator), its devices filtered by verdict, a bulk change from it
(Idempotency-Key honoured), a preview of a bulk change, a revert preview and the revert; another
tenant's ids are 404s, a read key cannot start one, bad input is a JSON error."""

from __future__ import annotations

from typing import Any

import pytest

from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange, PartnerApiKey
from tests.api.conftest import (
    API,
    Other,
    Partner,
    create_body,
    key_client,
    partner_key,
)
from tests.conftest import DISTRIBUTOR, create_bulk_change, iccids, seed_sims

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(partner: Partner, inline_workers: None, sent: list[Any]) -> Partner:
    return partner


def _preview(world: Partner, numbers: list[str], **overrides: Any) -> dict[str, Any]:
    response = world.client.post(
        f"{API}/previews/", create_body(numbers, **overrides), format="json"
    )
    assert response.status_code == 201, response.json()
    assert response["Location"].endswith(f"/previews/{response.json()['id']}/")
    done: dict[str, Any] = world.client.get(f"{API}/previews/{response.json()['id']}/").json()
    return done


def test_a_preview_is_created_read_and_listed(world: Partner) -> None:
    change, already, unknown = iccids(3)
    seed_sims(world.world, [change])
    seed_sims(world.world, [already], services="DISABLED")

    preview = _preview(world, [change, already, unknown])

    assert preview["status"] == "DONE"
    assert preview["created_by"] == "api:acme-api"
    assert preview["progress"] == {
        "total": 3,
        "read": 3,
        "percent": 100,
        "counts": {"WOULD_CHANGE": 1, "ALREADY_IN_TARGET": 1, "UNKNOWN_TO_CARRIER": 1},
    }
    devices = world.client.get(
        f"{API}/previews/{preview['id']}/devices/", {"verdict": "WOULD_CHANGE"}
    ).json()
    assert [row["iccid"] for row in devices["results"]] == [change]
    assert devices["results"][0]["status_read"] == "ACTIVE"
    listed = world.client.get(f"{API}/previews/").json()
    assert [row["id"] for row in listed["results"]] == [preview["id"]]
    assert set(world.world.simulator.calls()["pond"]) <= {"read_sim_status", "list_packages"}


def test_a_bulk_change_is_created_from_a_preview_once_per_idempotency_key(
    world: Partner,
) -> None:
    change, already = iccids(2)
    seed_sims(world.world, [change])
    seed_sims(world.world, [already], services="DISABLED")
    preview = _preview(world, [change, already])
    url = f"{API}/previews/{preview['id']}/bulk-change/"

    first = world.client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="from-preview-1")
    again = world.client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="from-preview-1")

    assert first.status_code == 201, first.json()
    assert again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    bulk_change = BulkChange.objects.get(pk=first.json()["id"])
    assert bulk_change.preview_id == preview["id"]
    assert list(bulk_change.device_changes.values_list("iccid", flat=True)) == [change]
    after = world.client.get(f"{API}/previews/{preview['id']}/").json()
    assert after["bulk_changes"] == [bulk_change.pk]


def test_a_preview_of_a_bulk_change_and_its_revert(world: Partner) -> None:
    numbers = iccids(2)
    seed_sims(world.world, numbers, services="DISABLED")
    bulk_change = create_bulk_change(world.world, numbers, status="SUSPENDED")

    previewed = world.client.post(f"{API}/bulk-changes/{bulk_change.pk}/preview/")
    refused = world.client.post(f"{API}/bulk-changes/{bulk_change.pk}/revert-preview/")
    assert previewed.status_code == 201
    assert previewed.json()["bulk_change"] == bulk_change.pk
    assert refused.status_code == 409
    assert "final status" in refused.json()["detail"]

    BulkChange.objects.filter(pk=bulk_change.pk).update(status=BulkChange.Status.PROCESSED)
    DeviceChange.objects.filter(bulk_change=bulk_change).update(
        status=DeviceChange.Status.PROCESSED, is_processed=True, previous_status="ACTIVE"
    )
    revert_preview = world.client.post(f"{API}/bulk-changes/{bulk_change.pk}/revert-preview/")
    assert revert_preview.status_code == 201
    preview_id = revert_preview.json()["id"]
    assert world.client.get(f"{API}/previews/{preview_id}/").json()["revert_of"] == bulk_change.pk

    reverted = world.client.post(f"{API}/previews/{preview_id}/revert/")
    twice = world.client.post(f"{API}/previews/{preview_id}/revert/")

    assert reverted.status_code == 201, reverted.json()
    (revert,) = reverted.json()["bulk_changes"]
    assert revert["target_status"] == "ACTIVE"
    assert BulkChange.objects.get(pk=revert["id"]).reverts_id == bulk_change.pk
    assert twice.status_code == 409
    assert BulkChangeLog.objects.filter(
        bulk_change=bulk_change, process_by="api:acme-api", log_entry_description="Revert created"
    ).exists()


def test_another_tenants_previews_are_not_found(world: Partner, other: Other) -> None:
    (number,) = iccids(1, start=5000)
    world.world.simulator.seed_pond_sims(distributor_id=DISTRIBUTOR, sims=[{"iccid": number}])
    theirs = other.client.post(f"{API}/bulk-changes/{other.bulk_change.pk}/preview/").json()

    for url in (
        f"{API}/previews/{theirs['id']}/",
        f"{API}/previews/{theirs['id']}/devices/",
    ):
        assert world.client.get(url).status_code == 404
    assert world.client.post(f"{API}/previews/{theirs['id']}/bulk-change/", {}).status_code == 404
    assert world.client.post(f"{API}/bulk-changes/{other.bulk_change.pk}/preview/").status_code == (
        404
    )
    assert world.client.get(f"{API}/previews/").json()["results"] == []


def test_a_read_key_cannot_start_a_preview_and_bad_input_is_a_json_error(
    world: Partner,
) -> None:
    reader = key_client(partner_key("reader", world.tenant, role=PartnerApiKey.Role.READ))
    denied = reader.post(f"{API}/previews/", create_body(iccids(1)), format="json")
    bad = world.client.post(
        f"{API}/previews/", create_body(["12", "12"], target_status="Nope"), format="json"
    )
    unknown_verdict = world.client.get(f"{API}/previews/1/devices/", {"verdict": "MAYBE"})

    assert denied.status_code == 403
    assert bad.status_code == 400
    assert set(bad.json()) == {"code", "detail", "fields"}
    assert unknown_verdict.status_code in (400, 404)
