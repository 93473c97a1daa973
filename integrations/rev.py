"""Rev.io billing: the client, and the two steps that open a Rev service per device after its
carrier change succeeded. The request they carry out — :class:`RevServiceRequest`, legacy
``BulkChangeAssociateCustomer`` — is parsed in :mod:`integrations.rev_request`.

Wire contract: ``docs/carriers/rev.md``. Each Rev object is created **at most once** per device,
even across retries and crashes: the service is looked up by number and customer before it is
created (and not looked up at all once its id is recorded), and service products are looked up
once per attempt, only the missing ones created.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Unpack

from integrations.base.audit import CallRecord, redact
from integrations.base.errors import PermanentError
from integrations.base.http import CarrierClient, HttpOptions, HttpResponse, unexpected_response
from integrations.base.protocol import Credentials, Step, StepResult, UpdateContext
from integrations.base.registry import Integration
from integrations.rev_request import RevServiceRequest

FIND_SERVICE = "Find Rev.io service"
CREATE_SERVICE = "Create Rev.io service"
FIND_SERVICE_PRODUCTS = "Find Rev.io service products"
CREATE_SERVICE_PRODUCT = "Create Rev.io service product"


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

    def basic_auth(self) -> tuple[str, str]:
        """HTTP Basic: ``username@client_code`` and the password."""
        return (f"{self.credentials.username}@{self.credentials.account}", self.credentials.secret)

    def _check_answer(self, response: HttpResponse) -> HttpResponse:
        """Every Rev answer is a JSON object; ``"ok": false`` in one is a refusal, whatever the
        status (its message redacted: Rev has echoed passwords)."""
        body = self._json_object(response)
        if body.get("ok") is False:
            message = str(body.get("message") or "request refused (ok: false)")
            raise PermanentError(
                f"HTTP {response.status} from Rev.io: {redact(message, self.credentials.secrets)}",
                call=response.call,
            )
        return response

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

    def __init__(self, *, credentials: Credentials, **options: Unpack[HttpOptions]) -> None:
        self.credentials = credentials
        self.client = RevClient(credentials=credentials, **options)

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
