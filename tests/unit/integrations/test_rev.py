"""Rev.io request parsing and steps against docs/carriers/rev.md: the legacy request, and
at-most-once creation of services and service products. Every call on the wire, paging and
every documented answer are test_rev_contract.py; the HTTP mechanism (timeouts, Retry-After,
audit records, …) is test_http.py."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import responses

from integrations.base import (
    CallRecord,
    Credentials,
    PermanentError,
    Progress,
    Step,
    TransientError,
)
from integrations.rev import RevClient, RevProcessor
from integrations.rev_request import RevProduct, RevServiceRequest
from tests.unit.integrations.rev_support import (
    ICCID,
    MSISDN,
    PASSWORD,
    collection,
    context,
    product_record,
    service_record,
)
from tests.unit.integrations.support import sent, sent_json

BASE_URL = "https://rev.example.test/api"
SERVICES_URL = f"{BASE_URL}/v1/Services"
SERVICE_PRODUCTS_URL = f"{BASE_URL}/v1/ServiceProducts"
CREDENTIALS = Credentials(
    integration_authentication_id=9,
    integration="REV",
    base_url=BASE_URL,
    account="acme",
    username="api-user",
    secret=PASSWORD,
)


@pytest.fixture
def client(audit: list[CallRecord]) -> RevClient:
    return RevClient(credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1))


@pytest.fixture
def processor(audit: list[CallRecord]) -> RevProcessor:
    return RevProcessor(credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1))


def rev_request(**overrides: Any) -> RevServiceRequest:
    values: dict[str, Any] = {
        "customer_id": 42,
        "service_type_id": 7,
        "integration_authentication_id": 9,
        "provider_id": 3,
    }
    values.update(overrides)
    return RevServiceRequest(**values)


# --- RevServiceRequest -----------------------------------------------------------------------


def test_from_legacy_reads_the_legacy_keys_and_ignores_the_rest() -> None:
    legacy = {
        "Number": ICCID,
        "ICCID": ICCID,
        "RevCustomerId": "42",
        "DeviceId": 1001,
        "CreateRevService": True,
        "ServiceTypeId": 7,
        "ProviderId": 3,
        "ActivatedDate": "2026-11-20T00:00:00",
        "EffectiveDate": "2026-11-21",
        "Prorate": True,
        "UsagePlanGroupId": 15,
        "RevPackageId": None,
        "RevProductIdList": [55, 56],
        "RateList": [4.5, "10.25"],
        "Description": "fleet",
        "IntegrationAuthenticationId": 9,
    }

    assert RevServiceRequest.from_legacy(legacy) == RevServiceRequest(
        customer_id=42,
        service_type_id=7,
        integration_authentication_id=9,
        provider_id=3,
        activated_date=date(2026, 11, 20),
        effective_date=date(2026, 11, 21),
        prorate=True,
        usage_plan_group_id=15,
        package_id=None,
        products=(
            RevProduct(product_id=55, rate=Decimal("4.5")),
            RevProduct(product_id=56, rate=Decimal("10.25")),
        ),
    )


def test_from_legacy_takes_a_single_product_and_keys_in_any_case() -> None:
    legacy = {
        "revcustomerid": 42,
        "SERVICETYPEID": 7,
        "integrationAuthenticationId": 9,
        "revProductId": 55,
        "rate": "4.50",
        "prorate": "False",
    }

    parsed = RevServiceRequest.from_legacy(legacy)

    assert parsed.products == (RevProduct(product_id=55, rate=Decimal("4.50")),)
    assert parsed.prorate is False
    assert parsed.provider_id is None
    assert parsed.activated_date is None


def test_from_legacy_prefers_a_non_empty_list_to_the_single_product() -> None:
    parsed = RevServiceRequest.from_legacy(
        {
            "RevCustomerId": 42,
            "ServiceTypeId": 7,
            "IntegrationAuthenticationId": 9,
            "RevProductId": 55,
            "Rate": 1,
            "RevProductIdList": [56],
            "RateList": [2],
        }
    )

    assert parsed.products == (RevProduct(product_id=56, rate=Decimal(2)),)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-22", date(2026, 11, 22)),
        ("2026-11-22Z", date(2026, 11, 22)),
        ("2026-11-22T00:00:00", date(2026, 11, 22)),
        ("2026-11-22T13:45:00Z", date(2026, 11, 22)),
        ("2026-11-22T13:45:00.123+00:00", date(2026, 11, 22)),
        (None, None),
        ("", None),
    ],
)
def test_from_legacy_reads_dates_in_the_legacy_forms(value: Any, expected: date | None) -> None:
    parsed = RevServiceRequest.from_legacy(
        {
            "RevCustomerId": 42,
            "ServiceTypeId": 7,
            "IntegrationAuthenticationId": 9,
            "ActivatedDate": value,
        }
    )

    assert parsed.activated_date == expected


def test_from_legacy_treats_zero_optional_ids_as_absent() -> None:
    parsed = RevServiceRequest.from_legacy(
        {
            "RevCustomerId": 42,
            "ServiceTypeId": 7,
            "IntegrationAuthenticationId": 9,
            "ProviderId": 0,
            "UsagePlanGroupId": 0,
            "RevPackageId": 0,
            "RevProductId": 0,
        }
    )

    assert (parsed.provider_id, parsed.usage_plan_group_id, parsed.package_id) == (None,) * 3
    assert parsed.products == ()


VALID = {"RevCustomerId": 42, "ServiceTypeId": 7, "IntegrationAuthenticationId": 9}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"RevCustomerId": None}, "RevCustomerId is required", id="no-customer"),
        pytest.param({"ServiceTypeId": "seven"}, "ServiceTypeId must be a whole", id="bad-int"),
        pytest.param({"ServiceTypeId": True}, "ServiceTypeId must be a whole", id="bool-id"),
        pytest.param({"RevCustomerId": -1}, "RevCustomerId must be a positive", id="negative"),
        pytest.param(
            {"IntegrationAuthenticationId": None},
            "IntegrationAuthenticationId is required",
            id="no-credentials",
        ),
        pytest.param(
            {"RevProductIdList": [55, 56], "RateList": [4.5]},
            "RevProductIdList and RateList must have the same length (2 products, 1 rates)",
            id="list-mismatch",
        ),
        pytest.param(
            {"RateList": [4.5]},
            "RevProductIdList and RateList must have the same length (0 products, 1 rates)",
            id="rates-without-products",
        ),
        pytest.param(
            {"RevProductIdList": [55, 55], "RateList": [1, 2]},
            "names a product more than once: [55]",
            id="duplicate-product",
        ),
        pytest.param(
            {"RevProductIdList": [55], "RateList": ["cheap"]},
            "RateList[0] must be a number",
            id="bad-rate",
        ),
        pytest.param(
            {"RevProductIdList": [55], "RateList": ["-1"]},
            "RateList[0] must be a non-negative number",
            id="negative-rate",
        ),
        pytest.param(
            {"RevProductIdList": [None], "RateList": [1]},
            "RevProductIdList[0] is required",
            id="null-product",
        ),
        pytest.param({"RevProductId": 55}, "RevProductId 55 needs a Rate", id="no-rate"),
        pytest.param({"Rate": 4.5}, "Rate is given without RevProductId", id="rate-only"),
        pytest.param({"ActivatedDate": "22/11/2026"}, "ActivatedDate must be a date", id="date"),
        pytest.param({"Prorate": "maybe"}, "Prorate must be true or false", id="prorate"),
        pytest.param({"RevProductIdList": 55, "RateList": 1}, "must be a list", id="not-list"),
        pytest.param(
            {"revcustomerid": 43}, "conflicting values for revcustomerid", id="case-conflict"
        ),
    ],
)
def test_from_legacy_refuses_bad_input_with_a_clear_message(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        RevServiceRequest.from_legacy({**VALID, **changes})


def test_from_legacy_refuses_a_non_object() -> None:
    with pytest.raises(ValueError, match="RevService must be a JSON object"):
        RevServiceRequest.from_legacy([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "original",
    [
        rev_request(),
        rev_request(
            provider_id=None,
            activated_date=date(2026, 1, 2),
            effective_date=date(2026, 1, 3),
            prorate=True,
            usage_plan_group_id=15,
            products=(RevProduct(55, Decimal("4.50")), RevProduct(56, Decimal("0.0001"))),
        ),
        rev_request(package_id=300),
    ],
)
def test_to_legacy_round_trips_through_json(original: RevServiceRequest) -> None:
    legacy = json.loads(json.dumps(original.to_legacy()))

    assert RevServiceRequest.from_legacy(legacy) == original


# --- Client -------------------------------------------------------------------------------


def test_ok_false_on_a_lookup_is_a_permanent_error(
    client: RevClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(SERVICES_URL, json={"ok": False, "message": "search.number is required"})

    with pytest.raises(
        PermanentError, match=re.escape("HTTP 200 from Rev.io: search.number is required")
    ):
        client.find_service(number=MSISDN, customer_id=42)


# --- Processor: the Rev service --------------------------------------------------------------


def test_an_existing_service_is_recorded_without_creating_one(
    processor: RevProcessor, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(SERVICES_URL, json=collection([service_record(812)]))

    result = processor.perform(Step.REV_SERVICE, context(), rev_request())

    assert result.step is Step.REV_SERVICE
    assert result.updates == {"rev_service_id": 812}
    assert [call.method for call in audit] == ["GET"]


def test_a_missing_service_is_created_once_with_the_carrier_day(
    processor: RevProcessor, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(SERVICES_URL, json=collection([]))
    mocked.post(SERVICES_URL, status=201, json={"ok": True, "id": 812})

    result = processor.perform(
        Step.REV_SERVICE,
        context(),
        rev_request(usage_plan_group_id=15, effective_date=date(2026, 12, 1)),
    )

    assert result.updates == {"rev_service_id": 812}
    assert (
        sent(mocked, 0).url
        == f"{SERVICES_URL}?search.number={MSISDN}&search.customer_id=42&page_size=100"
    )
    create = sent(mocked, 1)
    assert create.headers["Idempotency-Key"] == "pondops-77-rev_service"
    assert sent_json(create) == {
        "customer_id": 42,
        "service_type_id": 7,
        "number": MSISDN,
        "number2": ICCID,
        "provider_id": 3,
        "activated_date": "2026-11-22Z",
        "effective_date": None,  # not prorated: no effective date even when one is given
        "usage_plan_group_id": 15,
        "package_id": None,
    }
    assert [call.description for call in audit] == ["Find Rev.io service", "Create Rev.io service"]


def test_a_device_without_msisdn_uses_its_iccid_as_number_and_today_without_a_carrier_day(
    processor: RevProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(SERVICES_URL, json=collection([]))
    mocked.post(SERVICES_URL, status=201, json={"ok": True, "id": 812})

    processor.perform(
        Step.REV_SERVICE, context(msisdn="", today=None), rev_request(provider_id=None)
    )

    assert (
        sent(mocked, 0).url
        == f"{SERVICES_URL}?search.number={ICCID}&search.customer_id=42&page_size=100"
    )
    body = sent_json(sent(mocked, 1))
    assert (body["number"], body["number2"]) == (ICCID, ICCID)
    assert body["provider_id"] is None
    assert body["activated_date"] == f"{datetime.now(UTC).date().isoformat()}Z"


def test_the_request_dates_win_and_a_prorated_service_sends_its_effective_date(
    processor: RevProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(SERVICES_URL, json=collection([]))
    mocked.post(SERVICES_URL, status=201, json={"ok": True, "id": 812})

    processor.perform(
        Step.REV_SERVICE,
        context(),
        rev_request(
            activated_date=date(2026, 11, 1),
            effective_date=date(2026, 11, 15),
            prorate=True,
            package_id=300,
        ),
    )

    body = sent_json(sent(mocked, 1))
    assert body["activated_date"] == "2026-11-01Z"
    assert body["effective_date"] == "2026-11-15Z"
    assert body["package_id"] == 300


def test_a_recorded_service_id_is_returned_without_any_call(
    processor: RevProcessor, mocked: responses.RequestsMock
) -> None:
    result = processor.perform(
        Step.REV_SERVICE, context(progress=Progress(rev_service_id=812)), rev_request()
    )

    assert result.updates == {"rev_service_id": 812}
    assert len(mocked.calls) == 0


def test_a_failed_create_fails_the_step(
    processor: RevProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(SERVICES_URL, json=collection([]))
    mocked.post(SERVICES_URL, status=200, json={"ok": False, "message": "Customer 42 not found"})

    with pytest.raises(PermanentError, match="Customer 42 not found"):
        processor.perform(Step.REV_SERVICE, context(), rev_request())


# --- Processor: service products -------------------------------------------------------------

THREE_PRODUCTS = (
    RevProduct(55, Decimal("4.50")),
    RevProduct(56, Decimal("10")),
    RevProduct(57, Decimal("0.99")),
)


def test_only_missing_service_products_are_created(
    processor: RevProcessor, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(SERVICE_PRODUCTS_URL, json=collection([product_record(9901, 55)]))
    mocked.post(SERVICE_PRODUCTS_URL, status=201, json={"ok": True, "id": 9902})
    mocked.post(SERVICE_PRODUCTS_URL, status=201, json={"ok": True, "id": 9903})

    result = processor.perform(
        Step.REV_PRODUCTS,
        context(progress=Progress(rev_service_id=812)),
        rev_request(products=THREE_PRODUCTS),
    )

    assert result.step is Step.REV_PRODUCTS
    assert result.updates == {"rev_product_ids": {"55": 9901, "56": 9902, "57": 9903}}
    assert result.note == "2 of 3 service products created"
    assert sent(mocked, 0).url == f"{SERVICE_PRODUCTS_URL}?search.service_id=812&page_size=500"
    creates = [sent(mocked, index) for index in (1, 2)]
    assert [sent_json(r) for r in creates] == [
        {
            "service_id": 812,
            "customer_id": 42,
            "product_id": product_id,
            "rate": rate,
            "prorate": False,
            "quantity": 1,
            "effective_date": None,
            "activated_date": "2026-11-22Z",
        }
        for product_id, rate in ((56, 10.0), (57, 0.99))
    ]
    assert [r.headers["Idempotency-Key"] for r in creates] == [
        "pondops-77-rev_products-56",
        "pondops-77-rev_products-57",
    ]
    assert [call.description for call in audit] == [
        "Find Rev.io service products",
        "Create Rev.io service product",
        "Create Rev.io service product",
    ]


def test_recorded_service_products_are_neither_looked_up_nor_created_again(
    processor: RevProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(SERVICE_PRODUCTS_URL, json=collection([]))
    mocked.post(SERVICE_PRODUCTS_URL, status=201, json={"ok": True, "id": 9903})

    result = processor.perform(
        Step.REV_PRODUCTS,
        context(progress=Progress(rev_service_id=812, rev_product_ids={"55": 9901, "56": 9902})),
        rev_request(products=THREE_PRODUCTS),
    )

    assert result.updates == {"rev_product_ids": {"55": 9901, "56": 9902, "57": 9903}}
    assert len(mocked.calls) == 2
    assert sent_json(sent(mocked, 1))["product_id"] == 57


def test_all_service_products_recorded_means_no_call(
    processor: RevProcessor, mocked: responses.RequestsMock
) -> None:
    recorded = {"55": 9901, "56": 9902, "57": 9903}

    result = processor.perform(
        Step.REV_PRODUCTS,
        context(progress=Progress(rev_service_id=812, rev_product_ids=recorded)),
        rev_request(products=THREE_PRODUCTS),
    )

    assert result.updates == {"rev_product_ids": recorded}
    assert len(mocked.calls) == 0


def test_prorated_service_products_carry_the_effective_date(
    processor: RevProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(SERVICE_PRODUCTS_URL, json=collection([]))
    mocked.post(SERVICE_PRODUCTS_URL, status=201, json={"ok": True, "id": 9901})

    processor.perform(
        Step.REV_PRODUCTS,
        context(progress=Progress(rev_service_id=812)),
        rev_request(products=THREE_PRODUCTS[:1], prorate=True, effective_date=date(2026, 11, 30)),
    )

    body = sent_json(sent(mocked, 1))
    assert (body["prorate"], body["effective_date"]) == (True, "2026-11-30Z")


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(rev_request(package_id=300, products=THREE_PRODUCTS), id="package"),
        pytest.param(rev_request(), id="no-products"),
    ],
)
def test_with_a_package_or_no_products_there_is_nothing_to_do(
    processor: RevProcessor, mocked: responses.RequestsMock, request_: RevServiceRequest
) -> None:
    result = processor.perform(
        Step.REV_PRODUCTS, context(progress=Progress(rev_service_id=812)), request_
    )

    assert result.updates == {}
    assert len(mocked.calls) == 0


def test_service_products_without_a_service_id_are_a_permanent_error(
    processor: RevProcessor, mocked: responses.RequestsMock
) -> None:
    with pytest.raises(PermanentError, match=re.escape("need the Rev.io service id")):
        processor.perform(Step.REV_PRODUCTS, context(), rev_request(products=THREE_PRODUCTS))

    assert len(mocked.calls) == 0


def test_a_failed_product_create_fails_the_step(
    processor: RevProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(SERVICE_PRODUCTS_URL, json=collection([]))
    mocked.post(SERVICE_PRODUCTS_URL, status=503, body="")

    with pytest.raises(TransientError):
        processor.perform(
            Step.REV_PRODUCTS,
            context(progress=Progress(rev_service_id=812)),
            rev_request(products=THREE_PRODUCTS),
        )


def test_processor_descriptions_and_unknown_steps() -> None:
    assert RevProcessor.descriptions == {
        Step.REV_SERVICE: "Create Rev.io service",
        Step.REV_PRODUCTS: "Create Rev.io service product",
    }
    assert RevProcessor.account_label(CREDENTIALS) == "Rev.io client acme"
    processor = RevProcessor(credentials=CREDENTIALS, timeouts=(1, 1))
    with pytest.raises(PermanentError, match=re.escape("Rev.io has no step")):
        processor.perform(Step.CARRIER_STATUS, context(), rev_request())
