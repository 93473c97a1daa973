"""Jasper's processor declarations against docs/carriers/jasper.md: the status table, account
labels, options, identifiers and read_status. Every call and answer of the contract is
test_jasper_contract.py; the HTTP mechanism (timeouts, Retry-After, audit records, …) is
test_http.py."""

from __future__ import annotations

from typing import Any

import pytest
import responses

from integrations.base import (
    CallRecord,
    Credentials,
    PermanentError,
    UpdateContext,
)
from integrations.jasper import JasperProcessor

API_KEY = "jasper-key-Q7w2e9Lk"
USERNAME = "ops-api"
BASE_URL = "https://jasper.example.test"
ICCID = "89011704278000000001"
DEVICE_URL = f"{BASE_URL}/rws/api/v1/devices/{ICCID}"
SETTABLE = ["ACTIVATED", "DEACTIVATED", "ACTIVATION_READY", "TEST_READY", "INVENTORY", "RETIRED"]
CREDENTIALS = Credentials(
    integration_authentication_id=3,
    integration="JASPER",
    base_url=BASE_URL,
    username=USERNAME,
    secret=API_KEY,
)


def jasper_error(code: str, message: str) -> dict[str, str]:
    """Jasper's error body."""
    return {"errorCode": code, "errorMessage": message}


def device_body(status: str, iccid: str = ICCID) -> dict[str, str]:
    return {
        "iccid": iccid,
        "imsi": "310170000000001",
        "msisdn": "15550000001",
        "status": status,
        "ratePlan": "IoT Basic 1MB",
        "communicationPlan": "Data Only",
        "dateUpdated": "2026-11-20 10:11:12.000+0000",
    }


@pytest.fixture
def processor(audit: list[CallRecord]) -> JasperProcessor:
    return JasperProcessor(credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1))


def context(target: str, **overrides: Any) -> UpdateContext:
    values: dict[str, Any] = {
        "device_change_id": 77,
        "bulk_change_id": 5,
        "iccid": ICCID,
        "target_status": target,
        "request_id": "req-abc",
    }
    values.update(overrides)
    return UpdateContext(**values)


# --- Processor: declarations -----------------------------------------------------------------


def test_the_status_table_maps_every_settable_name_to_itself() -> None:
    assert {
        name: (mapping.target, mapping.carrier_value, mapping.post_update_status)
        for name, mapping in JasperProcessor.statuses.items()
    } == {name: (name, name, name) for name in SETTABLE}


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("ACTIVATED", "ACTIVATED"),
        ("deactivated", "DEACTIVATED"),
        (" Activation_Ready ", "ACTIVATION_READY"),
        ("test_ready", "TEST_READY"),
        ("Inventory", "INVENTORY"),
        ("retired", "RETIRED"),
    ],
)
def test_canonical_status_accepts_every_settable_status_in_any_case(
    value: str, canonical: str
) -> None:
    assert JasperProcessor.canonical_status(value) == canonical


@pytest.mark.parametrize("value", ["PURGED", "REPLACED", "ACTIVE", "SUSPENDED", ""])
def test_canonical_status_refuses_read_only_and_unknown_statuses_listing_the_allowed(
    value: str,
) -> None:
    with pytest.raises(ValueError) as raised:
        JasperProcessor.canonical_status(value)

    assert str(raised.value) == (
        f"Jasper cannot set status {value!r}; allowed: ACTIVATED, DEACTIVATED, "
        "ACTIVATION_READY, TEST_READY, INVENTORY, RETIRED"
    )


@pytest.mark.parametrize(
    ("account", "username", "label"),
    [
        ("", "ops-api", "Jasper account ops-api"),
        ("ops-api", "ops-api", "Jasper account ops-api"),
        ("Acme US", "ops-api", "Jasper account ops-api (Acme US)"),
        ("Acme US", "", "Jasper account Acme US"),
    ],
)
def test_account_label_names_the_username_and_the_account_label(
    account: str, username: str, label: str
) -> None:
    credentials = Credentials(
        integration_authentication_id=3,
        integration="JASPER",
        base_url=BASE_URL,
        account=account,
        username=username,
        secret=API_KEY,
    )

    assert JasperProcessor.account_label(credentials) == label


def test_validate_options_accepts_none_and_refuses_any_given() -> None:
    assert JasperProcessor.validate_options(target_status="ACTIVATED", options={}) == []
    assert (
        JasperProcessor.validate_options(
            target_status="ACTIVATED", options={"service_plan": "", "reason_code": ""}
        )
        == []
    )
    assert JasperProcessor.check_options(
        target_status="DEACTIVATED", options={"service_plan": "IoT 1GB", "reason_code": "FF"}
    ) == [
        "Jasper takes no reason_code; leave it empty",
        "Jasper takes no service_plan; leave it empty",
    ]


def test_check_identifiers_needs_only_an_iccid(processor: JasperProcessor) -> None:
    processor.check_identifiers(context("ACTIVATED", msisdn="", eid=""))

    with pytest.raises(PermanentError, match="Jasper needs the device's ICCID"):
        processor.check_identifiers(context("ACTIVATED", iccid="  "))


# --- Processor: read_status ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        *[pytest.param(device_body(name), name, id=name) for name in SETTABLE],
        pytest.param(device_body("activated"), "ACTIVATED", id="lower-case"),
        pytest.param(device_body("PURGED"), None, id="purged"),
        pytest.param(device_body("REPLACED"), None, id="replaced"),
        pytest.param(device_body("SOMETHING_NEW"), None, id="unknown"),
        pytest.param({"iccid": ICCID}, None, id="missing"),
        pytest.param({"iccid": ICCID, "status": 3}, None, id="not-a-string"),
    ],
)
def test_read_status_maps_the_devices_status_to_a_target(
    processor: JasperProcessor,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    body: dict[str, Any],
    expected: str | None,
) -> None:
    mocked.get(DEVICE_URL, json=body)

    assert processor.read_status(context("ACTIVATED")) == expected
    assert [call.description for call in audit] == ["Read Jasper device"]


def test_read_status_of_an_unknown_iccid_is_a_permanent_error(
    processor: JasperProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        DEVICE_URL, status=404, json=jasper_error("20000001", "Resource not found - Invalid ICCID")
    )

    with pytest.raises(PermanentError, match="Resource not found - Invalid ICCID"):
        processor.read_status(context("ACTIVATED"))
