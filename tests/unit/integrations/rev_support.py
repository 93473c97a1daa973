"""What the Rev.io client tests share: the device, the context of a Rev step, Rev's answers
(a collection page, service and product records) and the bodies the contract sends."""

from __future__ import annotations

from datetime import date
from typing import Any

from integrations.base import UpdateContext

ICCID = "89148000000000000001"
MSISDN = "2145550100"
PASSWORD = "rev-pass-Qw93kd"
CARRIER_DAY = date(2026, 11, 22)

# The contract's create bodies for customer 42, service type 7, provider 3 on CARRIER_DAY.
SERVICE_BODY: dict[str, Any] = {
    "customer_id": 42,
    "service_type_id": 7,
    "number": MSISDN,
    "number2": ICCID,
    "provider_id": 3,
    "activated_date": "2026-11-22Z",
    "effective_date": None,
    "usage_plan_group_id": None,
    "package_id": None,
}
PRODUCT_BODY: dict[str, Any] = {
    "service_id": 812,
    "customer_id": 42,
    "product_id": 55,
    "rate": 4.5,
    "prorate": False,
    "quantity": 1,
    "effective_date": None,
    "activated_date": "2026-11-22Z",
}


def context(**overrides: Any) -> UpdateContext:
    """Device change 77 of bulk change 5, whose carrier step succeeded on CARRIER_DAY."""
    values: dict[str, Any] = {
        "device_change_id": 77,
        "bulk_change_id": 5,
        "iccid": ICCID,
        "msisdn": MSISDN,
        "target_status": "ACTIVE",
        "today": CARRIER_DAY,
    }
    return UpdateContext(**(values | overrides))


def collection(records: list[dict[str, Any]], *, has_more: bool = False) -> dict[str, Any]:
    """One page of a Rev collection answer."""
    return {"ok": True, "has_more": has_more, "record_count": len(records), "records": records}


def service_record(
    service_id: int = 812, number: str = MSISDN, customer_id: int = 42
) -> dict[str, Any]:
    return {
        "service_id": service_id,
        "number": number,
        "customer_id": customer_id,
        "service_type_id": 7,
    }


def product_record(
    service_product_id: int, product_id: int, service_id: int = 812
) -> dict[str, Any]:
    return {
        "service_product_id": service_product_id,
        "service_id": service_id,
        "product_id": product_id,
    }
