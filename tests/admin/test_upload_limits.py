"""Hostile uploads to the new-bulk-change form are form errors, cheaply: a list longer than
BULKCHANGE_MAX_DEVICES_PER_REQUEST is refused while it is read, in bounded memory; a file over
PONDOPS_MAX_UPLOAD_BYTES is refused from Content-Length or while it is read; nothing is
created. The preview keeps the first rejected lines of each kind and the full counts."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from bulkchanges.devicelists import REJECTED_KEPT
from bulkchanges.models import BulkChange, DeviceChange
from tests.admin.conftest import Console
from tests.admin.test_new_bulk_change import counts, csv_file, form_data, new_url
from tests.conftest import iccids
from tests.fixtures.uploads import BOUNDARY, multipart, post_generated

pytestmark = pytest.mark.django_db

MILLION = 1_000_000
MEMORY_BOUND = 60 * 1024 * 1024


def form_fields(console: Console) -> dict[str, str]:
    return {"credentials": str(console.pond.pk), "update_status": "SUSPENDED"}


def file_errors(html: str) -> list[str]:
    block = re.search(r'id="id_devices_file_error"><li>(.*?)</li>', html, re.DOTALL)
    return [block.group(1)] if block else []


def assert_nothing_created() -> None:
    assert BulkChange.objects.count() == 0
    assert DeviceChange.objects.count() == 0


def test_a_million_line_upload_is_a_form_error_in_bounded_memory(
    admin_client: Client, console: Console, settings: Any
) -> None:
    settings.PONDOPS_MAX_UPLOAD_BYTES = 64 * 1024 * 1024  # the device limit refuses it
    body = multipart(form_fields(console), "devices_file", MILLION)

    response, peak = post_generated(
        admin_client, new_url(console), body, f"multipart/form-data; boundary={BOUNDARY}"
    )

    assert file_errors(response.content.decode()) == [
        "The device list has more than 100,000 devices; split the list into bulk changes of "
        "at most 100,000."
    ]
    assert peak < MEMORY_BOUND, f"{peak / 1e6:.0f} MB"
    assert_nothing_created()


def test_an_upload_over_the_byte_cap_is_a_form_error_before_its_file_is_kept(
    admin_client: Client, console: Console, settings: Any
) -> None:
    settings.PONDOPS_MAX_UPLOAD_BYTES = 100_000
    body = multipart(form_fields(console), "devices_file", 20_000)  # 420 KB

    response, peak = post_generated(
        admin_client, new_url(console), body, f"multipart/form-data; boundary={BOUNDARY}"
    )

    assert file_errors(response.content.decode()) == [
        f"The upload is {body.length:,} bytes; a device list may have at most 100,000 bytes "
        "(100,000 devices with MSISDN and EID); split the list into several bulk changes."
    ]
    assert peak < 1024 * 1024, f"{peak / 1e6:.1f} MB"  # its chunks were dropped, not kept
    assert_nothing_created()


def test_a_file_over_the_byte_cap_is_refused_while_it_is_read(
    admin_client: Client, console: Console, settings: Any
) -> None:
    settings.PONDOPS_MAX_UPLOAD_BYTES = 2100
    content = "\n".join(iccids(101)) + "\n"

    html = admin_client.post(
        new_url(console), form_data(console, devices_file=csv_file(content))
    ).content.decode()

    assert file_errors(html) == [
        "The uploaded file is larger than 2,100 bytes; a device list may have at most 2,100 "
        "bytes (100,000 devices with MSISDN and EID); split the list into several bulk changes."
    ]
    assert_nothing_created()


def test_exactly_the_device_limit_previews_and_one_more_is_refused(
    admin_client: Client, console: Console, settings: Any
) -> None:
    settings.BULKCHANGE_MAX_DEVICES_PER_REQUEST = 3
    numbers = iccids(4)

    at_limit = admin_client.post(
        new_url(console), form_data(console, devices_file=csv_file("\n".join(numbers[:3])))
    ).content.decode()
    over = admin_client.post(
        new_url(console), form_data(console, devices_text="\n".join(numbers))
    ).content.decode()

    assert counts(at_limit)["valid"] == 3
    assert "The device list has more than 3 devices; split the list" in over
    assert_nothing_created()


def test_the_preview_counts_every_bad_line_and_shows_the_first(
    admin_client: Client, console: Console
) -> None:
    content = "\n".join([*iccids(2), *(f"bad{n}" for n in range(5000)), iccids(1)[0]])

    html = admin_client.post(
        new_url(console), form_data(console, devices_file=csv_file(content))
    ).content.decode()

    assert counts(html) == {"valid": 2, "duplicates": 1, "malformed": 5000, "unknown": 2}
    assert f"Malformed lines (5000, first {REJECTED_KEPT} shown)" in html
    assert html.count("must be 18-22 digits") == REJECTED_KEPT
