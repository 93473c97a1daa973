"""Rev.io billing API v1 as ``docs/carriers/rev.md`` describes it, behind Rev.io's API
management (Azure APIM).

Client base_url: ``http://127.0.0.1:{port}/rev`` (paths ``/v1/Services``,
``/v1/ServiceProducts``). HTTP Basic auth as ``username@client_code:password``; an account
given a ``subscription_key`` also needs ``Ocp-Apim-Subscription-Key`` on every call. Each client
code is its own Rev tenant: its customers, services and products are invisible to others.
Creating never de-duplicates — two POSTs make two services — so a test can catch a client that
skips the look-up-before-create rule.

Collections are paged (``page_size`` 1 to 500, default 10; ``page`` from 1) and answer
``{"ok", "has_more", "record_count", "records"}``. Knobs (``/_sim/rev/config``):
``max_page_size`` caps every page below what the client asked; ``number_search`` makes
``search.number`` match ``exact`` (default), by ``contains``, or be ``ignored`` (Rev's loose
search: every service of the customer comes back); ``retry_after_header`` false leaves the
seconds of a 429 or a quota 403 in the message only. API management's answers have its own
body, ``{"statusCode", "message"}``: 401 for a missing or wrong key, 429 past the account's
calls a minute (default 500), 403 "Out of call volume quota" past its quota (default 150,000
calls a day; the period is a knob).
"""

from __future__ import annotations

import hmac
import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .carrier import Account, CarrierError, CarrierSimulator
from .messages import SimRequest, SimResponse, json_response
from .payloads import (
    InvalidPayload,
    one_of,
    optional_int,
    optional_rate,
    required,
    required_int,
    required_list,
    required_str,
)
from .ratelimit import minute_limit_for, rate_window
from .routing import Call, Handler, Route

DEFAULT_CALLS_PER_MINUTE = 500.0
DEFAULT_QUOTA_CALLS = 150_000
DEFAULT_QUOTA_PERIOD_SECONDS = 86_400.0
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 500
FIRST_SERVICE_ID = 800
FIRST_SERVICE_PRODUCT_ID = 9900
SUBSCRIPTION_KEY_HEADER = "Ocp-Apim-Subscription-Key"
NUMBER_SEARCHES = ("exact", "contains", "ignored")
# ``code`` of a CarrierError answered by API management rather than by Rev.io (Rev has no codes).
GATEWAY = 1

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
class RevQuota:
    """API management's call-volume quota: ``calls`` per ``period_seconds``, from the first."""

    calls: int
    period_seconds: float
    used: int = 0
    started: float | None = None

    def take(self, now: float) -> float | None:
        """Count one call; the seconds until the quota renews when it is used up."""
        if self.started is None or now - self.started >= self.period_seconds:
            self.started, self.used = now, 0
        if self.used >= self.calls:
            return self.started + self.period_seconds - now
        self.used += 1
        return None


@dataclass
class RevAccount(Account):
    client_code: str = ""
    username: str = ""
    password: str = ""
    subscription_key: str = ""  # "" = API management asks for none
    quota: RevQuota | None = None
    customer_ids: set[int] = field(default_factory=set)


@dataclass
class RevConfig:
    max_page_size: int | None = None
    number_search: str = "exact"
    retry_after_header: bool = True

    def describe(self) -> dict[str, Any]:
        return {
            "max_page_size": self.max_page_size,
            "number_search": self.number_search,
            "retry_after_header": self.retry_after_header,
        }


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

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        super().__init__()

    def reset(self) -> None:
        self._accounts: dict[str, RevAccount] = {}
        self._services: dict[int, RevService] = {}
        self._products: dict[int, RevServiceProduct] = {}
        self._service_ids: Iterator[int] = itertools.count(FIRST_SERVICE_ID)
        self._product_ids: Iterator[int] = itertools.count(FIRST_SERVICE_PRODUCT_ID)
        self.config = RevConfig()

    # -- contract ---------------------------------------------------------------------------

    def routes(self) -> Sequence[Route]:
        return [
            Route(
                "GET",
                "/v1/Services",
                self._metered(self._find_services),
                op="find_services",
                key=_searched_number,
            ),
            Route(
                "POST",
                "/v1/Services",
                self._metered(self._create_service),
                op="create_service",
                key=_posted_number,
            ),
            Route(
                "GET",
                "/v1/ServiceProducts",
                self._metered(self._find_service_products),
                op="find_service_products",
                key=self._searched_service_number,
            ),
            Route(
                "POST",
                "/v1/ServiceProducts",
                self._metered(self._create_service_product),
                op="create_service_product",
                key=self._posted_service_number,
            ),
        ]

    def authenticate(self, call: Call) -> Account:
        """API management's subscription key first (when the account has one), then Rev's
        Basic credentials."""
        credentials = _rev_credentials(call.request)
        account = self._accounts.get(credentials[1]) if credentials is not None else None
        if account is not None and account.subscription_key:
            key = call.request.header(SUBSCRIPTION_KEY_HEADER)
            if not key:
                raise CarrierError(
                    401,
                    "Access denied due to missing subscription key. Make sure to include "
                    "subscription key when making requests to an API.",
                    code=GATEWAY,
                )
            if not hmac.compare_digest(key.encode(), account.subscription_key.encode()):
                raise CarrierError(
                    401,
                    "Access denied due to invalid subscription key. Make sure to provide a "
                    "valid key for an active subscription.",
                    code=GATEWAY,
                )
        if credentials is None:
            raise CarrierError(401, "Authorization required: Basic username@client_code:password")
        username, client_code, password = credentials
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
        """Rev's ``{"ok": false, "message"}``; API management's ``{"statusCode", "message"}``
        for its own answers and every 429 (its rate limit)."""
        headers = dict(headers or {})
        if status == 429:
            seconds = headers.get("Retry-After") or "1"
            message = f"Rate limit is exceeded. Try again in {seconds} seconds."
            code = GATEWAY
        if code == GATEWAY:
            if not self.config.retry_after_header:
                headers.pop("Retry-After", None)
            return json_response(status, {"statusCode": status, "message": message}, headers)
        return json_response(status, {"ok": False, "message": message}, headers)

    def _metered(self, handler: Handler) -> Handler:
        """``handler`` behind API management's call-volume quota: past it, 403 "Out of call
        volume quota" with the renewal in ``Retry-After`` and in the message."""

        def metered(call: Call) -> SimResponse:
            account = _rev_account(call)
            renews_in = account.quota.take(self._clock()) if account.quota else None
            if renews_in is None:
                return handler(call)
            seconds = max(1, math.ceil(renews_in))
            hours, rest = divmod(seconds, 3600)
            message = (
                "Out of call volume quota. Quota will be replenished in "
                f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}."
            )
            return self.error_response(
                403, message, code=GATEWAY, headers={"Retry-After": str(seconds)}
            )

        return metered

    def _find_services(self, call: Call) -> SimResponse:
        account = _rev_account(call)
        query = call.request.query
        number = query.get("search.number")
        customer_id = _query_int(query, "search.customer_id")
        records = [
            service.record()
            for service in self._services.values()
            if service.client_code == account.client_code
            and self._number_matches(service.number, number)
            and (customer_id is None or service.customer_id == customer_id)
        ]
        return self._page(query, records)

    def _number_matches(self, number: str, searched: str | None) -> bool:
        if searched is None or self.config.number_search == "ignored":
            return True
        if self.config.number_search == "contains":
            return searched in number
        return number == searched

    def _create_service(self, call: Call) -> SimResponse:
        account = _rev_account(call)
        payload = call.request.json_object()
        customer_id = required_int(payload, "customer_id")
        service_type_id = required_int(payload, "service_type_id")
        number = required_str(payload, "number")
        if customer_id not in account.customer_ids:
            raise CarrierError(404, f"Customer {customer_id} not found")
        service = self._add_service(
            account,
            customer_id=customer_id,
            service_type_id=service_type_id,
            number=number,
            details={name: payload.get(name) for name in OPTIONAL_SERVICE_FIELDS},
        )
        return _created(call, service.service_id)

    def _add_service(
        self,
        account: RevAccount,
        *,
        customer_id: int,
        service_type_id: int,
        number: str,
        details: dict[str, Any],
    ) -> RevService:
        service = RevService(
            service_id=next(self._service_ids),
            client_code=account.client_code,
            customer_id=customer_id,
            service_type_id=service_type_id,
            number=number,
            details=details,
        )
        self._services[service.service_id] = service
        return service

    def _find_service_products(self, call: Call) -> SimResponse:
        account = _rev_account(call)
        query = call.request.query
        service_id = _query_int(query, "search.service_id")
        records = [
            product.record()
            for product in self._products.values()
            if self._services[product.service_id].client_code == account.client_code
            and (service_id is None or product.service_id == service_id)
        ]
        return self._page(query, records)

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
        return _created(call, product.service_product_id)

    def _page(self, query: dict[str, str], records: list[dict[str, Any]]) -> SimResponse:
        """One page of ``records`` (in id order) as Rev's collection answer."""
        page_size = _query_int(query, "page_size")
        page = _query_int(query, "page")
        if page_size is None:
            page_size = DEFAULT_PAGE_SIZE
        elif not 1 <= page_size <= MAX_PAGE_SIZE:
            raise CarrierError(400, f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        if page is None:
            page = 1
        elif page < 1:
            raise CarrierError(400, "page must be 1 or more")
        if self.config.max_page_size is not None:
            page_size = min(page_size, self.config.max_page_size)
        first = (page - 1) * page_size
        shown = records[first : first + page_size]
        return json_response(
            200,
            {
                "ok": True,
                "has_more": first + page_size < len(records),
                "record_count": len(shown),
                "records": shown,
            },
        )

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
            Route("POST", "/services", self._seed_services),
            Route("GET", "/services", self._show_services),
            Route("GET", "/config", self._show_config),
            Route("POST", "/config", self._update_config),
        ]

    def _add_account(self, call: Call) -> SimResponse:
        payload = call.request.json_object()
        client_code = required_str(payload, "client_code")
        # Calls a minute (API management's rate limit): default 500; 0/null means unlimited.
        per_minute = optional_rate(payload, "calls_per_minute", DEFAULT_CALLS_PER_MINUTE) or None
        quota_calls = optional_int(payload, "quota_calls")
        quota_period = optional_rate(payload, "quota_period_seconds", DEFAULT_QUOTA_PERIOD_SECONDS)
        subscription_key = payload.get("subscription_key") or ""
        if not isinstance(subscription_key, str):
            raise InvalidPayload("subscription_key must be a string or null")
        previous = self._accounts.get(client_code)
        self._accounts[client_code] = RevAccount(
            name=f"client {client_code}",
            limit=minute_limit_for(per_minute, rate_window(payload)),
            client_code=client_code,
            username=required_str(payload, "username"),
            password=required_str(payload, "password"),
            subscription_key=subscription_key,
            quota=RevQuota(
                calls=DEFAULT_QUOTA_CALLS if quota_calls is None else quota_calls,
                period_seconds=quota_period or DEFAULT_QUOTA_PERIOD_SECONDS,
            ),
            customer_ids=previous.customer_ids if previous is not None else set(),
        )
        return json_response(201, {"client_code": client_code, "calls_per_minute": per_minute})

    def _known_account(self, payload: dict[str, Any]) -> RevAccount:
        client_code = required_str(payload, "client_code")
        account = self._accounts.get(client_code)
        if account is None:
            raise InvalidPayload(f"no Rev account {client_code!r}; add it first")
        return account

    def _add_customers(self, call: Call) -> SimResponse:
        payload = call.request.json_object()
        account = self._known_account(payload)
        customer_ids = required(payload, "customer_ids")
        if not isinstance(customer_ids, list) or not all(
            isinstance(customer_id, int) and not isinstance(customer_id, bool)
            for customer_id in customer_ids
        ):
            raise InvalidPayload("customer_ids must be a list of integers")
        account.customer_ids.update(customer_ids)
        return json_response(201, {"customer_ids": sorted(account.customer_ids)})

    def _seed_services(self, call: Call) -> SimResponse:
        """Services that already exist in Rev (``{"customer_id", "number",
        "service_type_id"?}``), in order; their customers become the account's. Returns the
        new ids."""
        payload = call.request.json_object()
        account = self._known_account(payload)
        entries = required_list(payload, "services")
        for entry in entries:
            if not isinstance(entry, dict):
                raise InvalidPayload("services must be a list of objects")
            required_int(entry, "customer_id")
            required_str(entry, "number")
            optional_int(entry, "service_type_id")
        ids = []
        for entry in entries:
            account.customer_ids.add(entry["customer_id"])
            service = self._add_service(
                account,
                customer_id=entry["customer_id"],
                service_type_id=entry.get("service_type_id") or 7,
                number=entry["number"],
                details={"seeded": True},
            )
            ids.append(service.service_id)
        return json_response(201, {"service_ids": ids})

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

    def _show_config(self, call: Call) -> SimResponse:
        return json_response(200, self.config.describe())

    def _update_config(self, call: Call) -> SimResponse:
        payload = call.request.json_object()
        if "max_page_size" in payload:
            size = optional_int(payload, "max_page_size")
            if size is not None and not 1 <= size <= MAX_PAGE_SIZE:
                raise InvalidPayload(f"max_page_size must be 1 to {MAX_PAGE_SIZE} or null")
            self.config.max_page_size = size
        if "number_search" in payload:
            self.config.number_search = one_of(payload, "number_search", NUMBER_SEARCHES)
        if "retry_after_header" in payload:
            flag = payload["retry_after_header"]
            if not isinstance(flag, bool):
                raise InvalidPayload("retry_after_header must be true or false")
            self.config.retry_after_header = flag
        return json_response(200, self.config.describe())


def _rev_account(call: Call) -> RevAccount:
    assert isinstance(call.account, RevAccount)
    return call.account


def _created(call: Call, new_id: int) -> SimResponse:
    """201 Created with the new resource's ``Location`` and ``{"ok": true, "id"}``."""
    location = f"{call.request.path}/{new_id}"
    return json_response(201, {"ok": True, "id": new_id}, {"Location": location})


def _query_int(query: dict[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise CarrierError(400, f"{name} must be an integer")
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
