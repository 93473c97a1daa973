"""Rev.io billing: the client, and the two steps that open a Rev service per device after its
carrier change succeeded. The request they carry out — :class:`RevServiceRequest`, legacy
``BulkChangeAssociateCustomer`` — is parsed in :mod:`integrations.rev_request`.

Wire contract: ``docs/carriers/rev.md``. Each Rev object is created **at most once** per device,
even across retries and crashes: Rev.io has no idempotency key, so the service is looked up by
number and customer — every page of the answer — before it is created (and not looked up at
all once its id is recorded), and service products are looked up once per attempt, only the
missing ones created.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Unpack
from urllib.parse import urlsplit

import requests

from integrations.base.audit import CallRecord, redact
from integrations.base.errors import PermanentError, TransientError, parse_retry_after
from integrations.base.http import (
    CarrierClient,
    CarrierHttp,
    HttpOptions,
    HttpResponse,
    readable_error,
    unexpected_response,
)
from integrations.base.origins import Origin, known
from integrations.base.protocol import Credentials, Step, StepResult, UpdateContext
from integrations.base.registry import Integration
from integrations.rev_request import RevServiceRequest

FIND_SERVICE = "Find Rev.io service"
CREATE_SERVICE = "Create Rev.io service"
FIND_SERVICE_PRODUCTS = "Find Rev.io service products"
CREATE_SERVICE_PRODUCT = "Create Rev.io service product"

API_PREFIX = "/v1"  # appended by the client: base_url is the origin only
BASE_URL_WITH_PREFIX = "Rev.io base_url must be the host only; PondOps adds /v1"
SUBSCRIPTION_KEY_HEADER = "Ocp-Apim-Subscription-Key"
SERVICES_PAGE_SIZE = 100
SERVICE_PRODUCTS_PAGE_SIZE = 500  # Rev's maximum
# A look-up that has not ended after this many pages is refused rather than read on forever
# (10,000 services for one number and customer, 500,000 products for one service).
MAX_PAGES = 100

_QUOTA_ANSWER = re.compile(r"out of call volume quota", re.IGNORECASE)
# Azure API management's quota message: "Quota will be replenished in 00:00:35." (a .NET
# TimeSpan, days first when there are any: "1.02:03:04").
_QUOTA_RENEWAL = re.compile(r"replenished in (?:(\d+)\.)?(\d+):(\d{2}):(\d{2})", re.IGNORECASE)
# Its rate-limit message: "Rate limit is exceeded. Try again in 35 seconds."
_SECONDS_IN_MESSAGE = re.compile(r"(\d+)\s*seconds?\b", re.IGNORECASE)


# --- The client ------------------------------------------------------------------------------


def _rev_date(value: date | None) -> str | None:
    """Rev's date format: ``2026-11-22Z``."""
    return f"{value.isoformat()}Z" if value else None


def _message_seconds(text: str) -> float | None:
    """The seconds an API-management 429 message asks us to wait, plus one (the contract)."""
    found = _SECONDS_IN_MESSAGE.search(text)
    return float(int(found.group(1)) + 1) if found else None


def _quota_renewal_seconds(text: str) -> float | None:
    """When an API-management quota message says the quota renews, in seconds from now."""
    found = _QUOTA_RENEWAL.search(text)
    if found is None:
        return None
    days, hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


class RevHttp(CarrierHttp):
    """The shared HTTP mechanism plus Rev.io's two exceptions to the common classification
    (``docs/carriers/rev.md``, Errors):

    - 403 "Out of call volume quota …" (API management's quota) is transient until the quota
      renews: ``Retry-After``, else the renewal time in the message, else the normal back-off.
      Every other 401/403 stays a permanent authentication error.
    - 429 without ``Retry-After`` waits the seconds its message names, plus one.
    """

    def _raise_for(
        self, response: requests.Response, call: CallRecord, *, auth_failure: str
    ) -> None:
        status = response.status_code
        header = parse_retry_after(response.headers.get("Retry-After"))
        if status == 403 and _QUOTA_ANSWER.search(response.text or ""):
            message = redact(readable_error(self.carrier, response), self.credentials.secrets)
            retry_after = header if header is not None else _quota_renewal_seconds(message)
            raise TransientError(message, call=call, retry_after=retry_after)
        if status == 429 and header is None:
            message = redact(readable_error(self.carrier, response), self.credentials.secrets)
            seconds = _message_seconds(message)
            if seconds is not None:
                self.throttle.penalise(seconds)
                raise TransientError(message, call=call, retry_after=seconds)
        super()._raise_for(response, call, auth_failure=auth_failure)


class RevClient(CarrierClient):
    """Rev.io's billing API v1 under ``{base_url}/v1``: HTTP Basic
    ``username@client_code:password`` on every call, plus ``Ocp-Apim-Subscription-Key`` when
    the credentials row holds an API-management subscription key (its ``secret_2``).

    A look-up reads every page until the record is found or ``has_more`` is false; every other
    method makes exactly one HTTP call. All raise our error types; a 2xx answer with ``"ok":
    false`` is a PermanentError carrying Rev's message.
    """

    carrier = "Rev.io"
    http_class = RevHttp

    @classmethod
    def auth_failure(cls, credentials: Credentials) -> str:
        return f"Rev.io rejected the credentials for client {credentials.account}"

    def auth_headers(self) -> dict[str, str]:
        """The API-management subscription key, when the row has one (the tenant's key)."""
        key = self.credentials.secret_2
        return {SUBSCRIPTION_KEY_HEADER: key} if key else {}

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

    def _pages(
        self, path: str, description: str, *, search: Mapping[str, Any], page_size: int
    ) -> Iterator[tuple[list[Mapping[str, Any]], CallRecord]]:
        """Each page of a collection, first to last: ``search`` and ``page_size``, then
        ``page`` from 2 on, while the answer says ``has_more``. A page that is not a
        collection, an empty page that says more follow, or more than :data:`MAX_PAGES` pages
        is an error — never "nothing found", which would create a second service."""
        last_call: CallRecord | None = None
        for page in range(1, MAX_PAGES + 1):
            params: dict[str, Any] = {**search, "page_size": page_size}
            if page > 1:
                params["page"] = page
            response = self._call("GET", API_PREFIX + path, description, params=params)
            records, has_more = _collection(response)
            yield records, response.call
            if not has_more:
                return
            if not records:
                raise unexpected_response(
                    "Rev.io", "records on a page that says more follow", response.call
                )
            last_call = response.call
        raise PermanentError(
            f"Rev.io look-up ({description}) ran past {MAX_PAGES} pages of {page_size} records; "
            "not guessing whether the record exists",
            call=last_call,
        )

    def find_service(self, *, number: str, customer_id: int) -> int | None:
        """The id of the customer's service for ``number``, or None when, after every page,
        it has none."""
        search = {"search.number": number, "search.customer_id": customer_id}
        pages = self._pages("/Services", FIND_SERVICE, search=search, page_size=SERVICES_PAGE_SIZE)
        for records, call in pages:
            for record in records:
                # Rev's search may match loosely: only this number and customer count.
                if _equals(record, "number", number) and _equals(
                    record, "customer_id", customer_id
                ):
                    return _id(record, "service_id", call)
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
            API_PREFIX + "/Services",
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
        """The service's products, from every page: product_id → service_product_id."""
        found: dict[int, int] = {}
        pages = self._pages(
            "/ServiceProducts",
            FIND_SERVICE_PRODUCTS,
            search={"search.service_id": service_id},
            page_size=SERVICE_PRODUCTS_PAGE_SIZE,
        )
        for records, call in pages:
            for record in records:
                if not _equals(record, "service_id", service_id):
                    continue
                product_id = _id(record, "product_id", call)
                found.setdefault(product_id, _id(record, "service_product_id", call))
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
            API_PREFIX + "/ServiceProducts",
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


def _collection(response: HttpResponse) -> tuple[list[Mapping[str, Any]], bool]:
    """A collection page's records and its ``has_more``. A body without either is an error:
    reading it as "nothing (more) found" would create a second service."""
    records = response.body.get("records")
    if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
        raise unexpected_response("Rev.io", "a list of records", response.call)
    has_more = response.body.get("has_more")
    if not isinstance(has_more, bool):
        raise unexpected_response("Rev.io", "a has_more flag", response.call)
    return records, has_more


def _equals(record: Mapping[str, Any], key: str, expected: object) -> bool:
    """The record's field is present and equals ``expected`` (compared as text)."""
    value = record.get(key)
    return value is not None and str(value).strip() == str(expected)


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
    # rev.md: the documented host and the API-management host Rev.io announced.
    known_origins: ClassVar[tuple[Origin, ...]] = (
        known("https://restapi.rev.io"),
        known("https://api.revioapi.com"),
    )
    base_path: ClassVar[str] = ""
    # The password; the API-management subscription key (secret_2) only where one is stored.
    secret_fields: ClassVar[tuple[str, ...]] = ("secret",)
    steps: ClassVar[tuple[Step, ...]] = (Step.REV_SERVICE, Step.REV_PRODUCTS)
    descriptions: ClassVar[Mapping[Step, str]] = {
        Step.REV_SERVICE: CREATE_SERVICE,
        Step.REV_PRODUCTS: CREATE_SERVICE_PRODUCT,
    }
    # The contract's limits for a new credentials row, as StatusUpdateProcessor names them:
    # Rev.io allows 500 calls a minute per account (8.3 a second), so at most 8.
    default_rate_limit: ClassVar[float] = 8.0
    default_max_concurrency: ClassVar[int] = 4

    def __init__(self, *, credentials: Credentials, **options: Unpack[HttpOptions]) -> None:
        self.credentials = credentials
        self.client = RevClient(credentials=credentials, **options)

    @classmethod
    def account_label(cls, credentials: Credentials) -> str:
        return f"Rev.io client {credentials.account}"

    @classmethod
    def validate_base_url(cls, base_url: str) -> list[str]:
        """A Rev.io ``base_url`` is the origin only (``https://restapi.rev.io``); the client
        appends ``/v1``, so a value that already holds a ``v1`` segment would double it."""
        segments = urlsplit(base_url.strip()).path.lower().split("/")
        return [BASE_URL_WITH_PREFIX] if API_PREFIX.strip("/") in segments else []

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
