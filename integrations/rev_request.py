"""The Rev.io request of a status update (legacy ``BulkChangeAssociateCustomer``): which service
to open per device, and its parsing from — and writing back to — the legacy JSON.

Parsing is strict: bad input is a ValueError naming the offending key. The steps that carry a
request out are :mod:`integrations.rev`; the wire contract is ``docs/carriers/rev.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any


@dataclass(frozen=True)
class RevProduct:
    """One service product to create: a Rev product and its rate."""

    product_id: int
    rate: Decimal


@dataclass(frozen=True)
class RevServiceRequest:
    """The Rev service to open per device (legacy ``BulkChangeAssociateCustomer``, the
    StatusUpdateRequest's ``RevService``). With ``package_id`` the package brings its products;
    without it, ``products`` are created one by one."""

    customer_id: int
    service_type_id: int
    integration_authentication_id: int  # the Rev.io credentials row
    provider_id: int | None = None
    activated_date: date | None = None
    effective_date: date | None = None
    prorate: bool = False
    usage_plan_group_id: int | None = None
    package_id: int | None = None
    products: tuple[RevProduct, ...] = ()

    @classmethod
    def from_legacy(cls, data: Mapping[str, Any]) -> RevServiceRequest:
        """Parse the legacy JSON (keys without regard to case; unknown keys such as ``Number``
        or ``Description`` ignored). Products come from ``RevProductIdList`` + ``RateList``
        (parallel, equal length) when the list is non-empty, else from ``RevProductId`` +
        ``Rate``. Optional ids of 0 mean absent (the legacy tables store 0 for none).

        Raises ValueError naming the offending key."""
        if not isinstance(data, Mapping):
            raise ValueError("RevService must be a JSON object")
        fields: dict[str, Any] = {}
        for key, value in data.items():
            name = str(key).lower()
            if name in fields and fields[name] != value:
                raise ValueError(f"RevService has conflicting values for {key}")
            fields[name] = value
        return cls(
            customer_id=_required_id(fields, "RevCustomerId"),
            service_type_id=_required_id(fields, "ServiceTypeId"),
            integration_authentication_id=_required_id(fields, "IntegrationAuthenticationId"),
            provider_id=_optional_id(fields, "ProviderId"),
            activated_date=_optional_date(fields, "ActivatedDate"),
            effective_date=_optional_date(fields, "EffectiveDate"),
            prorate=_bool(fields, "Prorate"),
            usage_plan_group_id=_optional_id(fields, "UsagePlanGroupId"),
            package_id=_optional_id(fields, "RevPackageId"),
            products=_products(fields),
        )

    def to_legacy(self) -> dict[str, Any]:
        """The legacy JSON keys, JSON-serialisable; ``from_legacy`` reads it back unchanged.
        Products are always written as the parallel lists, rates as decimal strings (exact)."""
        return {
            "RevCustomerId": self.customer_id,
            "ServiceTypeId": self.service_type_id,
            "ProviderId": self.provider_id,
            "ActivatedDate": self.activated_date.isoformat() if self.activated_date else None,
            "EffectiveDate": self.effective_date.isoformat() if self.effective_date else None,
            "Prorate": self.prorate,
            "UsagePlanGroupId": self.usage_plan_group_id,
            "RevPackageId": self.package_id,
            "RevProductIdList": [product.product_id for product in self.products],
            "RateList": [str(product.rate) for product in self.products],
            "IntegrationAuthenticationId": self.integration_authentication_id,
        }


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a whole number, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise ValueError(f"{key} must be a whole number, not {value!r}")


def _required_id(fields: Mapping[str, Any], key: str) -> int:
    return _positive_id(fields.get(key.lower()), key)


def _positive_id(value: Any, key: str) -> int:
    if value is None or value == "":
        raise ValueError(f"{key} is required")
    number = _int(value, key)
    if number <= 0:
        raise ValueError(f"{key} must be a positive id, not {value!r}")
    return number


def _optional_id(fields: Mapping[str, Any], key: str) -> int | None:
    value = fields.get(key.lower())
    if value is None or value == "":
        return None
    number = _int(value, key)
    if number < 0:
        raise ValueError(f"{key} must be a positive id, not {value!r}")
    return number or None


def _optional_date(fields: Mapping[str, Any], key: str) -> date | None:
    value = fields.get(key.lower())
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        for candidate in (text, text.removesuffix("Z").removesuffix("z")):
            try:
                return datetime.fromisoformat(candidate).date()
            except ValueError:
                continue
    raise ValueError(f"{key} must be a date (YYYY-MM-DD), not {value!r}")


def _bool(fields: Mapping[str, Any], key: str) -> bool:
    value = fields.get(key.lower())
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"{key} must be true or false, not {value!r}")


def _rate(value: Any, key: str) -> Decimal:
    if isinstance(value, bool) or value is None or value == "":
        raise ValueError(f"{key} must be a number, not {value!r}")
    try:
        rate = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{key} must be a number, not {value!r}") from None
    if not rate.is_finite() or rate < 0:
        raise ValueError(f"{key} must be a non-negative number, not {value!r}")
    return rate


def _list(fields: Mapping[str, Any], key: str) -> list[Any]:
    value = fields.get(key.lower())
    if value is None or value == "":
        return []
    if isinstance(value, str):  # tolerated: "55,56"
        return [part.strip() for part in value.split(",")]
    if isinstance(value, Sequence):
        return list(value)
    raise ValueError(f"{key} must be a list, not {value!r}")


def _products(fields: Mapping[str, Any]) -> tuple[RevProduct, ...]:
    product_ids = _list(fields, "RevProductIdList")
    rates = _list(fields, "RateList")
    if product_ids or rates:
        if len(product_ids) != len(rates):
            raise ValueError(
                f"RevProductIdList and RateList must have the same length "
                f"({len(product_ids)} products, {len(rates)} rates)"
            )
        products = tuple(
            RevProduct(
                product_id=_positive_id(product_id, f"RevProductIdList[{index}]"),
                rate=_rate(rate, f"RateList[{index}]"),
            )
            for index, (product_id, rate) in enumerate(zip(product_ids, rates, strict=True))
        )
    else:
        product_id = _optional_id(fields, "RevProductId")
        if product_id is None:
            if fields.get("rate") not in (None, ""):
                raise ValueError("Rate is given without RevProductId")
            return ()
        rate = fields.get("rate")
        if rate is None or rate == "":
            raise ValueError(f"RevProductId {product_id} needs a Rate")
        products = (RevProduct(product_id=product_id, rate=_rate(rate, "Rate")),)
    seen = [product.product_id for product in products]
    duplicates = sorted({product_id for product_id in seen if seen.count(product_id) > 1})
    if duplicates:
        raise ValueError(f"RevProductIdList names a product more than once: {duplicates}")
    return products
