"""POST /api/v1/bulk-changes/ — JSON and CSV upload, validated like the admin, with limits and
Idempotency-Key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from tests.api.conftest import API, Other, Partner, create_body, key_client, partner_key
from tests.conftest import iccids

pytestmark = pytest.mark.django_db

URL = f"{API}/bulk-changes/"


def upload(partner: Partner, content: bytes, *, key: str | None = None, **fields: Any) -> Any:
    data = {"integration": "POND", "target_status": "Suspended", **fields}
    data["file"] = SimpleUploadedFile("devices.csv", content, content_type="text/csv")
    headers: dict[str, Any] = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return partner.client.post(URL, data, format="multipart", **headers)


def assert_error(response: Any, status: int, code: str, *fields: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "detail", "fields"}
    assert body["code"] == code, body
    for name in fields:
        assert name in body["fields"], body
    return body


def test_json_create_queues_a_bulk_change_and_returns_it(
    partner: Partner, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    numbers = iccids(3)
    with django_capture_on_commit_callbacks(execute=True):
        response = partner.client.post(
            URL,
            create_body(
                numbers,
                target_status="suspended",
                devices=[
                    {"iccid": numbers[0], "msisdn": "15551234567"},
                    {"iccid": numbers[1], "eid": "1" * 32},
                    {"iccid": numbers[2]},
                ],
            ),
        )

    assert response.status_code == 201, response.content
    body = response.json()
    bulk_change = BulkChange.objects.get(pk=body["id"])
    assert response["Location"] == f"{API}/bulk-changes/{bulk_change.pk}/"
    assert body["status"] == "QUEUED" and body["target_status"] == "SUSPENDED"
    assert body["tenant"] == partner.tenant.pk and body["integration"] == "POND"
    assert body["created_by"] == "api:acme-api"
    assert body["progress"]["total"] == 3 and body["progress"]["counts"]["PENDING"] == 3
    assert body["webhook"] is None
    assert list(
        DeviceChange.objects.filter(bulk_change=bulk_change).values_list("iccid", "msisdn", "eid")
    ) == [(numbers[0], "15551234567", ""), (numbers[1], "", "1" * 32), (numbers[2], "", "")]
    assert [message.bulk_change_id for message in sent] == [bulk_change.pk]


def test_create_with_rev_service_defaults_to_the_tenants_rev_credentials(
    partner: Partner,
) -> None:
    rev_service = {
        "customer_id": 42,
        "service_type_id": 7,
        "products": [{"product_id": 55, "rate": "4.50"}, {"product_id": 56, "rate": "1"}],
        "activated_date": "2025-01-31",
        "prorate": True,
    }
    response = partner.client.post(URL, create_body(iccids(2), rev_service=rev_service))

    assert response.status_code == 201, response.content
    stored = BulkChange.objects.get(pk=response.json()["id"]).request["RevService"]
    assert stored["IntegrationAuthenticationId"] == partner.world.rev.pk
    assert stored["RevProductIdList"] == [55, 56]
    assert stored["RateList"] == ["4.5000", "1.0000"]
    assert stored["ActivatedDate"] == "2025-01-31" and stored["Prorate"] is True


@pytest.mark.parametrize(
    ("overrides", "status", "code", "field"),
    [
        ({"integration": "REV"}, 400, "invalid", "integration"),
        ({"integration": "NOKIA"}, 400, "invalid", "integration"),
        ({"target_status": "Exploded"}, 400, "invalid", "update_status"),
        ({"target_status": ""}, 400, "invalid", "target_status"),
        ({"post_update_status": "NOPE"}, 400, "invalid", "post_update_status"),
        ({"credentials": 999999}, 400, "invalid", "credentials"),
        ({"devices": []}, 400, "invalid", "devices"),
        ({"devices": "8914800000000000000"}, 400, "invalid", "devices"),
        ({"devices": [{"iccid": 8914800000000000000}]}, 400, "invalid", "devices"),
        ({"devices": [{"iccid": "123"}]}, 400, "invalid", "devices"),
        (
            {"devices": [{"iccid": "89148000000000000001", "msisdn": "12"}]},
            400,
            "invalid",
            "devices",
        ),
        (
            {"devices": [{"iccid": "89148000000000000001"}, {"iccid": "89148000000000000001"}]},
            400,
            "invalid",
            "devices",
        ),
        ({"rev_service": {"customer_id": 42}}, 400, "invalid", "rev_service.service_type_id"),
        (
            {"rev_service": {"customer_id": 42, "service_type_id": 7, "credentials": 999999}},
            400,
            "invalid",
            "rev_service",
        ),
        ({"options": "not json"}, 400, "invalid", "options"),
        ({"callback_url": "http://partner.example/hook"}, 400, "invalid", "callback_url"),
        ({"callback_url": "https://user:pw@partner.example/hook"}, 400, "invalid", "callback_url"),
        ({"callback_url": "not a url"}, 400, "invalid", "callback_url"),
    ],
)
def test_invalid_requests_are_400_with_the_field_named(
    partner: Partner, overrides: dict[str, Any], status: int, code: str, field: str
) -> None:
    response = partner.client.post(URL, create_body(iccids(2), **overrides))

    assert_error(response, status, code, field)
    assert BulkChange.objects.count() == 0


def test_a_malformed_line_is_reported_by_line_number(partner: Partner) -> None:
    devices = [{"iccid": n} for n in iccids(3)] + [{"iccid": "89-bad"}]
    body = assert_error(
        partner.client.post(URL, create_body([], devices=devices)), 400, "invalid", "devices"
    )
    assert body["fields"]["devices"] == ["line 4: ICCID '89-bad' must be 18-22 digits"]


def test_an_iccid_in_non_ascii_digits_is_refused_not_passed_to_the_carrier(
    partner: Partner,
) -> None:
    [ascii_iccid] = iccids(1)
    fullwidth = ascii_iccid.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})
    devices = [{"iccid": ascii_iccid}, {"iccid": fullwidth}]
    response = partner.client.post(URL, create_body([], devices=devices), format="json")
    body = assert_error(response, 400, "invalid", "devices")
    assert body["fields"]["devices"] == [f"line 2: ICCID {fullwidth!r} must be 18-22 digits"]
    assert BulkChange.objects.count() == 0


def test_thingspace_activation_options_are_checked_at_creation(
    partner: Partner,
) -> None:
    from bulkchanges.models import IntegrationAuthentication

    IntegrationAuthentication.objects.create(
        tenant=partner.tenant, integration="THINGSPACE", base_url="https://ts.example", secret="s"
    )
    body = create_body(iccids(1), integration="THINGSPACE", target_status="active")
    error = assert_error(partner.client.post(URL, body), 400, "invalid", "options")
    assert "service_plan is required" in " ".join(error["fields"]["options"])

    body["options"] = {"service_plan": "M2M", "mdn_zip_code": "30301", "etf_waiver": True}
    response = partner.client.post(URL, body)
    assert response.status_code == 201, response.content
    assert BulkChange.objects.get().request["ServicePlan"] == "M2M"


def test_a_loopback_http_callback_is_accepted_only_as_an_extra_webhook_origin(
    partner: Partner, settings: Any
) -> None:
    body = create_body(iccids(1), callback_url="http://127.0.0.1:9/hook")
    settings.DEBUG = True  # makes no difference
    settings.PONDOPS_WEBHOOK_EXTRA_ORIGINS = []
    assert_error(partner.client.post(URL, body), 400, "invalid", "callback_url")
    https_private = create_body(iccids(1), callback_url="https://10.1.2.3/hook")
    assert_error(partner.client.post(URL, https_private), 400, "invalid", "callback_url")

    settings.DEBUG = False
    settings.PONDOPS_WEBHOOK_EXTRA_ORIGINS = ["http://127.0.0.1:*"]
    response = partner.client.post(URL, body)
    assert response.status_code == 201, response.content
    assert response.json()["callback_url"] == "http://127.0.0.1:9/hook"


def test_https_callback_is_stored(partner: Partner) -> None:
    body = create_body(iccids(1), callback_url="https://partner.example/hooks?x=1")
    response = partner.client.post(URL, body)
    assert response.status_code == 201
    assert BulkChange.objects.get().callback_url == "https://partner.example/hooks?x=1"


def test_too_many_devices_is_413(partner: Partner, settings: Any) -> None:
    settings.BULKCHANGE_MAX_DEVICES_PER_REQUEST = 3
    assert_error(partner.client.post(URL, create_body(iccids(4))), 413, "too_many_devices")
    csv = ("iccid\n" + "\n".join(iccids(4))).encode()
    assert_error(upload(partner, csv), 413, "too_many_devices")
    assert partner.client.post(URL, create_body(iccids(3))).status_code == 201


def test_a_body_over_the_size_limit_is_413_before_it_is_read(
    partner: Partner, settings: Any
) -> None:
    settings.PONDOPS_API_MAX_BODY_BYTES = 200
    body = assert_error(partner.client.post(URL, create_body(iccids(10))), 413, "request_too_large")
    assert "at most 200" in body["detail"]


def test_malformed_json_and_unsupported_media_types_are_json_errors(partner: Partner) -> None:
    broken = partner.client.post(URL, b'{"integration": ', content_type="application/json")
    assert_error(broken, 400, "parse_error")
    form = partner.client.post(URL, "a=b", content_type="application/x-www-form-urlencoded")
    assert_error(form, 415, "unsupported_media_type")


def test_a_key_creates_in_its_own_tenant_and_cannot_name_another(
    partner: Partner, other: Other
) -> None:
    staff = key_client(partner_key("ops", partner.tenant, staff=True, superuser=True))
    response = staff.post(URL, create_body(iccids(1)))
    assert response.status_code == 201, response.content
    assert response.json()["tenant"] == partner.tenant.pk
    assert response.json()["created_by"] == "api:ops"
    assert_error(staff.post(URL, create_body(iccids(1), tenant=other.tenant.pk)), 404, "not_found")

    probe = partner.client.post(URL, create_body(iccids(1), tenant=other.tenant.pk))
    assert_error(probe, 404, "not_found")
    own = partner.client.post(URL, create_body(iccids(1), tenant=partner.tenant.pk))
    assert own.status_code == 201


# --- CSV uploads -----------------------------------------------------------------------------


def _csv_cases() -> list[tuple[str, bytes, list[tuple[str, str, str]]]]:
    a, b, c = iccids(3)
    return [
        ("bom", f"\ufefficcid\n{a}\n{b}\n".encode(), [(a, "", ""), (b, "", "")]),
        (
            "crlf",
            f"iccid,msisdn\r\n{a},15550000001\r\n{b},\r\n".encode(),
            [(a, "15550000001", ""), (b, "", "")],
        ),
        (
            "extra columns in any order",
            f"note,MSISDN,ICCID,site\nx,15550000001,{a},north\ny,,{b},south\n".encode(),
            [(a, "15550000001", ""), (b, "", "")],
        ),
        (
            "quoted fields",
            (
                '"iccid","msisdn","note"\n'
                f'"{a}","15550000001","has, a comma"\n'
                f'" {b} ","","q ""x"""\n'
            ).encode(),
            [(a, "15550000001", ""), (b, "", "")],
        ),
        (
            "bare list with blank lines",
            f"{a}\n\n{b}\n{c}\n\n".encode(),
            [(a, "", ""), (b, "", ""), (c, "", "")],
        ),
        ("eid column", f"iccid,eid\n{a},{'7' * 32}\n".encode(), [(a, "", "7" * 32)]),
    ]


@pytest.mark.parametrize(
    ("name", "content", "expected"), _csv_cases(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_csv_uploads_are_read_by_the_one_parser(
    partner: Partner, name: str, content: bytes, expected: list[tuple[str, str, str]]
) -> None:
    response = upload(partner, content)

    assert response.status_code == 201, response.content
    bulk_change = BulkChange.objects.get(pk=response.json()["id"])
    assert (
        list(
            DeviceChange.objects.filter(bulk_change=bulk_change)
            .order_by("id")
            .values_list("iccid", "msisdn", "eid")
        )
        == expected
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\n\r\n  \n", "empty"),
        ("iccid\n8914800000000000000\u00e9\n".encode("latin-1"), "not UTF-8"),
        (b"\x00\x01binary\x00", "binary"),
        (b"name,phone\nx,y\n", "no 'iccid' column"),
        (b"iccid,msisdn\n89148000000000000001," + b"5" * 140_000, "line 2"),
    ],
)
def test_unreadable_csv_uploads_are_400(partner: Partner, content: bytes, message: str) -> None:
    body = assert_error(upload(partner, content), 400, "invalid", "file")
    assert message in body["detail"]


def test_csv_duplicates_and_malformed_lines_are_refused_by_line(partner: Partner) -> None:
    a, b = iccids(2)
    body = assert_error(
        upload(partner, f"iccid\n{a}\n{b}\n{a}\nnope\n".encode()), 400, "invalid", "file"
    )
    assert body["fields"]["file"] == [
        "line 4: duplicate ICCID",
        "line 5: ICCID 'nope' must be 18-22 digits",
    ]


def test_multipart_takes_options_and_rev_service_as_json_parts(partner: Partner) -> None:
    a = iccids(1)[0]
    response = upload(
        partner,
        f"iccid\n{a}\n".encode(),
        rev_service='{"customer_id": 42, "service_type_id": 7}',
        options="{}",
        is_ignore_current_status="true",
    )
    assert response.status_code == 201, response.content
    request = BulkChange.objects.get().request
    assert request["RevService"]["RevCustomerId"] == 42
    assert request["IsIgnoreCurrentStatus"] is True


def test_multipart_without_a_file_is_400(partner: Partner) -> None:
    response = partner.client.post(
        URL, {"integration": "POND", "target_status": "Suspended"}, format="multipart"
    )
    assert_error(response, 400, "invalid", "file")


# --- Idempotency -----------------------------------------------------------------------------


def test_same_key_and_body_returns_the_original_with_200(partner: Partner) -> None:
    body = create_body(iccids(3))
    first = partner.client.post(URL, body, HTTP_IDEMPOTENCY_KEY="order-17")
    again = partner.client.post(URL, body, HTTP_IDEMPOTENCY_KEY="order-17")

    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert BulkChange.objects.count() == 1
    assert BulkChange.objects.get().idempotency_key == "order-17"


def test_the_same_request_as_csv_or_reordered_json_is_the_same_request(partner: Partner) -> None:
    numbers = iccids(2)
    first = partner.client.post(URL, create_body(numbers), HTTP_IDEMPOTENCY_KEY="k1")
    reordered = {"devices": [{"iccid": n} for n in numbers], "target_status": "SUSPENDED"}
    reordered["integration"] = "POND"
    again = partner.client.post(URL, reordered, HTTP_IDEMPOTENCY_KEY="k1")
    as_csv = upload(partner, ("iccid\r\n" + "\r\n".join(numbers)).encode(), key="k1")

    assert first.status_code == 201
    assert (again.status_code, as_csv.status_code) == (200, 200)
    assert again.json()["id"] == as_csv.json()["id"] == first.json()["id"]


def test_same_key_with_a_different_body_is_409(partner: Partner) -> None:
    partner.client.post(URL, create_body(iccids(2)), HTTP_IDEMPOTENCY_KEY="k2")
    changed = partner.client.post(URL, create_body(iccids(3)), HTTP_IDEMPOTENCY_KEY="k2")
    other_status = partner.client.post(
        URL, create_body(iccids(2), target_status="Active"), HTTP_IDEMPOTENCY_KEY="k2"
    )

    assert_error(changed, 409, "idempotency_key_reused", "Idempotency-Key")
    assert_error(other_status, 409, "idempotency_key_reused")
    assert BulkChange.objects.count() == 1


def test_a_repeat_returns_the_original_even_when_it_would_no_longer_validate(
    partner: Partner,
) -> None:
    body = create_body(iccids(2))
    first = partner.client.post(URL, body, HTTP_IDEMPOTENCY_KEY="k3")
    partner.world.pond.is_active = False
    partner.world.pond.save()

    again = partner.client.post(URL, body, HTTP_IDEMPOTENCY_KEY="k3")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


def test_keys_are_scoped_per_tenant(partner: Partner, other: Other) -> None:
    body = create_body(iccids(2))
    mine = partner.client.post(URL, body, HTTP_IDEMPOTENCY_KEY="shared-key")
    theirs = other.client.post(URL, body, HTTP_IDEMPOTENCY_KEY="shared-key")

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert theirs.json()["tenant"] == other.tenant.pk


def test_an_overlong_key_is_400(partner: Partner) -> None:
    response = partner.client.post(URL, create_body(iccids(1)), HTTP_IDEMPOTENCY_KEY="k" * 201)
    assert_error(response, 400, "invalid", "Idempotency-Key")


def test_keys_outlive_a_day(partner: Partner) -> None:
    """Keys are kept as long as their bulk change: nothing expires them after 24 h."""
    from datetime import timedelta

    from django.utils import timezone

    body = create_body(iccids(1))
    first = partner.client.post(URL, body, HTTP_IDEMPOTENCY_KEY="old-key")
    BulkChange.objects.update(created_at=timezone.now() - timedelta(days=3))
    again = partner.client.post(URL, body, HTTP_IDEMPOTENCY_KEY="old-key")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


def test_no_log_or_device_rows_are_written_for_a_refused_request(partner: Partner) -> None:
    partner.client.post(URL, create_body(iccids(2), target_status="Exploded"))
    assert BulkChangeLog.objects.count() == DeviceChange.objects.count() == 0


def test_a_json_create_larger_than_djangos_in_memory_default_is_accepted(
    partner: Partner,
) -> None:
    # 80,000 devices: 2.8 MB of JSON, over Django's 2.5 MB DATA_UPLOAD_MAX_MEMORY_SIZE default
    # and well under PONDOPS_API_MAX_BODY_BYTES, the API's own limit.
    raw = json.dumps(create_body(iccids(80_000)))
    assert len(raw) > 2.5 * 1024 * 1024
    response = partner.client.post(URL, raw, content_type="application/json")
    assert response.status_code == 201, response.content[:500]
    assert DeviceChange.objects.count() == 80_000


@pytest.mark.parametrize("depth", [17, 50_000])
def test_json_nested_deeper_than_any_request_is_a_400(partner: Partner, depth: int) -> None:
    raw = '{"integration": "POND", "devices": ' + "[" * depth + "]" * depth + "}"
    response = partner.client.post(URL, raw, content_type="application/json")
    body = assert_error(response, 400, "parse_error")
    assert "nested more than 16 levels deep" in body["detail"]
    assert BulkChange.objects.count() == 0
