"""Hostile uploads to POST /api/v1/bulk-changes/ are 4xx, cheaply: a list longer than
BULKCHANGE_MAX_DEVICES_PER_REQUEST is refused while it is read, in bounded memory, whatever its
size; a file over PONDOPS_MAX_UPLOAD_BYTES is a 413 (from Content-Length, or while reading);
JSON form fields nest no deeper than a JSON body may. Nothing is half-created."""

from __future__ import annotations

from typing import Any

import pytest

from bulkchanges.models import BulkChange, DeviceChange
from bulkchanges.uploads import FORM_FIELDS_BYTES
from tests.api.conftest import API, Partner, create_body
from tests.api.test_create import assert_error, upload
from tests.conftest import iccids
from tests.fixtures.uploads import BOUNDARY, json_create, multipart, post_generated

pytestmark = pytest.mark.django_db

URL = f"{API}/bulk-changes/"
MILLION = 1_000_000
# What parsing may allocate for a refused list: the devices up to the limit (100,000) and a
# chunk or two. Building the list in memory would take 250-400 MB.
MEMORY_BOUND = 60 * 1024 * 1024
TOO_MANY = "more than 100,000 devices; split the list into bulk changes of at most 100,000"


@pytest.fixture
def big_caps(settings: Any) -> None:
    """Byte caps above a million-line list, so that the device limit is what refuses it."""
    settings.PONDOPS_API_MAX_BODY_BYTES = 64 * 1024 * 1024
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024 * 1024
    settings.PONDOPS_MAX_UPLOAD_BYTES = 64 * 1024 * 1024


def assert_nothing_created() -> None:
    assert BulkChange.objects.count() == 0
    assert DeviceChange.objects.count() == 0


def test_a_million_device_json_create_is_refused_while_streaming(
    partner: Partner, big_caps: None
) -> None:
    body = json_create(MILLION)

    response, peak = post_generated(partner.client, URL, body, "application/json")

    assert_error(response, 413, "too_many_devices", "devices")
    assert response.json()["detail"] == TOO_MANY
    assert peak < MEMORY_BOUND, f"{peak / 1e6:.0f} MB"
    assert body.bytes_read < body.length / 5  # it stopped at device 100,001 of 1,000,001
    assert_nothing_created()


def test_a_million_line_csv_upload_is_refused_in_bounded_memory(
    partner: Partner, big_caps: None
) -> None:
    body = multipart({"integration": "POND", "target_status": "Suspended"}, "file", MILLION)

    response, peak = post_generated(
        partner.client, URL, body, f"multipart/form-data; boundary={BOUNDARY}"
    )

    error = assert_error(response, 413, "too_many_devices", "file")
    assert error["detail"] == TOO_MANY
    assert peak < MEMORY_BOUND, f"{peak / 1e6:.0f} MB"
    assert_nothing_created()


def test_an_upload_over_the_byte_cap_is_413_from_its_content_length(
    partner: Partner, settings: Any
) -> None:
    settings.PONDOPS_MAX_UPLOAD_BYTES = 1000
    body = multipart({"integration": "POND", "target_status": "Suspended"}, "file", MILLION)

    response, peak = post_generated(
        partner.client, URL, body, f"multipart/form-data; boundary={BOUNDARY}"
    )

    error = assert_error(response, 413, "request_too_large")
    assert f"at most {1000 + FORM_FIELDS_BYTES:,} are accepted" in error["detail"]
    assert body.bytes_read == 0 and peak < 1024 * 1024
    assert_nothing_created()


def test_a_file_over_the_byte_cap_is_413_while_it_is_read(partner: Partner, settings: Any) -> None:
    # The body is within the cap plus the room for form fields, so only the file's own bytes,
    # counted as they arrive, refuse it.
    settings.PONDOPS_MAX_UPLOAD_BYTES = 2100
    content = ("\n".join(iccids(101)) + "\n").encode()
    assert len(content) > 2100

    error = assert_error(upload(partner, content), 413, "request_too_large", "file")

    assert "the uploaded file is larger than 2,100 bytes" in error["detail"]
    assert "split the list" in error["detail"]
    assert_nothing_created()


def test_exactly_the_device_limit_is_accepted_in_either_form(
    partner: Partner, settings: Any
) -> None:
    settings.BULKCHANGE_MAX_DEVICES_PER_REQUEST = 3
    csv = ("iccid\n" + "\n".join(iccids(3, start=10)) + "\n").encode()

    assert partner.client.post(URL, create_body(iccids(3))).status_code == 201
    assert upload(partner, csv).status_code == 201
    too_many = assert_error(upload(partner, csv + iccids(1)[0].encode()), 413, "too_many_devices")
    assert too_many["detail"].startswith("more than 3 devices; split the list")


@pytest.mark.parametrize("name", ["rev_service", "options"])
def test_a_deeply_nested_json_form_field_is_400_naming_the_field(
    partner: Partner, name: str
) -> None:
    for depth in (17, 100_000):  # over the bound; past Python's recursion limit
        deep = "[" * depth + "]" * depth
        response = upload(partner, f"iccid\n{iccids(1)[0]}\n".encode(), **{name: deep})

        error = assert_error(response, 400, "invalid", name)
        assert "nested more than 16 levels deep" in error["fields"][name][0]
    assert_nothing_created()


def test_only_the_first_20_bad_lines_are_listed_with_the_total(partner: Partner) -> None:
    content = ("iccid\n" + "\n".join(f"bad{n}" for n in range(5000)) + "\n").encode()

    error = assert_error(upload(partner, content), 400, "invalid", "file")

    assert len(error["fields"]["file"]) == 21
    assert error["fields"]["file"][0] == "line 2: ICCID 'bad0' must be 18-22 digits"
    assert error["fields"]["file"][-1] == "and 4,980 more"
    assert error["detail"].startswith("5,000 malformed and 0 duplicate device lines")


def test_a_json_device_or_value_too_long_to_be_one_is_400(partner: Partner) -> None:
    body = b'{"integration": "POND", "devices": [{"iccid": "' + b"8" * 70_000 + b'"}]}'

    response = partner.client.post(URL, body, content_type="application/json")

    error = assert_error(response, 400, "parse_error")
    assert "longer than 65,536 characters" in error["detail"]


def test_a_streamed_json_body_keeps_the_json_parsers_answers(partner: Partner) -> None:
    numbers = iccids(2)
    pretty = (
        '\n{ "integration" : "POND",\r\n "target_status": "Suspended", "credentials": '
        f'{partner.world.pond.pk}, "devices" : [ {{"iccid": "{numbers[0]}"}} ,\n'
        f'{{"iccid": "{numbers[1]}", "msisdn": "15551234567"}} ] }}\n'
    )
    assert partner.client.post(URL, pretty, content_type="application/json").status_code == 201
    for broken in ('{"integration": "POND"} x', '{"devices": [1 2]}', "{1: 2}", "[1,"):
        response = partner.client.post(URL, broken, content_type="application/json")
        assert_error(response, 400, "parse_error")
    not_an_object = partner.client.post(URL, "[1, 2]", content_type="application/json")
    assert_error(not_an_object, 400, "invalid")
