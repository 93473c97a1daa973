"""Previews and reverts in the console, over the POND simulator (django-q2 inline): "Preview
against the carrier" from the new-bulk-change page and from a bulk change's page, the preview
page (verdict counts, devices by verdict, the progress fragment), "Create bulk change from
preview", "Revert…" on a finished bulk change and "Create the revert"; each recorded in the
admin history and the audit log; who may do what."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange, Preview, PreviewDevice
from tests.conftest import PondWorld, create_bulk_change, iccids, seed_sims

pytestmark = pytest.mark.django_db(transaction=True)

NEW = reverse("admin:bulkchanges_bulkchange_new")


@pytest.fixture
def pond(pond_world: PondWorld, inline_workers: None, sent: Any) -> PondWorld:
    return pond_world


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    from bulkchanges import sqs

    messages: list[Any] = []
    monkeypatch.setattr(sqs, "send", lambda message, **kwargs: messages.append(message))
    return messages


def _page(client: Client, url: str, **params: str) -> str:
    response = client.get(url, params)
    assert response.status_code == 200
    return response.content.decode()


def _finished(world: PondWorld, numbers: list[str]) -> BulkChange:
    bulk_change = create_bulk_change(world, numbers, status="SUSPENDED")
    BulkChange.objects.filter(pk=bulk_change.pk).update(status=BulkChange.Status.PROCESSED)
    DeviceChange.objects.filter(bulk_change=bulk_change).update(
        status=DeviceChange.Status.PROCESSED,
        is_processed=True,
        previous_status="ACTIVE",
        rev_service_id=4242,
    )
    return bulk_change


def test_preview_against_the_carrier_from_the_new_bulk_change_page_then_create(
    admin_client: Client, pond: PondWorld
) -> None:
    change, already = iccids(2)
    seed_sims(pond, [change])
    seed_sims(pond, [already], services="DISABLED")
    url = f"{NEW}?tenant={pond.tenant.pk}&integration=POND"
    validated = admin_client.post(
        url,
        {
            "credentials": pond.pond.pk,
            "update_status": "SUSPENDED",
            "post_update_status": "",
            "account_number": "",
            "etf_waiver": "",
            "devices_text": f"{change}\n{already}\n",
        },
    ).content.decode()
    assert 'id="pondops-preview-carrier"' in validated
    token = re.findall(r'name="draft" value="([^"]+)"', validated)[-1]

    started = admin_client.post(reverse("admin:bulkchanges_preview_from_draft"), {"draft": token})

    preview = Preview.objects.get()
    assert started.status_code == 302
    assert started["Location"] == reverse("admin:bulkchanges_preview_change", args=[preview.pk])
    html = _page(admin_client, started["Location"])
    assert preview.created_by == "admin:admin"
    assert 'data-verdict="WOULD_CHANGE"' in html and 'id="pondops-create-bulk-change"' in html
    only_change = _page(admin_client, started["Location"], verdict="WOULD_CHANGE")
    assert f'data-iccid="{change}"' in only_change and f'data-iccid="{already}"' not in only_change
    fragment = _page(admin_client, reverse("admin:bulkchanges_preview_progress", args=[preview.pk]))
    assert 'data-final="true"' in fragment and "2/2 read" in fragment

    created = admin_client.post(
        reverse("admin:bulkchanges_preview_create_bulk_change", args=[preview.pk])
    )

    bulk_change = BulkChange.objects.get(preview=preview)
    assert created["Location"] == reverse(
        "admin:bulkchanges_bulkchange_change", args=[bulk_change.pk]
    )
    assert list(bulk_change.device_changes.values_list("iccid", flat=True)) == [change]
    assert LogEntry.objects.filter(object_id=str(bulk_change.pk)).exists()
    assert LogEntry.objects.filter(
        change_message__startswith=f"Preview {preview.pk} started"
    ).exists()
    after = _page(admin_client, started["Location"])
    assert 'id="pondops-create-bulk-change"' not in after  # created once
    assert f'data-created="{bulk_change.pk}"' in after


def test_revert_from_a_finished_bulk_changes_page(admin_client: Client, pond: PondWorld) -> None:
    numbers = iccids(2)
    seed_sims(pond, numbers, services="DISABLED")
    bulk_change = _finished(pond, numbers)
    page = _page(
        admin_client, reverse("admin:bulkchanges_bulkchange_change", args=[bulk_change.pk])
    )
    assert 'id="pondops-revert"' in page and 'id="pondops-preview"' in page

    previewed = admin_client.post(
        reverse("admin:bulkchanges_preview_revert_of", args=[bulk_change.pk])
    )

    preview = Preview.objects.get(revert_of=bulk_change)
    html = _page(admin_client, previewed["Location"])
    assert "Revert preview" in html
    assert "Rev.io services not undone (2)" in html
    assert 'data-revert-target="ACTIVE"' in html

    reverted = admin_client.post(reverse("admin:bulkchanges_preview_revert", args=[preview.pk]))

    revert = BulkChange.objects.get(reverts=bulk_change)
    assert reverted["Location"] == reverse("admin:bulkchanges_bulkchange_change", args=[revert.pk])
    assert revert.device_changes.count() == 2
    assert BulkChangeLog.objects.filter(
        bulk_change=bulk_change, process_by="admin:admin", log_entry_description="Revert created"
    ).exists()
    assert LogEntry.objects.filter(object_id=str(revert.pk)).exists()
    again = admin_client.post(
        reverse("admin:bulkchanges_preview_revert", args=[preview.pk]), follow=True
    )
    assert "already created" in again.content.decode()


def test_without_the_revert_permission_there_is_no_revert(
    staff_client: Any, pond: PondWorld
) -> None:
    numbers = iccids(1)
    seed_sims(pond, numbers, services="DISABLED")
    bulk_change = _finished(pond, numbers)
    viewer = staff_client("view_bulkchange", "view_preview")

    page = _page(viewer, reverse("admin:bulkchanges_bulkchange_change", args=[bulk_change.pk]))
    refused = viewer.post(reverse("admin:bulkchanges_preview_revert_of", args=[bulk_change.pk]))

    assert 'id="pondops-revert"' not in page and 'id="pondops-preview"' not in page
    assert refused.status_code == 403
    assert not Preview.objects.exists()


def test_an_unfinished_bulk_change_offers_a_preview_and_no_revert(
    admin_client: Client, pond: PondWorld
) -> None:
    numbers = iccids(1)
    seed_sims(pond, numbers)
    bulk_change = create_bulk_change(pond, numbers)
    page = _page(
        admin_client, reverse("admin:bulkchanges_bulkchange_change", args=[bulk_change.pk])
    )
    assert 'id="pondops-preview"' in page and 'id="pondops-revert"' not in page

    started = admin_client.post(
        reverse("admin:bulkchanges_preview_of_bulk_change", args=[bulk_change.pk])
    )
    refused = admin_client.post(
        reverse("admin:bulkchanges_preview_revert_of", args=[bulk_change.pk]), follow=True
    )

    assert Preview.objects.get(bulk_change=bulk_change).status == Preview.Status.DONE
    assert started.status_code == 302
    assert "No revert preview was started" in refused.content.decode()
    assert "only a bulk change in a final status can be reverted" in refused.content.decode()
    listing = _page(admin_client, reverse("admin:bulkchanges_preview_changelist"))
    assert f"of bulk change {bulk_change.pk}" in listing


def test_a_bulk_change_that_changed_nothing_offers_no_revert_and_its_preview_says_why(
    admin_client: Client, pond: PondWorld
) -> None:
    numbers = iccids(2)
    seed_sims(pond, numbers, services="DISABLED")
    bulk_change = _finished(pond, numbers)
    bulk_change.device_changes.update(status="ERROR", last_error="HTTP 400 from POND: refused")
    page = _page(
        admin_client, reverse("admin:bulkchanges_bulkchange_change", args=[bulk_change.pk])
    )
    assert 'id="pondops-revert"' not in page and 'id="pondops-preview"' in page

    # Asked anyway (a stale page): refused with the reason, no preview started.
    refused = admin_client.post(
        reverse("admin:bulkchanges_preview_revert_of", args=[bulk_change.pk]), follow=True
    ).content.decode()
    assert "changed no device; there is nothing to revert" in refused
    assert not Preview.objects.filter(revert_of=bulk_change).exists()


def test_a_preview_where_no_device_would_change_says_so_instead_of_offering_nothing(
    admin_client: Client, pond: PondWorld
) -> None:
    numbers = iccids(2)
    seed_sims(pond, numbers, services="DISABLED")
    bulk_change = _finished(pond, numbers)
    preview = Preview.objects.create(
        tenant=bulk_change.tenant,
        integration="POND",
        integration_authentication=bulk_change.integration_authentication,
        request=bulk_change.request,
        status=Preview.Status.DONE,
        created_by="admin:admin",
    )
    PreviewDevice.objects.create(
        preview=preview, iccid=numbers[0], verdict=PreviewDevice.Verdict.ALREADY_IN_TARGET
    )
    html = _page(admin_client, reverse("admin:bulkchanges_preview_change", args=[preview.pk]))
    assert 'id="pondops-nothing-to-do"' in html and "Nothing to create" in html
    assert 'id="pondops-create-bulk-change"' not in html
