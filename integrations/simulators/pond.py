"""POND IoT (Telna distributor PPU API) as ``docs/carriers/pond.md`` describes it.

Client base_url: ``http://127.0.0.1:{port}/pond/ds/u/distributorPPUService/v1``.
Every path starts with the distributor id; every call needs that distributor's ``x-api-key``.
A SIM belongs to one distributor and is invisible (404) to the others. Values are exactly the
Swagger enums (services ``ENABLED``/``DISABLED``; packages ``ACTIVE``/``NOT_ACTIVE``/
``TERMINATED``), so a client that drifts to other spellings gets a 400. Package ids are UUID
strings; the package list is paged (``offset``/``count``, Telna's default count 10, capped by
the ``max_page_size`` knob). Writes answer 204 with an empty body; errors carry Telna's
ErrorMessage body, camelCase as the live API sends it. The simulator does not de-duplicate on
``Idempotency-Key`` or ``RequestId``: each accepted write is applied and counted, so a test
sees repeats.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .carrier import Account, AdminError, CarrierError, CarrierSimulator
from .messages import SimRequest, SimResponse, empty_response, json_response
from .payloads import (
    InvalidPayload,
    one_of,
    optional_int,
    optional_rate,
    required,
    required_list,
    required_str,
)
from .ratelimit import limit_for, rate_window
from .routing import Call, Route

ENABLED = "ENABLED"
DISABLED = "DISABLED"
SERVICE_STATUSES = (ENABLED, DISABLED)
SERVICE_FIELDS = ("sim_data_service_status", "sim_voice_service_status", "sim_sms_service_status")

PRE_SERVICE = "Pre-Service"
IN_SERVICE = "In-Service"
SIM_TERMINATED = "Terminated"
SIM_STATES = (PRE_SERVICE, IN_SERVICE, SIM_TERMINATED)

PACKAGE_ACTIVE = "ACTIVE"
PACKAGE_NOT_ACTIVE = "NOT_ACTIVE"
PACKAGE_TERMINATED = "TERMINATED"
PACKAGE_STATUSES = (PACKAGE_ACTIVE, PACKAGE_NOT_ACTIVE, PACKAGE_TERMINATED)

DEFAULT_RATE_LIMIT = 50.0
DEFAULT_PACKAGE_TYPE_ID = 12
DEFAULT_PAGE_COUNT = 10  # Telna's default ``count``
PACKAGE_NAMESPACE = uuid.UUID("0f6c7d58-7b1e-4c55-9a3c-5d0e2f1a9b30")
SEEDED_AT = 1_700_000_000  # date_created of seeded packages (epoch seconds)
PACKAGE_DAYS = 30

SIM_NOT_FOUND = 40401
PACKAGE_NOT_FOUND = 40402
SIM_TERMINATED_CODE = 40901
PACKAGE_TERMINATED_CODE = 40902


@dataclass
class PondPackage:
    package_id: str
    iccid: str
    status: str
    package_type_id: int

    def as_json(self) -> dict[str, Any]:
        """Telna's ResponsePackage."""
        return {
            "package_id": self.package_id,
            "sim_iccid": self.iccid,
            "status": self.status,
            "package_type_id": self.package_type_id,
            "date_created": SEEDED_AT,
            "date_activated": SEEDED_AT + 100,
            "date_expiry": SEEDED_AT + 100 + PACKAGE_DAYS * 86_400,
        }


@dataclass
class PondSim:
    iccid: str
    distributor_id: str
    services: dict[str, str]
    status_of_sim: str = IN_SERVICE
    packages: list[PondPackage] = field(default_factory=list)

    @property
    def terminated(self) -> bool:
        return self.status_of_sim == SIM_TERMINATED

    def status_json(self) -> dict[str, str]:
        """Telna's ResponseSimStatus; ``status`` is the deprecated summary (ACTIVE while all
        three services are ENABLED), sent so that a client is seen to ignore it."""
        all_enabled = all(status == ENABLED for status in self.services.values())
        return {
            **self.services,
            "status_of_sim": self.status_of_sim,
            "status": "ACTIVE" if all_enabled else "SUSPENDED",
        }


@dataclass
class PondAccount(Account):
    api_key: str = ""


class PondSimulator(CarrierSimulator):
    name = "pond"
    prefix = "/pond/ds/u/distributorPPUService/v1"

    def reset(self) -> None:
        self._accounts: dict[str, PondAccount] = {}
        self._sims: dict[str, PondSim] = {}
        self._packages: dict[str, PondPackage] = {}
        self._max_page_size: int | None = None

    # -- contract ---------------------------------------------------------------------------

    def routes(self) -> Sequence[Route]:
        return [
            Route(
                "GET",
                "/{distributor_id}/sim/{iccid}/status",
                self._read_sim_status,
                op="read_sim_status",
                key=_iccid_key,
            ),
            Route(
                "POST",
                "/{distributor_id}/sim/{iccid}/status",
                self._set_sim_status,
                op="set_sim_status",
                key=_iccid_key,
            ),
            Route(
                "GET",
                "/{distributor_id}/sim/{iccid}/package/infos",
                self._list_packages,
                op="list_packages",
                key=_iccid_key,
            ),
            Route(
                "DELETE",
                "/{distributor_id}/sim/{iccid}/purge",
                self._purge_sim,
                op="purge_sim",
                key=_iccid_key,
            ),
            Route(
                "POST",
                "/{distributor_id}/package/{package_id}/status",
                self._set_package_status,
                op="set_package_status",
                key=self._package_key,
            ),
        ]

    def authenticate(self, call: Call) -> Account:
        distributor_id = call.params["distributor_id"]
        account = self._accounts.get(distributor_id)
        api_key = call.request.header("x-api-key") or ""
        if account is None or not hmac.compare_digest(api_key.encode(), account.api_key.encode()):
            raise CarrierError(401, f"API key rejected for distributor {distributor_id}")
        return account

    def error_response(
        self,
        status: int,
        message: str,
        *,
        code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> SimResponse:
        """Telna's ErrorMessage as the live API sends it (camelCase). Validation answers (400)
        carry no reference id, as in Telna's sample; every other error a fresh UUID."""
        body = {
            "status": status,
            "code": code if code is not None else status * 100 + 1,
            "message": message,
            "link": "Not Available",
            "developerMessage": f"{message} (POND simulator)",
            "referenceId": None if status == 400 else str(uuid.uuid4()),
        }
        return json_response(status, body, headers)

    def finish_response(self, request: SimRequest, response: SimResponse) -> SimResponse:
        """POND returns the caller's ``RequestId`` header on every answer."""
        request_id = request.header("RequestId")
        if request_id is not None:
            response.headers["RequestId"] = request_id
        return response

    def _read_sim_status(self, call: Call) -> SimResponse:
        return json_response(200, self._sim(call).status_json())

    def _set_sim_status(self, call: Call) -> SimResponse:
        """Each service field is optional (Telna's RequestSimStatus); at least one is needed.
        A Terminated SIM cannot be brought back: enabling any service is a 409."""
        sim = self._sim(call)
        payload = call.request.json_object()
        services = {
            name: one_of(payload, name, SERVICE_STATUSES)
            for name in SERVICE_FIELDS
            if name in payload
        }
        if not services:
            raise InvalidPayload(f"one of {', '.join(SERVICE_FIELDS)} is required")
        if sim.terminated and ENABLED in services.values():
            raise CarrierError(
                409,
                f"SIM {sim.iccid} is terminated and cannot be enabled",
                code=SIM_TERMINATED_CODE,
            )
        sim.services.update(services)
        return empty_response(204)

    def _list_packages(self, call: Call) -> SimResponse:
        """Telna's ResponseListResponsePackage, one page: ``count`` (default 10) packages from
        ``offset``, at most ``max_page_size``; the answer's ``count`` is the page size used."""
        sim = self._sim(call)
        offset = _query_int(call, "offset", 0, minimum=0)
        count = _query_int(call, "count", DEFAULT_PAGE_COUNT, minimum=1)
        if self._max_page_size is not None:
            count = min(count, self._max_page_size)
        page = sim.packages[offset : offset + count]
        return json_response(
            200,
            {
                "total": len(sim.packages),
                "offset": offset,
                "count": count,
                "elements": [package.as_json() for package in page],
            },
        )

    def _purge_sim(self, call: Call) -> SimResponse:
        """Terminates the SIM at once: services DISABLED, every package TERMINATED."""
        sim = self._sim(call)
        sim.status_of_sim = SIM_TERMINATED
        sim.services = dict.fromkeys(SERVICE_FIELDS, DISABLED)
        for package in sim.packages:
            package.status = PACKAGE_TERMINATED
        return empty_response(204)

    def _set_package_status(self, call: Call) -> SimResponse:
        package = self._package(call)
        new_status = one_of(call.request.json_object(), "package_status", PACKAGE_STATUSES)
        if package.status == PACKAGE_TERMINATED and new_status != PACKAGE_TERMINATED:
            raise CarrierError(
                409,
                f"Package {package.package_id} is TERMINATED and cannot change status",
                code=PACKAGE_TERMINATED_CODE,
            )
        package.status = new_status
        return empty_response(204)

    def _sim(self, call: Call) -> PondSim:
        sim = self._sims.get(call.params["iccid"])
        if sim is None or sim.distributor_id != call.params["distributor_id"]:
            raise CarrierError(404, "SIM not found", code=SIM_NOT_FOUND)
        return sim

    def _package(self, call: Call) -> PondPackage:
        package = self._packages.get(call.params["package_id"])
        owner = self._sims.get(package.iccid) if package is not None else None
        if (
            package is None
            or owner is None
            or owner.distributor_id != call.params["distributor_id"]
        ):
            raise CarrierError(404, "Package not found", code=PACKAGE_NOT_FOUND)
        return package

    def _package_key(self, call: Call) -> str:
        """Package calls are counted and faulted under the owning SIM's ICCID, so a test can
        target one device's step 2 without knowing its package ids."""
        raw_id = call.params["package_id"]
        package = self._packages.get(raw_id)
        return package.iccid if package is not None else raw_id

    # -- admin ------------------------------------------------------------------------------

    def admin_routes(self) -> Sequence[Route]:
        return [
            Route("POST", "/accounts", self._add_account),
            Route("POST", "/sims", self._seed_sims),
            Route("GET", "/sims/{iccid}", self._show_sim),
            Route("POST", "/paging", self._set_paging),
        ]

    def _add_account(self, call: Call) -> SimResponse:
        payload = call.request.json_object()
        distributor_id = str(required(payload, "distributor_id"))
        rate_limit = optional_rate(payload, "rate_limit", DEFAULT_RATE_LIMIT)
        self._accounts[distributor_id] = PondAccount(
            name=f"distributor {distributor_id}",
            limit=limit_for(rate_limit, rate_window(payload)),
            api_key=required_str(payload, "api_key"),
        )
        return json_response(201, {"distributor_id": distributor_id, "rate_limit": rate_limit})

    def _set_paging(self, call: Call) -> SimResponse:
        """``max_page_size``: the most packages one page holds, whatever ``count`` asks;
        ``null`` = as many as asked."""
        payload = call.request.json_object()
        if "max_page_size" not in payload:
            raise InvalidPayload("max_page_size is required (null: no cap)")
        size = optional_int(payload, "max_page_size")
        if size is not None and size < 1:
            raise InvalidPayload("max_page_size must be a positive integer or null")
        self._max_page_size = size
        return json_response(200, {"max_page_size": size})

    def _seed_sims(self, call: Call) -> SimResponse:
        """Create or replace SIMs; validated in full before any is stored."""
        payload = call.request.json_object()
        distributor_id = str(required(payload, "distributor_id"))
        sims = [self._new_sim(distributor_id, entry) for entry in required_list(payload, "sims")]
        self._check_package_ids(sims)
        for sim in sims:
            self._store(sim)
        return json_response(201, {"seeded": len(sims)})

    def _new_sim(self, distributor_id: str, entry: Any) -> PondSim:
        """``{"iccid", "services"?: ENABLED|DISABLED (all three, default ENABLED),
        "status_of_sim"?: Pre-Service|In-Service|Terminated (default In-Service),
        "packages"?: [{"package_id"?, "status"?, "package_type_id"?}]}``. Without
        ``packages`` the SIM gets one package in its state (ACTIVE, NOT_ACTIVE, or TERMINATED
        for a Terminated SIM); a package without an id gets a UUID derived from the ICCID."""
        if not isinstance(entry, dict):
            raise InvalidPayload("each sim must be an object")
        iccid = required_str(entry, "iccid")
        services = one_of(entry, "services", SERVICE_STATUSES) if "services" in entry else ENABLED
        state = one_of(entry, "status_of_sim", SIM_STATES) if "status_of_sim" in entry else None
        sim = PondSim(
            iccid=iccid,
            distributor_id=distributor_id,
            services=dict.fromkeys(SERVICE_FIELDS, services),
            status_of_sim=state or IN_SERVICE,
        )
        package_entries = entry.get("packages")
        if package_entries is None:
            if sim.terminated:
                default_status = PACKAGE_TERMINATED
            else:
                default_status = PACKAGE_ACTIVE if services == ENABLED else PACKAGE_NOT_ACTIVE
            package_entries = [{"status": default_status}]
        if not isinstance(package_entries, list):
            raise InvalidPayload("packages must be a list")
        for index, package_entry in enumerate(package_entries):
            sim.packages.append(_new_package(iccid, index, package_entry))
        return sim

    def _check_package_ids(self, sims: Sequence[PondSim]) -> None:
        seen: set[str] = set()
        reseeded = {sim.iccid for sim in sims}
        for package in (package for sim in sims for package in sim.packages):
            existing = self._packages.get(package.package_id)
            if package.package_id in seen or (
                existing is not None and existing.iccid not in reseeded
            ):
                raise InvalidPayload(f"package_id {package.package_id} is already in use")
            seen.add(package.package_id)

    def _store(self, sim: PondSim) -> None:
        previous = self._sims.get(sim.iccid)
        if previous is not None:
            for package in previous.packages:
                self._packages.pop(package.package_id, None)
        self._sims[sim.iccid] = sim
        for package in sim.packages:
            self._packages[package.package_id] = package

    def _show_sim(self, call: Call) -> SimResponse:
        sim = self._sims.get(call.params["iccid"])
        if sim is None:
            raise AdminError(404, f"no SIM {call.params['iccid']}")
        return json_response(
            200,
            {
                "iccid": sim.iccid,
                "distributor_id": sim.distributor_id,
                **sim.status_json(),
                "packages": [package.as_json() for package in sim.packages],
            },
        )


def _iccid_key(call: Call) -> str:
    return call.params["iccid"]


def _query_int(call: Call, name: str, default: int, *, minimum: int) -> int:
    raw = call.request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise InvalidPayload(f"{name} must be an integer of at least {minimum}, not {raw!r}")
    return int(raw)


def _new_package(iccid: str, index: int, entry: Mapping[str, Any]) -> PondPackage:
    if not isinstance(entry, dict):
        raise InvalidPayload("each package must be an object")
    package_type_id = optional_int(entry, "package_type_id")
    package_id = (
        required_str(entry, "package_id")
        if "package_id" in entry
        else str(uuid.uuid5(PACKAGE_NAMESPACE, f"{iccid}/{index}"))
    )
    return PondPackage(
        package_id=package_id,
        iccid=iccid,
        status=one_of(entry, "status", PACKAGE_STATUSES) if "status" in entry else PACKAGE_ACTIVE,
        package_type_id=DEFAULT_PACKAGE_TYPE_ID if package_type_id is None else package_type_id,
    )
