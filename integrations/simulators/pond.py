"""POND IoT (Telna distributor PPU API) as ``docs/carriers/pond.md`` describes it.

Client base_url: ``http://127.0.0.1:{port}/pond/ds/u/distributorPPUService/v1``.
Every path starts with the distributor id; every call needs that distributor's ``x-api-key``.
A SIM belongs to one distributor and is invisible (404) to the others. Writes answer 204
with an empty body; errors carry POND's ErrorMessage body. The simulator does not de-duplicate
on ``Idempotency-Key``: each accepted write is applied and counted, so a test sees repeats.
"""

from __future__ import annotations

import hmac
import itertools
import uuid
from collections.abc import Iterator, Mapping, Sequence
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
    required_int,
    required_list,
    required_str,
)
from .ratelimit import bucket_for
from .routing import Call, Route

ACTIVE = "Active"
INACTIVE = "Inactive"
SERVICE_STATUSES = (ACTIVE, INACTIVE)
SERVICE_FIELDS = ("sim_data_service_status", "sim_voice_service_status", "sim_sms_service_status")

PACKAGE_ACTIVE = "Active"
PACKAGE_NOT_ACTIVE = "Not Active"
PACKAGE_TERMINATED = "Terminated"
PACKAGE_STATUSES = (PACKAGE_ACTIVE, PACKAGE_NOT_ACTIVE, PACKAGE_TERMINATED)

DEFAULT_RATE_LIMIT = 50.0
DEFAULT_PACKAGE_TYPE_ID = 12
FIRST_GENERATED_PACKAGE_ID = 900_000

SIM_NOT_FOUND = 40401
PACKAGE_NOT_FOUND = 40402
SIM_TERMINATED = 40901
PACKAGE_TERMINATED_CODE = 40902


@dataclass
class PondPackage:
    package_id: int
    iccid: str
    package_status: str
    package_type_id: int

    def as_json(self) -> dict[str, Any]:
        return {
            "package_id": self.package_id,
            "package_status": self.package_status,
            "package_type_id": self.package_type_id,
        }


@dataclass
class PondSim:
    iccid: str
    distributor_id: str
    services: dict[str, str]
    packages: list[PondPackage] = field(default_factory=list)

    @property
    def terminated(self) -> bool:
        """A SIM with any Terminated package is terminated (``docs/carriers/pond.md``)."""
        return any(package.package_status == PACKAGE_TERMINATED for package in self.packages)

    def status_json(self) -> dict[str, str]:
        """``sim_status`` is Active only while all three services are Active."""
        all_active = all(status == ACTIVE for status in self.services.values())
        return {"sim_status": ACTIVE if all_active else INACTIVE, **self.services}


@dataclass
class PondAccount(Account):
    api_key: str = ""


class PondSimulator(CarrierSimulator):
    name = "pond"
    prefix = "/pond/ds/u/distributorPPUService/v1"

    def reset(self) -> None:
        self._accounts: dict[str, PondAccount] = {}
        self._sims: dict[str, PondSim] = {}
        self._packages: dict[int, PondPackage] = {}
        self._package_ids: Iterator[int] = itertools.count(FIRST_GENERATED_PACKAGE_ID)

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
        body = {
            "status": status,
            "code": code if code is not None else status * 100 + 1,
            "message": message,
            "developer_message": f"{message} (POND simulator)",
            "reference_id": str(uuid.uuid4()),
        }
        return json_response(status, body, headers)

    def finish_response(self, request: SimRequest, response: SimResponse) -> SimResponse:
        """POND echoes the caller's ``request_id`` header on every answer."""
        request_id = request.header("request_id")
        if request_id is not None:
            response.headers["request_id"] = request_id
        return response

    def _read_sim_status(self, call: Call) -> SimResponse:
        return json_response(200, self._sim(call).status_json())

    def _set_sim_status(self, call: Call) -> SimResponse:
        sim = self._sim(call)
        payload = call.request.json_object()
        services = {name: one_of(payload, name, SERVICE_STATUSES) for name in SERVICE_FIELDS}
        if sim.terminated and ACTIVE in services.values():
            raise CarrierError(
                409, f"SIM {sim.iccid} is terminated and cannot be activated", code=SIM_TERMINATED
            )
        sim.services = services
        return empty_response(204)

    def _list_packages(self, call: Call) -> SimResponse:
        return json_response(200, [package.as_json() for package in self._sim(call).packages])

    def _set_package_status(self, call: Call) -> SimResponse:
        package = self._package(call)
        new_status = one_of(call.request.json_object(), "package_status", PACKAGE_STATUSES)
        if package.package_status == PACKAGE_TERMINATED and new_status != PACKAGE_TERMINATED:
            raise CarrierError(
                409,
                f"Package {package.package_id} is Terminated and cannot change status",
                code=PACKAGE_TERMINATED_CODE,
            )
        package.package_status = new_status
        return empty_response(204)

    def _sim(self, call: Call) -> PondSim:
        sim = self._sims.get(call.params["iccid"])
        if sim is None or sim.distributor_id != call.params["distributor_id"]:
            raise CarrierError(404, "SIM not found", code=SIM_NOT_FOUND)
        return sim

    def _package(self, call: Call) -> PondPackage:
        raw_id = call.params["package_id"]
        package = self._packages.get(int(raw_id)) if raw_id.isdigit() else None
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
        package = self._packages.get(int(raw_id)) if raw_id.isdigit() else None
        return package.iccid if package is not None else raw_id

    # -- admin ------------------------------------------------------------------------------

    def admin_routes(self) -> Sequence[Route]:
        return [
            Route("POST", "/accounts", self._add_account),
            Route("POST", "/sims", self._seed_sims),
            Route("GET", "/sims/{iccid}", self._show_sim),
        ]

    def _add_account(self, call: Call) -> SimResponse:
        payload = call.request.json_object()
        distributor_id = str(required(payload, "distributor_id"))
        rate_limit = optional_rate(payload, "rate_limit", DEFAULT_RATE_LIMIT)
        self._accounts[distributor_id] = PondAccount(
            name=f"distributor {distributor_id}",
            bucket=bucket_for(rate_limit),
            api_key=required_str(payload, "api_key"),
        )
        return json_response(201, {"distributor_id": distributor_id, "rate_limit": rate_limit})

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
        if not isinstance(entry, dict):
            raise InvalidPayload("each sim must be an object")
        iccid = required_str(entry, "iccid")
        status = one_of(entry, "status", SERVICE_STATUSES) if "status" in entry else ACTIVE
        sim = PondSim(
            iccid=iccid,
            distributor_id=distributor_id,
            services=dict.fromkeys(SERVICE_FIELDS, status),
        )
        package_entries = entry.get("packages")
        if package_entries is None:
            default_status = PACKAGE_ACTIVE if status == ACTIVE else PACKAGE_NOT_ACTIVE
            sim.packages.append(
                PondPackage(
                    self._generated_package_id(), iccid, default_status, DEFAULT_PACKAGE_TYPE_ID
                )
            )
            return sim
        if not isinstance(package_entries, list):
            raise InvalidPayload("packages must be a list")
        for package_entry in package_entries:
            sim.packages.append(_new_package(iccid, package_entry))
        return sim

    def _check_package_ids(self, sims: Sequence[PondSim]) -> None:
        seen: set[int] = set()
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

    def _generated_package_id(self) -> int:
        package_id = next(self._package_ids)
        while package_id in self._packages:
            package_id = next(self._package_ids)
        return package_id

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


def _new_package(iccid: str, entry: Mapping[str, Any]) -> PondPackage:
    if not isinstance(entry, dict):
        raise InvalidPayload("each package must be an object")
    package_type_id = optional_int(entry, "package_type_id")
    return PondPackage(
        package_id=required_int(entry, "package_id"),
        iccid=iccid,
        package_status=one_of(entry, "package_status", PACKAGE_STATUSES)
        if "package_status" in entry
        else PACKAGE_ACTIVE,
        package_type_id=DEFAULT_PACKAGE_TYPE_ID if package_type_id is None else package_type_id,
    )
