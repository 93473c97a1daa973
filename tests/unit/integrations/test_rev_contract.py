"""RevClient and RevProcessor against the Rev.io contract (docs/carriers/rev.md), call by call:
the exact method, path, query, headers and body of every request, every page of a look-up, and
the handling of every answer the contract documents — the paged collection, 201 creates,
``"ok": false``, 400/401/403/404/405, API management's quota 403 and 429, 5xx. Uses
``responses``; the HTTP mechanism shared by every carrier is test_http.py."""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import requests
import responses

from integrations import rev
from integrations.base import (
    AuthenticationError,
    CallRecord,
    Credentials,
    IntegrationError,
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
    PRODUCT_BODY,
    SERVICE_BODY,
    collection,
    context,
    product_record,
    service_record,
)
from tests.unit.integrations.support import RecordingThrottle, sent, sent_json

SUBSCRIPTION_KEY = "apim-key-5f1c9e22"
ORIGIN = "https://restapi.rev.example.test"
SERVICES = f"{ORIGIN}/v1/Services"
SERVICE_PRODUCTS = f"{ORIGIN}/v1/ServiceProducts"
CREDENTIALS = Credentials(
    integration_authentication_id=9,
    integration="REV",
    base_url=ORIGIN,
    account="acme",
    username="api-user",
    secret=PASSWORD,
    secret_2=SUBSCRIPTION_KEY,
)
NO_KEY = Credentials(
    integration_authentication_id=10,
    integration="REV",
    base_url=ORIGIN + "/",
    account="acme",
    username="api-user",
    secret=PASSWORD,
)
BASIC = "Basic YXBpLXVzZXJAYWNtZTpyZXYtcGFzcy1Rdzkza2Q="  # api-user@acme:rev-pass-Qw93kd
SESSION_HEADERS = ("User-Agent", "Accept-Encoding", "Connection")


@pytest.fixture
def client(audit: list[CallRecord], throttle: RecordingThrottle) -> RevClient:
    return RevClient(
        credentials=CREDENTIALS, on_call=audit.append, throttle=throttle, timeouts=(1, 1)
    )


@pytest.fixture
def processor(audit: list[CallRecord]) -> RevProcessor:
    return RevProcessor(credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1))


def others(first_id: int, count: int) -> list[dict[str, Any]]:
    """Services of the same customer for other numbers (Rev's loose search returns them)."""
    return [service_record(first_id + n, number=f"21455509{n:02d}") for n in range(count)]


def wire_headers(request: requests.PreparedRequest) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.headers.items() if k not in SESSION_HEADERS]


def find_url(page_number: int | None = None, number: str = MSISDN) -> str:
    url = f"{SERVICES}?search.number={number}&search.customer_id=42&page_size=100"
    return url if page_number is None else f"{url}&page={page_number}"


def products_url(page_number: int | None = None) -> str:
    url = f"{SERVICE_PRODUCTS}?search.service_id=812&page_size=500"
    return url if page_number is None else f"{url}&page={page_number}"


def create_service(client: RevClient) -> int:
    return client.create_service(
        customer_id=42,
        service_type_id=7,
        number=MSISDN,
        number2=ICCID,
        provider_id=3,
        activated_date=date(2026, 11, 22),
        idempotency_key="pondops-77-rev_service",
    )


REQUEST = RevServiceRequest(
    customer_id=42,
    service_type_id=7,
    integration_authentication_id=9,
    provider_id=3,
    products=(RevProduct(55, Decimal("4.50")), RevProduct(56, Decimal("10"))),
)


# --- Every call, exactly -----------------------------------------------------------------------


def test_a_service_look_up_is_one_get_with_the_search_the_page_size_key_and_basic_auth(
    client: RevClient, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(find_url(), json=collection([service_record(812)]))

    assert client.find_service(number=MSISDN, customer_id=42) == 812

    request = sent(mocked, 0)
    assert (request.method, request.url, request.body) == ("GET", find_url(), None)
    assert wire_headers(request) == [
        ("Accept", "application/json"),
        ("Ocp-Apim-Subscription-Key", SUBSCRIPTION_KEY),
        ("Authorization", BASIC),
    ]
    [call] = audit
    assert call.description == "Find Rev.io service"
    assert call.request_text == (
        f"GET /v1/Services?search.number={MSISDN}&search.customer_id=42&page_size=100\n"
        "Ocp-Apim-Subscription-Key: [REDACTED]\nAccept: application/json"
    )


def test_later_pages_add_page_from_2_and_keep_everything_else(
    client: RevClient, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(find_url(), json=collection(others(900, 100), has_more=True))
    mocked.get(find_url(2), json=collection(others(1000, 100), has_more=True))
    mocked.get(find_url(3), json=collection([*others(1100, 5), service_record(812)], has_more=True))

    assert client.find_service(number=MSISDN, customer_id=42) == 812

    assert [sent(mocked, n).url for n in range(3)] == [find_url(), find_url(2), find_url(3)]
    assert {tuple(wire_headers(sent(mocked, n))) for n in range(3)} == {
        (
            ("Accept", "application/json"),
            ("Ocp-Apim-Subscription-Key", SUBSCRIPTION_KEY),
            ("Authorization", BASIC),
        )
    }
    assert [call.description for call in audit] == ["Find Rev.io service"] * 3  # no page 4


def test_a_service_create_is_one_post_of_the_contracts_body(
    client: RevClient, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.post(
        SERVICES,
        status=201,
        headers={"Location": f"{SERVICES}/812"},
        json={"ok": True, "id": 812},
    )

    assert create_service(client) == 812

    request = sent(mocked, 0)
    content = json.dumps(SERVICE_BODY).encode()
    assert (request.method, request.url, request.body) == ("POST", SERVICES, content)
    assert wire_headers(request) == [
        ("Accept", "application/json"),
        ("Ocp-Apim-Subscription-Key", SUBSCRIPTION_KEY),
        ("Idempotency-Key", "pondops-77-rev_service"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(content))),
        ("Authorization", BASIC),
    ]
    assert audit[0].description == "Create Rev.io service"
    assert SUBSCRIPTION_KEY not in audit[0].request_text + audit[0].response_text


def test_a_product_look_up_asks_for_pages_of_500_and_reads_every_page(
    client: RevClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(products_url(), json=collection([product_record(9901, 55)], has_more=True))
    mocked.get(
        products_url(2),
        json=collection(
            [
                product_record(9902, 56),
                product_record(9999, 57, service_id=813),
                product_record(9903, 55),
            ]
        ),
    )

    assert client.find_service_products(service_id=812) == {55: 9901, 56: 9902}

    assert [sent(mocked, n).url for n in range(2)] == [products_url(), products_url(2)]
    assert wire_headers(sent(mocked, 1)) == [
        ("Accept", "application/json"),
        ("Ocp-Apim-Subscription-Key", SUBSCRIPTION_KEY),
        ("Authorization", BASIC),
    ]


def test_a_product_create_is_one_post_of_the_contracts_body(
    client: RevClient, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.post(SERVICE_PRODUCTS, status=201, json={"ok": True, "id": 9901})

    created = client.create_service_product(
        service_id=812,
        customer_id=42,
        product_id=55,
        rate=Decimal("4.50"),
        prorate=False,
        activated_date=date(2026, 11, 22),
        idempotency_key="pondops-77-rev_products-55",
    )

    assert created == 9901
    request = sent(mocked, 0)
    content = json.dumps(PRODUCT_BODY).encode()
    assert (request.method, request.url, request.body) == ("POST", SERVICE_PRODUCTS, content)
    assert wire_headers(request) == [
        ("Accept", "application/json"),
        ("Ocp-Apim-Subscription-Key", SUBSCRIPTION_KEY),
        ("Idempotency-Key", "pondops-77-rev_products-55"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(content))),
        ("Authorization", BASIC),
    ]
    assert audit[0].description == "Create Rev.io service product"


def test_without_a_subscription_key_no_key_header_is_sent_and_base_url_loses_its_slash(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(find_url(), json=collection([]))

    assert (
        RevClient(credentials=NO_KEY, timeouts=(1, 1)).find_service(number=MSISDN, customer_id=42)
        is None
    )

    assert sent(mocked, 0).url == find_url()
    assert wire_headers(sent(mocked, 0)) == [
        ("Accept", "application/json"),
        ("Authorization", BASIC),
    ]


# --- Collections ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "records",
    [
        pytest.param([], id="none"),
        pytest.param(others(900, 3), id="other-numbers"),
        pytest.param([service_record(812, customer_id=41)], id="other-customer"),
        pytest.param([service_record(812, number=MSISDN + "0")], id="longer-number"),
        pytest.param([{"service_id": 812, "customer_id": 42}], id="no-number"),
        pytest.param([{"service_id": 812, "number": MSISDN}], id="no-customer"),
    ],
)
def test_only_a_record_whose_number_and_customer_equal_ours_is_our_service(
    client: RevClient, mocked: responses.RequestsMock, records: list[dict[str, Any]]
) -> None:
    mocked.get(find_url(), json=collection(records))

    assert client.find_service(number=MSISDN, customer_id=42) is None


def test_no_service_means_every_page_was_read(
    client: RevClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(find_url(), json=collection(others(900, 100), has_more=True))
    mocked.get(find_url(2), json=collection(others(1000, 30)))

    assert client.find_service(number=MSISDN, customer_id=42) is None
    assert len(mocked.calls) == 2


def test_a_number_and_customer_sent_as_text_still_match(
    client: RevClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        find_url(), json=collection([{"service_id": "812", "number": MSISDN, "customer_id": "42"}])
    )

    assert client.find_service(number=MSISDN, customer_id=42) == 812


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"ok": True, "has_more": False}, "a list of records", id="no-records"),
        pytest.param(
            {"ok": True, "has_more": False, "records": {"service_id": 812}},
            "a list of records",
            id="records-not-a-list",
        ),
        pytest.param({"ok": True, "records": []}, "a has_more flag", id="no-has-more"),
        pytest.param(
            {"ok": True, "has_more": "false", "records": []}, "a has_more flag", id="text-flag"
        ),
        pytest.param([service_record(812)], "a JSON object", id="bare-list"),
        pytest.param(
            collection([service_record(812) | {"service_id": None}]),
            "an integer 'service_id'",
            id="no-id",
        ),
    ],
)
def test_a_look_up_answer_of_the_wrong_shape_is_an_error_never_nothing_found(
    client: RevClient, mocked: responses.RequestsMock, body: Any, expected: str
) -> None:
    mocked.get(find_url(), json=body)

    with pytest.raises(PermanentError) as raised:
        client.find_service(number=MSISDN, customer_id=42)

    assert raised.value.message == f"HTTP 200 from Rev.io: expected {expected}, got something else"


def test_an_empty_page_that_says_more_follow_is_an_error(
    client: RevClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(find_url(), json=collection([], has_more=True))

    with pytest.raises(PermanentError, match="records on a page that says more follow"):
        client.find_service(number=MSISDN, customer_id=42)


def test_a_look_up_that_never_ends_is_refused_after_the_page_limit(
    client: RevClient, mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rev, "MAX_PAGES", 3)
    mocked.get(find_url(), json=collection(others(900, 1), has_more=True))
    for number in (2, 3):
        mocked.get(find_url(number), json=collection(others(900 + number, 1), has_more=True))

    with pytest.raises(PermanentError) as raised:
        client.find_service(number=MSISDN, customer_id=42)

    assert raised.value.message == (
        "Rev.io look-up (Find Rev.io service) ran past 3 pages of 100 records; "
        "not guessing whether the record exists"
    )
    assert raised.value.call is not None and raised.value.call.response_status == 200


@pytest.mark.parametrize("status", [200, 201])
def test_a_create_answers_its_new_id(
    client: RevClient, mocked: responses.RequestsMock, status: int
) -> None:
    mocked.post(SERVICES, status=status, json={"ok": True, "id": "812"})

    assert create_service(client) == 812


# --- Every documented answer ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error_type", "message", "retry_after"),
    [
        pytest.param(
            {"status": 400, "json": {"ok": False, "message": "service_type_id is invalid"}},
            PermanentError,
            "HTTP 400 from Rev.io: service_type_id is invalid",
            None,
            id="400",
        ),
        pytest.param(
            {"status": 404, "json": {"ok": False, "message": "Customer 42 not found"}},
            PermanentError,
            "HTTP 404 from Rev.io: Customer 42 not found",
            None,
            id="404",
        ),
        pytest.param(
            {"status": 405, "body": ""},
            PermanentError,
            "HTTP 405 from Rev.io (empty body)",
            None,
            id="405",
        ),
        pytest.param(
            {"status": 401, "json": {"ok": False, "message": "Unauthorized"}},
            AuthenticationError,
            "Rev.io rejected the credentials for client acme (HTTP 401 from Rev.io: Unauthorized)",
            None,
            id="401",
        ),
        pytest.param(
            {
                "status": 401,
                "json": {
                    "statusCode": 401,
                    "message": "Access denied due to invalid subscription key.",
                },
            },
            AuthenticationError,
            "Rev.io rejected the credentials for client acme "
            "(HTTP 401 from Rev.io: Access denied due to invalid subscription key.)",
            None,
            id="401-subscription-key",
        ),
        pytest.param(
            {"status": 403, "json": {"ok": False, "message": "User may not create services"}},
            AuthenticationError,
            "Rev.io rejected the credentials for client acme "
            "(HTTP 403 from Rev.io: User may not create services)",
            None,
            id="403-permission",
        ),
        pytest.param(
            {
                "status": 403,
                "headers": {"Retry-After": "3600"},
                "json": {
                    "statusCode": 403,
                    "message": "Out of call volume quota. Quota will be replenished in 01:00:00.",
                },
            },
            TransientError,
            "HTTP 403 from Rev.io: Out of call volume quota. Quota will be replenished in "
            "01:00:00.",
            3600.0,
            id="403-quota-retry-after",
        ),
        pytest.param(
            {
                "status": 403,
                "json": {
                    "statusCode": 403,
                    "message": "Out of call volume quota. Quota will be replenished in 1.02:03:04.",
                },
            },
            TransientError,
            "HTTP 403 from Rev.io: Out of call volume quota. Quota will be replenished in "
            "1.02:03:04.",
            float(((24 + 2) * 60 + 3) * 60 + 4),
            id="403-quota-renewal-in-message",
        ),
        pytest.param(
            {"status": 403, "json": {"statusCode": 403, "message": "Out of call volume quota"}},
            TransientError,
            "HTTP 403 from Rev.io: Out of call volume quota",
            None,
            id="403-quota-normal-back-off",
        ),
        pytest.param(
            {
                "status": 429,
                "headers": {"Retry-After": "20"},
                "json": {"statusCode": 429, "message": "Try again in 35 seconds."},
            },
            TransientError,
            "HTTP 429 from Rev.io: Try again in 35 seconds.",
            20.0,
            id="429-retry-after-first",
        ),
        pytest.param(
            {
                "status": 429,
                "json": {
                    "statusCode": 429,
                    "message": "Rate limit is exceeded. Try again in 35 seconds.",
                },
            },
            TransientError,
            "HTTP 429 from Rev.io: Rate limit is exceeded. Try again in 35 seconds.",
            36.0,
            id="429-seconds-in-message-plus-one",
        ),
        pytest.param(
            {"status": 429, "json": {"statusCode": 429, "message": "Rate limit is exceeded."}},
            TransientError,
            "HTTP 429 from Rev.io: Rate limit is exceeded.",
            None,
            id="429-normal-back-off",
        ),
        *(
            pytest.param(
                {"status": status, "json": {"ok": False, "message": "maintenance"}},
                TransientError,
                f"HTTP {status} from Rev.io: maintenance",
                None,
                id=str(status),
            )
            for status in (500, 502, 503, 504)
        ),
        pytest.param(
            {
                "status": 502,
                "content_type": "text/html",
                "body": "<html><head><title>502 Bad Gateway</title></head></html>",
            },
            TransientError,
            "HTTP 502 from Rev.io: 502 Bad Gateway",
            None,
            id="502-html",
        ),
        pytest.param(
            {"status": 201, "json": {"ok": False, "message": "Customer 42 is closed"}},
            PermanentError,
            "HTTP 201 from Rev.io: Customer 42 is closed",
            None,
            id="2xx-ok-false",
        ),
        pytest.param(
            {"status": 200, "json": {"ok": False}},
            PermanentError,
            "HTTP 200 from Rev.io: request refused (ok: false)",
            None,
            id="2xx-ok-false-without-message",
        ),
        pytest.param(
            {"status": 201, "json": {"ok": True}},
            PermanentError,
            "HTTP 201 from Rev.io: expected an integer 'id', got something else",
            None,
            id="2xx-without-id",
        ),
        pytest.param(
            {"status": 201, "content_type": "text/html", "body": "<p>created</p>"},
            PermanentError,
            "HTTP 201 from Rev.io: expected JSON, got text/html",
            None,
            id="2xx-not-json",
        ),
    ],
)
def test_every_documented_answer_becomes_its_error_type(
    client: RevClient,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    reply: dict[str, Any],
    error_type: type[IntegrationError],
    message: str,
    retry_after: float | None,
) -> None:
    mocked.post(SERVICES, **reply)

    with pytest.raises(IntegrationError) as raised:
        create_service(client)

    error = raised.value
    assert type(error) is error_type
    assert error.message == message
    assert error.call is audit[0]
    assert audit[0].response_status == reply["status"]
    if isinstance(error, TransientError):
        assert error.retry_after == retry_after
    assert SUBSCRIPTION_KEY not in str(error) + audit[0].request_text
    assert PASSWORD not in str(error) + audit[0].request_text


def test_a_429_slows_every_sender_by_the_seconds_it_names(
    client: RevClient, mocked: responses.RequestsMock, throttle: RecordingThrottle
) -> None:
    mocked.get(
        find_url(),
        status=429,
        json={"statusCode": 429, "message": "Rate limit is exceeded. Try again in 4 seconds."},
    )
    mocked.get(find_url(), status=429, headers={"Retry-After": "2"}, json={"statusCode": 429})

    for _ in range(2):
        with pytest.raises(TransientError):
            client.find_service(number=MSISDN, customer_id=42)

    assert throttle.penalties == [5.0, 2.0]


def test_a_quota_403_does_not_slow_the_senders_and_a_quota_403_is_not_a_login_failure(
    client: RevClient, mocked: responses.RequestsMock, throttle: RecordingThrottle
) -> None:
    mocked.get(
        find_url(),
        status=403,
        headers={"Retry-After": "50000"},
        json={"statusCode": 403, "message": "Out of call volume quota."},
    )

    with pytest.raises(TransientError) as raised:
        client.find_service(number=MSISDN, customer_id=42)

    assert not isinstance(raised.value, AuthenticationError)
    assert throttle.penalties == []


def test_secrets_echoed_by_rev_are_redacted(
    client: RevClient, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    echoed = f"bad {PASSWORD} or {SUBSCRIPTION_KEY}"
    mocked.post(SERVICES, status=200, json={"ok": False, "message": echoed})

    with pytest.raises(PermanentError) as raised:
        create_service(client)

    assert raised.value.message == "HTTP 200 from Rev.io: bad [REDACTED] or [REDACTED]"
    assert PASSWORD not in audit[0].response_text
    assert SUBSCRIPTION_KEY not in audit[0].response_text


# --- base_url and limits -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "problems"),
    [
        pytest.param("https://restapi.rev.io", [], id="origin"),
        pytest.param("https://api.revioapi.com/", [], id="origin-slash"),
        pytest.param("http://127.0.0.1:8765/rev", [], id="simulator-prefix"),
        *(
            pytest.param(url, ["Rev.io base_url must be the host only; PondOps adds /v1"], id=name)
            for name, url in (
                ("v1", "https://restapi.rev.io/v1"),
                ("v1-slash", "https://restapi.rev.io/v1/"),
                ("V1", "https://api.revioapi.com/V1"),
                ("v1-path", "https://restapi.rev.io/v1/Services"),
            )
        ),
    ],
)
def test_validate_base_url_refuses_a_base_url_that_would_double_v1(
    base_url: str, problems: list[str]
) -> None:
    assert RevProcessor.validate_base_url(base_url) == problems


def test_the_default_rate_keeps_under_500_calls_a_minute() -> None:
    assert RevProcessor.default_rate_limit * 60 <= 500
    assert RevProcessor.default_rate_limit == 8.0
    assert RevProcessor.default_max_concurrency >= 1


# --- Repeat safety through the processor ---------------------------------------------------


def test_an_existing_service_on_page_3_is_stored_and_nothing_is_created(
    processor: RevProcessor, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(find_url(), json=collection(others(900, 100), has_more=True))
    mocked.get(find_url(2), json=collection(others(1000, 100), has_more=True))
    mocked.get(find_url(3), json=collection([service_record(812), *others(1100, 3)]))

    result = processor.perform(Step.REV_SERVICE, context(), REQUEST)

    assert result.updates == {"rev_service_id": 812}
    assert result.note == "Rev.io service 812 already exists"
    assert [call.method for call in audit] == ["GET"] * 3


def test_a_missing_service_is_created_only_after_the_last_page(
    processor: RevProcessor, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(find_url(), json=collection(others(900, 100), has_more=True))
    mocked.get(find_url(2), json=collection(others(1000, 7)))
    mocked.post(SERVICES, status=201, json={"ok": True, "id": 1200})

    result = processor.perform(Step.REV_SERVICE, context(), REQUEST)

    assert result.updates == {"rev_service_id": 1200}
    assert [call.description for call in audit] == [
        "Find Rev.io service",
        "Find Rev.io service",
        "Create Rev.io service",
    ]
    assert sent_json(sent(mocked, 2)) == SERVICE_BODY


def test_products_found_on_a_later_page_are_not_created_again(
    processor: RevProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        products_url(),
        json=collection([product_record(9000 + n, 100 + n) for n in range(3)], has_more=True),
    )
    mocked.get(products_url(2), json=collection([product_record(9901, 55)]))
    mocked.post(SERVICE_PRODUCTS, status=201, json={"ok": True, "id": 9902})

    result = processor.perform(
        Step.REV_PRODUCTS, context(progress=Progress(rev_service_id=812)), REQUEST
    )

    assert result.updates == {"rev_product_ids": {"55": 9901, "56": 9902}}
    assert [sent_json(sent(mocked, 2))["product_id"]] == [56]


def test_a_retry_after_a_failed_create_looks_up_again_and_finds_the_created_service(
    processor: RevProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(find_url(), json=collection([]))
    mocked.post(SERVICES, body=requests.ConnectionError("answer lost"))
    mocked.get(find_url(), json=collection([service_record(812)]))

    with pytest.raises(TransientError, match=re.escape("Rev.io connection failed")):
        processor.perform(Step.REV_SERVICE, context(), REQUEST)
    result = processor.perform(Step.REV_SERVICE, context(), REQUEST)

    assert result.updates == {"rev_service_id": 812}
    assert [call.request.method for call in mocked.calls] == ["GET", "POST", "GET"]
