"""Rev.io billing API v1 as ``docs/carriers/rev.md`` describes it.

Client base_url: ``http://127.0.0.1:{port}/rev`` (paths ``/v1/Services``,
``/v1/ServiceProducts``). HTTP Basic auth as ``username@client_code:password``. Each client
code is its own Rev tenant: its customers, services and products are invisible to others.
Creating never de-duplicates — two POSTs make two services — so a test can catch a client that
skips the look-up-before-create rule.
"""

from __future__ import annotations

import hmac
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .carrier import Account, CarrierError, CarrierSimulator
from .messages import SimRequest, SimResponse, json_response
from .payloads import (
    InvalidPayload,
    optional_int,
    optional_rate,
    required,
    required_int,
    required_str,
)
from .ratelimit import bucket_for
from .routing import Call, Route

DEFAULT_RATE_LIMIT = 50.0
FIRST_SERVICE_ID = 800
FIRST_SERVICE_PRODUCT_ID = 9900

# Service fields stored as sent (besides the required ones) and shown by /_sim/rev/services.
OPTIONAL_SERVICE_FIELDS = (
    "number2",
    "provider_id",
    "activated_date",
    "effective_date",
    "usage_plan_group_id",
    "package_id",
)
OPTIONAL_PRODUCT_FIELDS = ("rate", "prorate", "quantity", "effective_date", "activated_date")


@dataclass
class RevAccount(Account):
    client_code: str = ""
    username: str = ""
    password: str = ""
    customer_ids: set[int] = field(default_factory=set)


@dataclass
class RevServiceProduct:
    service_product_id: int
    service_id: int
    product_id: int
    details: dict[str, Any]

    def record(self) -> dict[str, Any]:
        return {
            "service_product_id": self.service_product_id,
            "service_id": self.service_id,
            "product_id": self.product_id,
        }


@dataclass
class RevService:
    service_id: int
    client_code: str
    customer_id: int
    service_type_id: int
    number: str
    details: dict[str, Any]
    products: list[RevServiceProduct] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {
            "service_id": self.service_id,
            "number": self.number,
            "customer_id": self.customer_id,
            "service_type_id": self.service_type_id,
        }


class RevSimulator(CarrierSimulator):
    name = "rev"
    prefix = "/rev"

    def reset(self) -> None:
        self._accounts: dict[str, RevAccount] = {}
        self._services: dict[int, RevService] = {}
        self._products: dict[int, RevServiceProduct] = {}
        self._service_ids: Iterator[int] = itertools.count(FIRST_SERVICE_ID)
        self._product_ids: Iterator[int] = itertools.count(FIRST_SERVICE_PRODUCT_ID)

    # -- contract ---------------------------------------------------------------------------

    def routes(self) -> Sequence[Route]:
        return [
            Route(
                "GET", "/v1/Services", self._find_services, op="find_services", key=_searched_number
            ),
            Route(
                "POST",
                "/v1/Services",
                self._create_service,
                op="create_service",
                key=_posted_number,
            ),
            Route(
                "GET",
                "/v1/ServiceProducts",
                self._find_service_products,
                op="find_service_products",
                key=self._searched_service_number,
            ),
            Route(
                "POST",
                "/v1/ServiceProducts",
                self._create_service_product,
                op="create_service_product",
                key=self._posted_service_number,
            ),
        ]

    def authenticate(self, call: Call) -> Account:
        credentials = _rev_credentials(call.request)
        if credentials is None:
            raise CarrierError(401, "Authorization required: Basic username@client_code:password")
        username, client_code, password = credentials
        account = self._accounts.get(client_code)
        if (
            account is None
            or not hmac.compare_digest(username.encode(), account.username.encode())
            or not hmac.compare_digest(password.encode(), account.password.encode())
        ):
            raise CarrierError(401, f"Invalid credentials for client {client_code}")
        return account

    def error_response(
        self,
        status: int,
        message: str,
        *,
        code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> SimResponse:
        return json_response(status, {"ok": False, "message": message}, headers)

    def _find_services(self, call: Call) -> SimResponse:
        account = _rev_account(call)
        query = call.request.query
        number = query.get("search.number")
        customer_id = _query_int(query, "search.customer_id")
        records = [
            service.record()
            for service in self._services.values()
            if service.client_code == account.client_code
            and (number is None or service.number == number)
            and (customer_id is None or service.customer_id == customer_id)
        ]
        return _records(records)

    def _create_service(self, call: Call) -> SimResponse:
        account = _rev_account(call)
        payload = call.request.json_object()
        customer_id = required_int(payload, "customer_id")
        service_type_id = required_int(payload, "service_type_id")
        number = required_str(payload, "number")
        if customer_id not in account.customer_ids:
            raise CarrierError(404, f"Customer {customer_id} not found")
        service = RevService(
            service_id=next(self._service_ids),
            client_code=account.client_code,
            customer_id=customer_id,
            service_type_id=service_type_id,
            number=number,
            details={name: payload.get(name) for name in OPTIONAL_SERVICE_FIELDS},
        )
        self._services[service.service_id] = service
        return json_response(201, {"ok": True, "id": service.service_id})

    def _find_service_products(self, call: Call) -> SimResponse:
        account = _rev_account(call)
        service_id = _query_int(call.request.query, "search.service_id")
        records = [
            product.record()
            for product in self._products.values()
            if self._services[product.service_id].client_code == account.client_code
            and (service_id is None or product.service_id == service_id)
        ]
        return _records(records)

    def _create_service_product(self, call: Call) -> SimResponse:
        account = _rev_account(call)
        payload = call.request.json_object()
        service_id = required_int(payload, "service_id")
        product_id = required_int(payload, "product_id")
        customer_id = optional_int(payload, "customer_id")
        service = self._services.get(service_id)
        if service is None or service.client_code != account.client_code:
            raise CarrierError(404, f"Service {service_id} not found")
        if customer_id is not None and customer_id != service.customer_id:
            raise CarrierError(400, f"Customer {customer_id} does not own service {service_id}")
        product = RevServiceProduct(
            service_product_id=next(self._product_ids),
            service_id=service_id,
            product_id=product_id,
            details={name: payload.get(name) for name in OPTIONAL_PRODUCT_FIELDS},
        )
        self._products[product.service_product_id] = product
        service.products.append(product)
        return json_response(201, {"ok": True, "id": product.service_product_id})

    def _searched_service_number(self, call: Call) -> str | None:
        """Product calls are counted under the service's number (the device's key)."""
        return self._service_number(call.request.query.get("search.service_id"))

    def _posted_service_number(self, call: Call) -> str | None:
        service_id = call.request.json_object().get("service_id")
        return self._service_number(None if service_id is None else str(service_id))

    def _service_number(self, raw_service_id: str | None) -> str | None:
        if raw_service_id is None:
            return None
        service = self._services.get(int(raw_service_id)) if raw_service_id.isdigit() else None
        return service.number if service is not None else raw_service_id

    # -- admin ------------------------------------------------------------------------------

    def admin_routes(self) -> Sequence[Route]:
        return [
            Route("POST", "/accounts", self._add_account),
            Route("POST", "/customers", self._add_customers),
            Route("GET", "/services", self._show_services),
        ]

    def _add_account(self, call: Call) -> SimResponse:
        payload = call.request.json_object()
        client_code = required_str(payload, "client_code")
        rate_limit = optional_rate(payload, "rate_limit", DEFAULT_RATE_LIMIT)
        previous = self._accounts.get(client_code)
        self._accounts[client_code] = RevAccount(
            name=f"client {client_code}",
            bucket=bucket_for(rate_limit),
            client_code=client_code,
            username=required_str(payload, "username"),
            password=required_str(payload, "password"),
            customer_ids=previous.customer_ids if previous is not None else set(),
        )
        return json_response(201, {"client_code": client_code, "rate_limit": rate_limit})

    def _add_customers(self, call: Call) -> SimResponse:
        payload = call.request.json_object()
        client_code = required_str(payload, "client_code")
        account = self._accounts.get(client_code)
        if account is None:
            raise InvalidPayload(f"no Rev account {client_code!r}; add it first")
        customer_ids = required(payload, "customer_ids")
        if not isinstance(customer_ids, list) or not all(
            isinstance(customer_id, int) and not isinstance(customer_id, bool)
            for customer_id in customer_ids
        ):
            raise InvalidPayload("customer_ids must be a list of integers")
        account.customer_ids.update(customer_ids)
        return json_response(201, {"customer_ids": sorted(account.customer_ids)})

    def _show_services(self, call: Call) -> SimResponse:
        services = [
            {
                **service.record(),
                "client_code": service.client_code,
                **service.details,
                "products": [
                    {**product.record(), **product.details} for product in service.products
                ],
            }
            for service in self._services.values()
        ]
        return json_response(200, {"services": services})


def _rev_account(call: Call) -> RevAccount:
    assert isinstance(call.account, RevAccount)
    return call.account


def _records(records: list[dict[str, Any]]) -> SimResponse:
    return json_response(200, {"records": records, "total_count": len(records), "ok": True})


def _query_int(query: dict[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise InvalidPayload(f"{name} must be an integer")
    return int(value)


def _searched_number(call: Call) -> str | None:
    return call.request.query.get("search.number")


def _posted_number(call: Call) -> str | None:
    number = call.request.json_object().get("number")
    return None if number is None else str(number)


def _rev_credentials(request: SimRequest) -> tuple[str, str, str] | None:
    """``(username, client_code, password)`` from ``Basic b64(username@client_code:password)``;
    the client code follows the *last* ``@`` so a username may itself contain one."""
    credentials = request.basic_credentials()
    if credentials is None:
        return None
    user_part, password = credentials
    username, at, client_code = user_part.rpartition("@")
    return (username, client_code, password) if at and username and client_code else None
