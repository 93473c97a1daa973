"""The new-bulk-change form: tenant and carrier first, then only that tenant's active
credentials and the statuses the carrier can set; submitting previews (valid, duplicate,
malformed, unknown) and creates nothing; confirming creates and queues through the services.
Garbled lists get a clear message and create nothing; 10,000 lines take seconds."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from bulkchanges.models import BulkChange, Device, DeviceChange, IntegrationAuthentication
from tests.admin.conftest import Console
from tests.conftest import iccids

pytestmark = pytest.mark.django_db

NEW = reverse("admin:bulkchanges_bulkchange_new")
CONFIRM = reverse("admin:bulkchanges_bulkchange_new_confirm")


def new_url(console: Console, integration: str = "POND") -> str:
    return f"{NEW}?tenant={console.tenant.pk}&integration={integration}"


def form_data(console: Console, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "credentials": console.pond.pk,
        "update_status": "SUSPENDED",
        "post_update_status": "",
        "account_number": "",
        "etf_waiver": "",
    }
    data.update(overrides)
    return data


def csv_file(content: str | bytes, name: str = "devices.csv") -> SimpleUploadedFile:
    raw = content.encode() if isinstance(content, str) else content
    return SimpleUploadedFile(name, raw, content_type="text/csv")


def counts(html: str) -> dict[str, int]:
    found = re.findall(r'data-count="(\w+)"><span class="pondops-stat__value">(\d+)</span>', html)
    return {name: int(value) for name, value in found}


def draft_token(html: str) -> str:
    match = re.search(r'name="draft" value="([^"]+)"', html)
    assert match, "no confirm form on the preview"
    return match.group(1)


def test_the_form_offers_only_the_tenants_active_credentials_and_the_carriers_statuses(
    admin_client: Client, console: Console
) -> None:
    IntegrationAuthentication.objects.create(
        tenant=console.tenant,
        integration="POND",
        account="9999",
        base_url="http://127.0.0.1:9",
        is_active=False,
    )
    other = IntegrationAuthentication.objects.create(
        tenant=console.tenant, integration="JASPER", base_url="http://127.0.0.1:9", username="j"
    )

    step_one = admin_client.get(NEW).content.decode()
    pond = admin_client.get(new_url(console)).content.decode()
    jasper = admin_client.get(new_url(console, "JASPER")).content.decode()

    assert 'id="pondops-target-form"' in step_one and "REV" not in re.findall(
        r'<option value="(\w+)"', step_one
    )
    credentials = re.findall(r'<option value="(\d+)"[^>]*>(POND|Cisco Jasper)', pond)
    assert [int(pk) for pk, _ in credentials] == [console.pond.pk]
    assert f'<option value="{console.pond.pk}" selected>' in pond  # the only one: preselected
    assert re.findall(r'<option value="([A-Z_]+)">\1</option>', pond) == [
        "ACTIVE",
        "SUSPENDED",
        "TERMINATED",
    ]
    assert f'<option value="{other.pk}"' in jasper
    assert "ACTIVATION_READY" in jasper and "TERMINATED" not in jasper
    teal = admin_client.get(new_url(console, "TEAL")).content.decode()
    assert "Acme IoT has no active Teal credentials." in teal


def test_preview_counts_valid_duplicate_malformed_and_unknown_and_creates_nothing(
    admin_client: Client, console: Console
) -> None:
    numbers = iccids(5)
    Device.objects.create(tenant=console.tenant, integration="POND", iccid=numbers[0])
    rows = [f"{n},1555000000{i}" for i, n in enumerate(numbers)]
    content = "\n".join(
        ["iccid,msisdn", *rows, f"{numbers[1]},", "12345,", "89148000000000000099x,"]
    )

    response = admin_client.post(
        new_url(console), form_data(console, devices_file=csv_file(content))
    )

    html = response.content.decode()
    assert response.status_code == 200, html
    assert counts(html) == {"valid": 5, "duplicates": 1, "malformed": 2, "unknown": 4}
    assert "duplicate ICCID" in html and "ICCID &#x27;12345&#x27; must be 18-22 digits" in html
    assert '<td class="pondops-num">7</td>' in html  # the offending line numbers
    assert "Create and queue 5 devices" in html
    assert BulkChange.objects.count() == 0


def test_confirm_creates_and_queues_the_previewed_bulk_change_once(
    admin_client: Client, console: Console
) -> None:
    numbers = iccids(3)
    html = admin_client.post(
        new_url(console),
        form_data(
            console,
            is_ignore_current_status="on",
            post_update_status="TERMINATED",
            devices_text="\n".join(numbers),
        ),
    ).content.decode()
    token = draft_token(html)

    response = admin_client.post(CONFIRM, {"draft": token})
    again = admin_client.post(CONFIRM, {"draft": token})  # a double click

    bulk_change = BulkChange.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "admin:bulkchanges_bulkchange_change", args=[bulk_change.pk]
    )
    assert again.status_code == 302 and BulkChange.objects.count() == 1
    assert bulk_change.status == BulkChange.Status.QUEUED and bulk_change.queued_at
    assert bulk_change.created_by == "admin:admin"
    assert bulk_change.request["UpdateStatus"] == "SUSPENDED"
    assert bulk_change.request["IsIgnoreCurrentStatus"] is True
    assert bulk_change.request["PostUpdateStatusId"] is not None
    assert bulk_change.request["RevService"] is None
    assert sorted(bulk_change.device_changes.values_list("iccid", flat=True)) == numbers
    followed = admin_client.get(response["Location"]).content.decode()
    assert f"Bulk change {bulk_change.pk} queued: 3 devices to SUSPENDED on POND." in followed
    # The admin's history says who created it (once: the double click created nothing).
    added = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(BulkChange), object_id=str(bulk_change.pk)
    )
    assert [(entry.action_flag, entry.change_message) for entry in added] == [
        (ADDITION, "Created: 3 devices to SUSPENDED on POND, QUEUED")
    ]


def test_rev_service_fields_become_the_requests_rev_service(
    admin_client: Client, console: Console
) -> None:
    html = admin_client.post(
        new_url(console),
        form_data(
            console,
            rev_customer_id="42",
            rev_service_type_id="7",
            rev_products="55 4.50\n56, 1.25",
            rev_prorate="on",
            rev_effective_date="2026-01-31",
            devices_text=iccids(1)[0],
        ),
    ).content.decode()
    assert "open service type 7 for customer 42 with products 55 at 4.50, 56 at 1.25" in html

    admin_client.post(CONFIRM, {"draft": draft_token(html)})

    rev = BulkChange.objects.get().request["RevService"]
    assert rev["RevCustomerId"] == 42 and rev["ServiceTypeId"] == 7
    assert rev["RevProductIdList"] == [55, 56] and rev["RateList"] == ["4.50", "1.25"]
    assert rev["Prorate"] is True and rev["EffectiveDate"] == "2026-01-31"
    assert rev["IntegrationAuthenticationId"] == console.rev.pk  # the tenant's only one


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"update_status": "ACTIVATED"}, "Select a valid choice. ACTIVATED is not one"),
        ({"rev_customer_id": "42"}, "Required for a Rev.io service."),
        ({"rev_customer_id": "42", "rev_service_type_id": "7", "rev_products": "55"}, "Line 1"),
        ({"devices_text": ""}, "Upload a device list or paste one."),
    ],
)
def test_an_invalid_request_is_explained_on_the_form_and_creates_nothing(
    admin_client: Client, console: Console, overrides: dict[str, str], message: str
) -> None:
    data = form_data(console, devices_text=iccids(1)[0])
    data.update(overrides)

    html = admin_client.post(new_url(console), data).content.decode()

    assert "Nothing has been created." in html
    assert message in html
    assert BulkChange.objects.count() == 0


def test_service_validation_errors_land_on_the_form(admin_client: Client, console: Console) -> None:
    IntegrationAuthentication.objects.create(
        tenant=console.tenant,
        integration="THINGSPACE",
        base_url="http://127.0.0.1:9",
        account="acct",
    )
    html = admin_client.post(
        new_url(console, "THINGSPACE"),
        {
            "credentials": IntegrationAuthentication.objects.get(integration="THINGSPACE").pk,
            "update_status": "active",
            "mdn_zip_code": "123",
            "devices_text": iccids(1)[0],
        },
    ).content.decode()

    assert "service_plan is required to activate ThingSpace lines" in html
    assert "mdn_zip_code must be a 5-digit ZIP code" in html
    assert BulkChange.objects.count() == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "the file is binary"),
        ("name,phone\nbob,123\n", "the CSV header has no &#x27;iccid&#x27; column"),
        ("", "The submitted file is empty."),
        ("\n\n  \n", "the device list is empty"),
        (b"\xff\xfe" + "iccid\n".encode("utf-16-le"), "the file is binary"),
        ("caf\xe9\n".encode("latin-1"), "the file is not UTF-8 text"),
        (b"iccid,msisdn\n89148000000000000001," + b"5" * 140_000, "line 2: not a readable CSV"),
    ],
)
def test_a_garbled_file_gets_a_clear_message_and_creates_nothing(
    admin_client: Client, console: Console, content: str | bytes, message: str
) -> None:
    html = admin_client.post(
        new_url(console), form_data(console, devices_file=csv_file(content))
    ).content.decode()

    assert message in html, html[:3000]
    assert "Nothing has been created." in html
    assert BulkChange.objects.count() == 0


def test_a_50_mb_upload_is_refused_with_the_limit_and_creates_nothing(
    admin_client: Client, console: Console
) -> None:
    line = (iccids(1)[0] + "\n").encode()
    huge = line * (50 * 1024 * 1024 // len(line))

    html = admin_client.post(
        new_url(console), form_data(console, devices_file=csv_file(huge))
    ).content.decode()

    assert "The upload is 52,429," in html
    assert "a device list may have at most 8,388,608 bytes" in html
    assert BulkChange.objects.count() == 0


def test_a_10000_line_csv_previews_and_creates_in_seconds(
    admin_client: Client, console: Console, capsys: pytest.CaptureFixture[str]
) -> None:
    content = "iccid\n" + "\n".join(iccids(10_000)) + "\n"

    started = time.monotonic()
    html = admin_client.post(
        new_url(console), form_data(console, devices_file=csv_file(content))
    ).content.decode()
    previewed = time.monotonic()
    response = admin_client.post(CONFIRM, {"draft": draft_token(html)})
    created = time.monotonic()

    assert counts(html)["valid"] == 10_000
    assert response.status_code == 302
    assert DeviceChange.objects.count() == 10_000
    with capsys.disabled():
        print(
            f"\n10,000-line CSV: preview {previewed - started:.2f} s, "
            f"confirm + create {created - previewed:.2f} s"
        )


def test_an_expired_or_foreign_preview_creates_nothing(
    admin_client: Client, console: Console
) -> None:
    response = admin_client.post(CONFIRM, {"draft": "not-a-draft"}, follow=True)

    assert "This preview is no longer available" in response.content.decode()
    assert BulkChange.objects.count() == 0


def test_a_list_without_any_valid_device_cannot_be_confirmed(
    admin_client: Client, console: Console
) -> None:
    html = admin_client.post(
        new_url(console), form_data(console, devices_text="123\n456\n")
    ).content.decode()

    assert counts(html)["malformed"] == 2 and counts(html)["valid"] == 0
    assert 'name="draft"' not in html and "nothing can be created" in html


def test_creating_needs_the_add_permission(
    staff_client: Callable[..., Client], console: Console
) -> None:
    viewer = staff_client("view_bulkchange")
    creator = staff_client("view_bulkchange", "add_bulkchange", username="creator")
    changelist = reverse("admin:bulkchanges_bulkchange_changelist")

    assert viewer.get(NEW).status_code == 403
    assert viewer.post(CONFIRM, {"draft": "x"}).status_code == 403
    assert 'id="pondops-new-bulk-change"' not in viewer.get(changelist).content.decode()
    assert creator.get(new_url(console)).status_code == 200
    assert 'id="pondops-new-bulk-change"' in creator.get(changelist).content.decode()
