"""POND IoT (Telna distributor API): client and status-update processor.

Wire contract: ``docs/carriers/pond.md``. A status update is two resumable steps — the SIM's three
service statuses (:data:`Step.CARRIER_STATUS`), then each of its packages
(:data:`Step.SERVICE_STATUS`) — each recorded before the next starts, so a retry after a
package failure never touches the SIM again, and packages already in the target are skipped.

Status names are translated here, by table: :data:`PondProcessor.statuses` holds the SIM value
and :data:`PACKAGE_STATUSES` the package value for each target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast
from urllib.parse import quote

from integrations.base.http import CarrierClient, unexpected_response
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

SimServiceStatus = Literal["Active", "Inactive"]

SIM_SERVICE_FIELDS = (
    "sim_data_service_status",
    "sim_voice_service_status",
    "sim_sms_service_status",
)

ACTIVE = "ACTIVE"
SUSPENDED = "SUSPENDED"
TERMINATED = "TERMINATED"

# Target → POND package status ("Not Active" and "Terminated" per docs/carriers/pond.md).
PACKAGE_STATUSES: Mapping[str, str] = {
    ACTIVE: "Active",
    SUSPENDED: "Not Active",
    TERMINATED: "Terminated",
}

READ_SIM = "Read POND SIM status"
UPDATE_SIM = "Update POND SIM status"
LIST_PACKAGES = "List POND SIM packages"
UPDATE_PACKAGE = "Update POND package status"


def _same(left: str, right: str) -> bool:
    """POND status values compared without regard to case or spacing ("Not  active")."""
    return " ".join(left.split()).casefold() == " ".join(right.split()).casefold()


@dataclass(frozen=True)
class Package:
    """One of a SIM's packages, as ``GET /package/infos`` lists it."""

    package_id: int
    package_status: str
    package_type_id: int | None = None


class PondClient(CarrierClient):
    """POND's distributor API: a static ``x-api-key``, every path under the distributor id.

    Every method makes exactly one HTTP call and raises our error types (see
    :class:`CarrierHttp`); write calls take the ``Idempotency-Key`` to send.
    """

    carrier = "POND"

    @classmethod
    def auth_failure(cls, credentials: Credentials) -> str:
        return f"POND rejected the API key for distributor {credentials.account}"

    @property
    def distributor_id(self) -> str:
        """Every POND path starts with the account's distributor id."""
        return self.credentials.account

    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.credentials.secret}

    def read_sim(self, *, iccid: str, request_id: str = "") -> dict[str, Any]:
        """The SIM's status and its three service statuses."""
        response = self._call(
            "GET", self._sim_path(iccid, "status"), READ_SIM, headers=_traced(request_id)
        )
        return self._json_object(response)

    def set_sim_status(
        self,
        *,
        iccid: str,
        value: SimServiceStatus,
        idempotency_key: str,
        request_id: str = "",
    ) -> None:
        """Set the SIM's data, voice and SMS service statuses together (POND answers 204)."""
        self._call(
            "POST",
            self._sim_path(iccid, "status"),
            UPDATE_SIM,
            headers=_traced(request_id),
            json_body={name: value for name in SIM_SERVICE_FIELDS},
            idempotency_key=idempotency_key,
        )

    def list_packages(self, *, iccid: str, request_id: str = "") -> list[Package]:
        """The SIM's packages (an empty list for a SIM with none)."""
        response = self._call(
            "GET",
            self._sim_path(iccid, "package/infos"),
            LIST_PACKAGES,
            headers=_traced(request_id),
        )
        if response.body is None:
            return []
        if not isinstance(response.body, list):
            raise unexpected_response("POND", "a JSON list of packages", response.call)
        try:
            return [
                Package(
                    package_id=int(item["package_id"]),
                    package_status=str(item["package_status"]),
                    package_type_id=(
                        int(item["package_type_id"])
                        if item.get("package_type_id") is not None
                        else None
                    ),
                )
                for item in response.body
            ]
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise unexpected_response(
                "POND", "packages with package_id and package_status", response.call
            ) from exc

    def set_package_status(
        self,
        *,
        package_id: int,
        value: str,
        idempotency_key: str,
        request_id: str = "",
    ) -> None:
        """Set one package's status (POND answers 204; out of ``Terminated`` it answers 409)."""
        self._call(
            "POST",
            self._path(f"package/{package_id}/status"),
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
    """POND's ``request_id`` header, when the bulk change has a request id to pass on."""
    return {"request_id": request_id} if request_id else {}


class PondProcessor(StatusUpdateProcessor[PondClient]):
    """POND status updates: SIM services, then packages. Each step is idempotent in effect
    (setting a status it already has changes nothing; packages already there are skipped)."""

    integration = Integration.POND
    display_name = "POND"
    client_class = PondClient
    steps = (Step.CARRIER_STATUS, Step.SERVICE_STATUS)
    descriptions: ClassVar[Mapping[Step, str]] = {
        Step.CARRIER_STATUS: UPDATE_SIM,
        Step.SERVICE_STATUS: UPDATE_PACKAGE,
    }
    statuses: ClassVar[Mapping[str, StatusMapping]] = {
        ACTIVE: StatusMapping(ACTIVE, "Active", ACTIVE),
        SUSPENDED: StatusMapping(SUSPENDED, "Inactive", SUSPENDED),
        TERMINATED: StatusMapping(TERMINATED, "Inactive", TERMINATED),
    }

    @classmethod
    def account_label(cls, credentials: Credentials) -> str:
        return f"POND distributor {credentials.account}"

    def perform(self, step: Step, context: UpdateContext) -> StepResult:
        """Step 1 sets the SIM's services; step 2 brings each package to the target status.

        Raises PermanentError (unknown ICCID or package, refused transition, bad key, an
        unknown target or step) or TransientError (timeouts, 429, 5xx)."""
        target = self._target(context)
        if step is Step.CARRIER_STATUS:
            self.client.set_sim_status(
                iccid=context.iccid,
                value=cast(SimServiceStatus, self.statuses[target].carrier_value),
                idempotency_key=context.idempotency_key(step),
                request_id=context.request_id,
            )
            return StepResult(step, {"carrier_status_at": utc_now()})
        if step is Step.SERVICE_STATUS:
            wanted = PACKAGE_STATUSES[target]
            packages = self.client.list_packages(iccid=context.iccid, request_id=context.request_id)
            pending = [p for p in packages if not _same(p.package_status, wanted)]
            for package in pending:
                self.client.set_package_status(
                    package_id=package.package_id,
                    value=wanted,
                    idempotency_key=f"{context.idempotency_key(step)}-{package.package_id}",
                    request_id=context.request_id,
                )
            note = (
                f"{len(pending)} of {len(packages)} packages changed"
                if packages
                else "no packages to change"
            )
            return StepResult(step, {"service_status_at": utc_now()}, note=note)
        raise self._unknown_step(step)

    def read_status(self, context: UpdateContext) -> str | None:
        """TERMINATED when any package is Terminated; ACTIVE when every service and package is
        Active; SUSPENDED when every service is Inactive and every package Not Active; else
        None (mixed or unknown values: the caller then calls the carrier anyway)."""
        sim = self.client.read_sim(iccid=context.iccid, request_id=context.request_id)
        packages = self.client.list_packages(iccid=context.iccid, request_id=context.request_id)
        package_statuses = [p.package_status for p in packages]
        if any(_same(status, PACKAGE_STATUSES[TERMINATED]) for status in package_statuses):
            return TERMINATED
        services = [str(sim.get(name) or "") for name in SIM_SERVICE_FIELDS]
        for target in (ACTIVE, SUSPENDED):
            if all(_same(s, self.statuses[target].carrier_value) for s in services) and all(
                _same(p, PACKAGE_STATUSES[target]) for p in package_statuses
            ):
                return target
        return None
