"""POND IoT (Telna distributor "PPU" API): client and status-update processor.

Wire contract: ``docs/carriers/pond.md``. A status update is two resumable steps — the SIM's three
service statuses (:data:`Step.CARRIER_STATUS`), then each of its live packages
(:data:`Step.SERVICE_STATUS`) — each recorded before the next starts, so a retry after a
package failure never touches the SIM again, and packages already in the target are skipped.

Status names are translated here, by table: :data:`PondProcessor.statuses` holds the SIM
service value and :data:`PACKAGE_STATUSES` the package value for each target. POND's values are
compared with :func:`same_value` (case, ``_``, ``-`` and spaces alike), because Telna's prose
and the legacy code spell the Swagger enums differently ("Not Active" for ``NOT_ACTIVE``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast
from urllib.parse import quote

from integrations.base.errors import PermanentError
from integrations.base.http import CarrierClient, HttpResponse, unexpected_response
from integrations.base.origins import Origin, known
from integrations.base.protocol import (
    Credentials,
    StatusMapping,
    StatusUpdateProcessor,
    Step,
    StepResult,
    UpdateContext,
    utc_now,
)
from integrations.base.registry import Integration

ServiceStatus = Literal["ENABLED", "DISABLED"]
ENABLED: ServiceStatus = "ENABLED"
DISABLED: ServiceStatus = "DISABLED"

SIM_SERVICE_FIELDS = (
    "sim_data_service_status",
    "sim_voice_service_status",
    "sim_sms_service_status",
)

# ``status_of_sim``: the SIM's overall state. (``status``, ACTIVE/SUSPENDED, is deprecated by
# Telna and never read.)
SIM_PRE_SERVICE = "Pre-Service"
SIM_IN_SERVICE = "In-Service"
SIM_TERMINATED = "Terminated"

ACTIVE = "ACTIVE"
SUSPENDED = "SUSPENDED"
TERMINATED = "TERMINATED"

# A package's ``status`` (Swagger enum).
PACKAGE_ACTIVE = "ACTIVE"
PACKAGE_NOT_ACTIVE = "NOT_ACTIVE"
PACKAGE_TERMINATED = "TERMINATED"

# Target → the package status sent to each live package.
PACKAGE_STATUSES: Mapping[str, str] = {
    ACTIVE: PACKAGE_ACTIVE,
    SUSPENDED: PACKAGE_NOT_ACTIVE,
    TERMINATED: PACKAGE_TERMINATED,
}

# Packages asked for per page of ``GET …/package/infos`` (Telna's default is 10).
PACKAGE_PAGE_SIZE = 100

READ_SIM = "Read POND SIM status"
UPDATE_SIM = "Update POND SIM status"
LIST_PACKAGES = "List POND SIM packages"
UPDATE_PACKAGE = "Update POND package status"

_SEPARATORS = re.compile(r"[\s_-]+")


def same_value(left: str, right: str) -> bool:
    """POND values compared without regard to case, with ``_``, ``-`` and spaces alike:
    ``"Not Active"``, ``"not-active"`` and ``"NOT_ACTIVE"`` are one value."""

    def normal(value: str) -> str:
        return _SEPARATORS.sub(" ", value).strip().casefold()

    return normal(left) == normal(right)


@dataclass(frozen=True)
class SimStatus:
    """``GET /sim/{iccid}/status``: the three service statuses and ``status_of_sim``; a field
    POND leaves out reads as ``""`` (matching no rule)."""

    data: str
    voice: str
    sms: str
    status_of_sim: str

    @property
    def services(self) -> tuple[str, str, str]:
        return (self.data, self.voice, self.sms)


@dataclass(frozen=True)
class Package:
    """One of a SIM's packages, as ``GET /sim/{iccid}/package/infos`` lists it."""

    package_id: str  # a UUID
    status: str  # ACTIVE, NOT_ACTIVE or TERMINATED
    package_type_id: int | None = None

    @property
    def live(self) -> bool:
        """TERMINATED packages are history: never sent a change, ignored when judging a SIM."""
        return not same_value(self.status, PACKAGE_TERMINATED)


@dataclass(frozen=True)
class PackagePage:
    """One page of the package list: ``{"total", "offset", "count", "elements"}``."""

    total: int
    packages: tuple[Package, ...]


class PondClient(CarrierClient):
    """POND's distributor API: a static ``x-api-key``, every path under the distributor id.

    Every method makes one HTTP call, except :meth:`list_packages`, which reads every page;
    each raises our error types (see :class:`CarrierHttp`). Write calls take the
    ``Idempotency-Key`` to send; every call takes the ``RequestId`` correlation id (sent when
    not empty).
    """

    carrier = "POND"
    read_calls: ClassVar[frozenset[str]] = frozenset({READ_SIM, LIST_PACKAGES})

    @classmethod
    def auth_failure(cls, credentials: Credentials) -> str:
        return f"POND rejected the API key for distributor {credentials.account}"

    @property
    def distributor_id(self) -> str:
        """Every POND path starts with the account's distributor id."""
        return self.credentials.account

    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.credentials.secret}

    def read_sim(self, *, iccid: str, request_id: str = "") -> SimStatus:
        """The SIM's three service statuses and its overall state (``status_of_sim``)."""
        response = self._call(
            "GET", self._sim_path(iccid, "status"), READ_SIM, headers=_traced(request_id)
        )
        body = self._json_object(response)
        data, voice, sms = (_text(body.get(name)) for name in SIM_SERVICE_FIELDS)
        return SimStatus(data, voice, sms, _text(body.get("status_of_sim")))

    def set_sim_services(
        self,
        *,
        iccid: str,
        value: ServiceStatus,
        idempotency_key: str,
        request_id: str = "",
    ) -> None:
        """Set the SIM's data, voice and SMS services together (POND answers 204)."""
        self._call(
            "POST",
            self._sim_path(iccid, "status"),
            UPDATE_SIM,
            headers=_traced(request_id),
            json_body={name: value for name in SIM_SERVICE_FIELDS},
            idempotency_key=idempotency_key,
        )

    def list_packages(self, *, iccid: str, request_id: str = "") -> list[Package]:
        """Every package of the SIM, all pages read (``offset`` advanced by the packages each
        page held, while it is below ``total``). A page that holds none before ``total`` is
        reached is a PermanentError: a partial list would leave packages unchanged."""
        packages: list[Package] = []
        while True:
            page = self.package_page(iccid=iccid, offset=len(packages), request_id=request_id)
            packages.extend(page.packages)
            if len(packages) >= page.total:
                return packages
            if not page.packages:
                raise PermanentError(
                    f"POND's package list of SIM {iccid} ended after {len(packages)} of "
                    f"{page.total} packages"
                )

    def package_page(
        self,
        *,
        iccid: str,
        offset: int,
        count: int = PACKAGE_PAGE_SIZE,
        request_id: str = "",
    ) -> PackagePage:
        """One page of the SIM's packages."""
        response = self._call(
            "GET",
            self._sim_path(iccid, "package/infos"),
            LIST_PACKAGES,
            headers=_traced(request_id),
            params={"offset": offset, "count": count},
        )
        return _package_page(response)

    def set_package_status(
        self,
        *,
        package_id: str,
        value: str,
        idempotency_key: str,
        request_id: str = "",
    ) -> None:
        """Set one package's status (POND answers 204)."""
        self._call(
            "POST",
            self._path(f"package/{quote(package_id, safe='')}/status"),
            UPDATE_PACKAGE,
            headers=_traced(request_id),
            json_body={"package_status": value},
            idempotency_key=idempotency_key,
        )

    def _path(self, rest: str) -> str:
        """``rest`` under the distributor id, where every POND path lies."""
        return f"{quote(self.distributor_id, safe='')}/{rest}"

    def _sim_path(self, iccid: str, rest: str) -> str:
        return self._path(f"sim/{quote(iccid, safe='')}/{rest}")


def _traced(request_id: str) -> dict[str, str]:
    """POND's ``RequestId`` correlation header, when there is an id to pass on."""
    return {"RequestId": request_id} if request_id else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


PAGE_SHAPE = (
    "a package list {total, offset, count, elements} of packages with a string package_id "
    "and a status"
)


def _package_page(response: HttpResponse) -> PackagePage:
    """The list wrapper; a PermanentError for any other shape (retrying will not change it)."""
    body = response.body
    total = body.get("total") if isinstance(body, dict) else None
    elements = body.get("elements") if isinstance(body, dict) else None
    if not _is_int(total) or not isinstance(elements, list):
        raise unexpected_response("POND", PAGE_SHAPE, response.call)
    packages = [_package(element) for element in elements]
    if None in packages:
        raise unexpected_response("POND", PAGE_SHAPE, response.call)
    return PackagePage(total=cast(int, total), packages=tuple(cast(list[Package], packages)))


def _package(element: Any) -> Package | None:
    """One element of the list, or None when it lacks a string ``package_id`` or a status."""
    if not isinstance(element, dict):
        return None
    package_id, status = element.get("package_id"), element.get("status")
    if not (isinstance(package_id, str) and package_id and isinstance(status, str) and status):
        return None
    type_id = element.get("package_type_id")
    return Package(package_id, status, type_id if _is_int(type_id) else None)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class PondProcessor(StatusUpdateProcessor[PondClient]):
    """POND status updates: SIM services, then live packages. Each step is idempotent in
    effect (setting a status it already has changes nothing; packages already there, and
    TERMINATED ones, are skipped)."""

    integration = Integration.POND
    display_name = "POND"
    # pond.md: the dashboard's host (sandbox and production alike) and Telna's own, each with
    # the distributor API's prefix in base_url.
    known_origins: ClassVar[tuple[Origin, ...]] = (
        known("https://www.mydashboard.pondmobile.com"),
        known("https://ws.telna.com"),
    )
    base_path: ClassVar[str] = "/ds/u/distributorPPUService/v1"
    client_class = PondClient
    steps = (Step.CARRIER_STATUS, Step.SERVICE_STATUS)
    descriptions: ClassVar[Mapping[Step, str]] = {
        Step.CARRIER_STATUS: UPDATE_SIM,
        Step.SERVICE_STATUS: UPDATE_PACKAGE,
    }
    statuses: ClassVar[Mapping[str, StatusMapping]] = {
        ACTIVE: StatusMapping(ACTIVE, ENABLED, ACTIVE),
        SUSPENDED: StatusMapping(SUSPENDED, DISABLED, SUSPENDED),
        TERMINATED: StatusMapping(TERMINATED, DISABLED, TERMINATED, destructive=True),
    }
    # pond.md: a Terminated SIM cannot be brought back (enabling its services is a 409).
    refused_transitions: ClassVar[Mapping[str, frozenset[str]]] = {
        TERMINATED: frozenset({ACTIVE, SUSPENDED}),
    }
    # POND publishes no limit: a new row starts at the base default (10 requests/s, 4 at
    # once); the operator sets the account's real rate on the row (a 429 slows every sender).

    @classmethod
    def account_label(cls, credentials: Credentials) -> str:
        return f"POND distributor {credentials.account}"

    def perform(self, step: Step, context: UpdateContext) -> StepResult:
        """Step 1 sets the SIM's services; step 2 brings each live package to the target.

        Raises PermanentError (unknown ICCID or package, refused transition, bad key, a package
        list of the wrong shape, an unknown target or step) or TransientError (timeouts, 429,
        5xx)."""
        target = self._target(context)
        request_id = correlation_id(context)
        if step is Step.CARRIER_STATUS:
            self.client.set_sim_services(
                iccid=context.iccid,
                value=cast(ServiceStatus, self.statuses[target].carrier_value),
                idempotency_key=context.idempotency_key(step),
                request_id=request_id,
            )
            return StepResult(step, {"carrier_status_at": utc_now()})
        if step is Step.SERVICE_STATUS:
            wanted = PACKAGE_STATUSES[target]
            packages = self.client.list_packages(iccid=context.iccid, request_id=request_id)
            live = [package for package in packages if package.live]
            pending = [package for package in live if not same_value(package.status, wanted)]
            for package in pending:
                self.client.set_package_status(
                    package_id=package.package_id,
                    value=wanted,
                    idempotency_key=f"{context.idempotency_key(step)}-{package.package_id}",
                    request_id=request_id,
                )
            return StepResult(
                step, {"service_status_at": utc_now()}, note=_note(packages, live, pending)
            )
        raise self._unknown_step(step)

    def read_status(self, context: UpdateContext) -> str | None:
        """The SIM's status from two reads (SIM, then every package page):

        - TERMINATED when ``status_of_sim`` is Terminated, or the SIM has packages and all are
          TERMINATED;
        - ACTIVE when the SIM is In-Service, all three services are ENABLED and every live
          package is ACTIVE; SUSPENDED when In-Service, all DISABLED and every live package
          NOT_ACTIVE (a SIM with no live package counts);
        - else None (Pre-Service, mixed or missing values): the caller calls the carrier."""
        request_id = correlation_id(context)
        sim = self.client.read_sim(iccid=context.iccid, request_id=request_id)
        packages = self.client.list_packages(iccid=context.iccid, request_id=request_id)
        live = [package for package in packages if package.live]
        if same_value(sim.status_of_sim, SIM_TERMINATED) or (packages and not live):
            return TERMINATED
        if not same_value(sim.status_of_sim, SIM_IN_SERVICE):
            return None
        for target in (ACTIVE, SUSPENDED):
            service = self.statuses[target].carrier_value
            if all(same_value(value, service) for value in sim.services) and all(
                same_value(package.status, PACKAGE_STATUSES[target]) for package in live
            ):
                return target
        return None


def correlation_id(context: UpdateContext) -> str:
    """The ``RequestId`` sent on every call of a device change: the run's request id, or
    ``pondops-{device_change_id}`` when the run has none."""
    return context.request_id or f"pondops-{context.device_change_id}"


def _note(packages: Sequence[Package], live: Sequence[Package], pending: Sequence[Package]) -> str:
    """ "2 of 3 live packages changed, 1 terminated skipped", "no packages to change", …"""
    if not packages:
        return "no packages to change"
    if live:
        changed = f"{len(pending)} of {len(live)} live packages changed"
    else:
        changed = "no live packages to change"
    skipped = len(packages) - len(live)
    return f"{changed}, {skipped} terminated skipped" if skipped else changed
