"""Rev.io billing: the request (legacy BulkChangeAssociateCustomer), the client, and the two
steps that open a Rev service per device after its carrier change succeeded.

Wire contract: ``carriers/rev.md``. Each Rev object is created **at most once** per device,
even across retries and crashes: the service is looked up by number and customer before it is
created (and not looked up at all once its id is recorded), and service products are looked up
once per attempt, only the missing ones created.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import requests

from integrations.base import (
    CallRecord,
    CallRecorder,
    CarrierClient,
    Credentials,
    HttpResponse,
    Integration,
    PermanentError,
    Step,
    StepResult,
    Throttle,
    UpdateContext,
    redact,
    unexpected_response,
)

FIND_SERVICE = "Find Rev.io service"
CREATE_SERVICE = "Create Rev.io service"
FIND_SERVICE_PRODUCTS = "Find Rev.io service products"
CREATE_SERVICE_PRODUCT = "Create Rev.io service product"


# --- The request -----------------------------------------------------------------------------


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
    value = fields.get(key.lower())
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
                product_id=_product_id(product_id, f"RevProductIdList[{index}]"),
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


def _product_id(value: Any, key: str) -> int:
    if value is None or value == "":
        raise ValueError(f"{key} is required")
    number = _int(value, key)
    if number <= 0:
        raise ValueError(f"{key} must be a positive id, not {value!r}")
    return number


# --- The client ------------------------------------------------------------------------------


def _rev_date(value: date | None) -> str | None:
    """Rev's date format: ``2026-11-22Z``."""
    return f"{value.isoformat()}Z" if value else None


class RevClient(CarrierClient):
    """Rev.io's billing API v1: HTTP Basic ``username@client_code:password`` on every call.

    Every method makes exactly one HTTP call and raises our error types; a 2xx answer with
    ``"ok": false`` is a PermanentError carrying Rev's message.
    """

    carrier = "Rev.io"

    @classmethod
    def auth_failure(cls, credentials: Credentials) -> str:
        return f"Rev.io rejected the credentials for client {credentials.account}"

    @property
    def auth(self) -> tuple[str, str]:
        """HTTP Basic: ``username@client_code`` and the password."""
        return (f"{self.credentials.username}@{self.credentials.account}", self.credentials.secret)

    def find_service(self, *, number: str, customer_id: int) -> int | None:
        """The id of the customer's service for ``number``, or None when it has none."""
        response = self._call(
            "GET",
            "/v1/Services",
            FIND_SERVICE,
            params={"search.number": number, "search.customer_id": customer_id},
        )
        for record in _records(response):
            if not _matches(record, "number", number) or not _matches(
                record, "customer_id", customer_id
            ):
                continue  # Rev's search may match loosely; only this number and customer count
            return _id(record, "service_id", response.call)
        return None

    def create_service(
        self,
        *,
        customer_id: int,
        service_type_id: int,
        number: str,
        number2: str,
        activated_date: date,
        idempotency_key: str,
        provider_id: int | None = None,
        effective_date: date | None = None,
        usage_plan_group_id: int | None = None,
        package_id: int | None = None,
    ) -> int:
        """Create the service; its new id. Not idempotent on Rev's side: look up first."""
        response = self._call(
            "POST",
            "/v1/Services",
            CREATE_SERVICE,
            json_body={
                "customer_id": customer_id,
                "service_type_id": service_type_id,
                "number": number,
                "number2": number2,
                "provider_id": provider_id,
                "activated_date": _rev_date(activated_date),
                "effective_date": _rev_date(effective_date),
                "usage_plan_group_id": usage_plan_group_id,
                "package_id": package_id,
            },
            idempotency_key=idempotency_key,
        )
        return _id(response.body, "id", response.call)

    def find_service_products(self, *, service_id: int) -> dict[int, int]:
        """The service's products: product_id → service_product_id."""
        response = self._call(
            "GET",
            "/v1/ServiceProducts",
            FIND_SERVICE_PRODUCTS,
            params={"search.service_id": service_id},
        )
        found: dict[int, int] = {}
        for record in _records(response):
            if not _matches(record, "service_id", service_id):
                continue
            product_id = _id(record, "product_id", response.call)
            found.setdefault(product_id, _id(record, "service_product_id", response.call))
        return found

    def create_service_product(
        self,
        *,
        service_id: int,
        customer_id: int,
        product_id: int,
        rate: Decimal,
        prorate: bool,
        activated_date: date,
        idempotency_key: str,
        effective_date: date | None = None,
        quantity: int = 1,
    ) -> int:
        """Create one service product; its new id. Not idempotent on Rev's side: look up first."""
        response = self._call(
            "POST",
            "/v1/ServiceProducts",
            CREATE_SERVICE_PRODUCT,
            json_body={
                "service_id": service_id,
                "customer_id": customer_id,
                "product_id": product_id,
                "rate": float(rate),
                "prorate": prorate,
                "quantity": quantity,
                "effective_date": _rev_date(effective_date),
                "activated_date": _rev_date(activated_date),
            },
            idempotency_key=idempotency_key,
        )
        return _id(response.body, "id", response.call)

    def _call(
        self,
        method: str,
        path: str,
        description: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        idempotency_key: str = "",
    ) -> HttpResponse:
        headers = {"Accept": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        response = self.http.request(
            method,
            path,
            description=description,
            params=params,
            json_body=json_body,
            headers=headers,
            auth=self.auth,
        )
        if not isinstance(response.body, dict):
            raise unexpected_response("Rev.io", "a JSON object", response.call)
        if response.body.get("ok") is False:
            message = str(response.body.get("message") or "request refused (ok: false)")
            raise PermanentError(
                f"HTTP {response.status} from Rev.io: {redact(message, self.credentials.secrets)}",
                call=response.call,
            )
        return response


def _records(response: HttpResponse) -> list[Mapping[str, Any]]:
    """A lookup's records. A body without them is an error, never "nothing found": treating it
    as absent would create a second service."""
    records = response.body.get("records")
    if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
        raise unexpected_response("Rev.io", "a list of records", response.call)
    return records


def _matches(record: Mapping[str, Any], key: str, expected: object) -> bool:
    """A record field equals ``expected`` (compared as text); a missing field does not refute."""
    value = record.get(key)
    return value is None or str(value).strip() == str(expected)


def _id(body: Any, key: str, call: CallRecord) -> int:
    value = body.get(key) if isinstance(body, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise unexpected_response("Rev.io", f"an integer {key!r}", call)
    try:
        return int(value)
    except ValueError:
        raise unexpected_response("Rev.io", f"an integer {key!r}", call) from None


# --- The steps -------------------------------------------------------------------------------


class RevProcessor:
    """The Rev steps of a status update. Not a carrier: it runs after the carrier steps, with
    the request's :class:`RevServiceRequest`, and records ids in the device's Progress."""

    integration: ClassVar[Integration] = Integration.REV
    display_name: ClassVar[str] = "Rev.io"
    steps: ClassVar[tuple[Step, ...]] = (Step.REV_SERVICE, Step.REV_PRODUCTS)
    descriptions: ClassVar[Mapping[Step, str]] = {
        Step.REV_SERVICE: CREATE_SERVICE,
        Step.REV_PRODUCTS: CREATE_SERVICE_PRODUCT,
    }

    def __init__(
        self,
        *,
        credentials: Credentials,
        session: requests.Session | None = None,
        throttle: Throttle | None = None,
        on_call: CallRecorder | None = None,
        timeouts: tuple[float, float] | None = None,
    ) -> None:
        self.credentials = credentials
        self.client = RevClient(
            credentials=credentials,
            session=session,
            throttle=throttle,
            on_call=on_call,
            timeouts=timeouts,
        )

    @classmethod
    def account_label(cls, credentials: Credentials) -> str:
        return f"Rev.io client {credentials.account}"

    def perform(self, step: Step, context: UpdateContext, request: RevServiceRequest) -> StepResult:
        """REV_SERVICE → ``{"rev_service_id": id}``; REV_PRODUCTS → ``{"rev_product_ids":
        {str(product_id): service_product_id}}`` (merged with those already recorded), or no
        updates when the request names a package. Raises PermanentError / TransientError."""
        if step is Step.REV_SERVICE:
            return self._service(context, request)
        if step is Step.REV_PRODUCTS:
            return self._products(context, request)
        raise PermanentError(f"Rev.io has no step {step!r}")

    def _service(self, context: UpdateContext, request: RevServiceRequest) -> StepResult:
        recorded = context.progress.rev_service_id
        if recorded is not None:
            return StepResult(Step.REV_SERVICE, {"rev_service_id": recorded})
        number = context.msisdn or context.iccid
        service_id = self.client.find_service(number=number, customer_id=request.customer_id)
        if service_id is not None:
            return StepResult(
                Step.REV_SERVICE,
                {"rev_service_id": service_id},
                note=f"Rev.io service {service_id} already exists",
            )
        service_id = self.client.create_service(
            customer_id=request.customer_id,
            service_type_id=request.service_type_id,
            number=number,
            number2=context.iccid,
            provider_id=request.provider_id,
            activated_date=_activated_date(context, request),
            effective_date=request.effective_date if request.prorate else None,
            usage_plan_group_id=request.usage_plan_group_id,
            package_id=request.package_id,
            idempotency_key=context.idempotency_key(Step.REV_SERVICE),
        )
        return StepResult(
            Step.REV_SERVICE,
            {"rev_service_id": service_id},
            note=f"Rev.io service {service_id} created",
        )

    def _products(self, context: UpdateContext, request: RevServiceRequest) -> StepResult:
        if request.package_id is not None or not request.products:
            return StepResult(Step.REV_PRODUCTS, {})
        service_id = context.progress.rev_service_id
        if service_id is None:
            raise PermanentError("Rev.io service products need the Rev.io service id first")
        recorded = {str(key): int(value) for key, value in context.progress.rev_product_ids.items()}
        missing = [p for p in request.products if str(p.product_id) not in recorded]
        if not missing:
            return StepResult(Step.REV_PRODUCTS, {"rev_product_ids": recorded})
        existing = self.client.find_service_products(service_id=service_id)
        created = 0
        for product in missing:
            service_product_id = existing.get(product.product_id)
            if service_product_id is None:
                service_product_id = self.client.create_service_product(
                    service_id=service_id,
                    customer_id=request.customer_id,
                    product_id=product.product_id,
                    rate=product.rate,
                    prorate=request.prorate,
                    activated_date=_activated_date(context, request),
                    effective_date=request.effective_date if request.prorate else None,
                    idempotency_key=(
                        f"{context.idempotency_key(Step.REV_PRODUCTS)}-{product.product_id}"
                    ),
                )
                created += 1
            recorded[str(product.product_id)] = service_product_id
        return StepResult(
            Step.REV_PRODUCTS,
            {"rev_product_ids": recorded},
            note=f"{created} of {len(request.products)} service products created",
        )


def _activated_date(context: UpdateContext, request: RevServiceRequest) -> date:
    """The request's date, else the day the carrier step succeeded, else today (UTC)."""
    return request.activated_date or context.today or datetime.now(UTC).date()
