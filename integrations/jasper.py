"""Cisco Jasper Control Center (REST API v1): client and status-update processor.

Wire contract: ``carriers/jasper.md``. Every call is under ``{base_url}/rws/api/v1`` with HTTP
Basic ``username:api_key``. A status update is one step (:data:`Step.CARRIER_STATUS`):
``PUT /devices/{iccid}`` with ``{"status": ...}``, whose answer echoes the ICCID (the legacy
``UpdateDeviceStatusResult``). An echo naming another ICCID — or none — is a permanent error:
we cannot tell which device Jasper changed, so the operator must look before anything is
retried.

Jasper's status names are our target names and our inventory codes, so the status table maps
each name to itself; ``PURGED`` and ``REPLACED`` exist on reads but cannot be set, so they are
not in the table (a request for them is refused at creation by ``canonical_status``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any, ClassVar
from urllib.parse import quote

from integrations.base import (
    CarrierClient,
    Credentials,
    HttpResponse,
    Integration,
    PermanentError,
    StatusMapping,
    StatusUpdateProcessor,
    Step,
    StepResult,
    UpdateContext,
    unexpected_response,
    utc_now,
)

CARRIER = "Jasper"
API_ROOT = "rws/api/v1"

ACTIVATED = "ACTIVATED"
DEACTIVATED = "DEACTIVATED"
ACTIVATION_READY = "ACTIVATION_READY"
TEST_READY = "TEST_READY"
INVENTORY = "INVENTORY"
RETIRED = "RETIRED"
# Statuses Jasper reports but will not let us set (carriers/jasper.md).
READ_ONLY_STATUSES = ("PURGED", "REPLACED")

READ_DEVICE = "Read Jasper device"
UPDATE_STATUS = "Update Jasper device status"


class JasperClient(CarrierClient):
    """Jasper's device API: HTTP Basic on every call, no token.

    Every method makes exactly one HTTP call and raises our error types (see
    :class:`CarrierHttp`, whose readable message carries Jasper's ``errorCode``).
    """

    carrier = CARRIER

    @classmethod
    def auth_failure(cls, credentials: Credentials) -> str:
        return f"Jasper rejected the credentials of {JasperProcessor.account_label(credentials)}"

    def get_device(self, *, iccid: str) -> dict[str, Any]:
        """``GET /devices/{iccid}``: the device's details, ``status`` among them."""
        response = self._call("GET", iccid, READ_DEVICE)
        if not isinstance(response.body, dict):
            raise unexpected_response("Jasper", "a JSON object", response.call)
        return response.body

    def set_status(self, *, iccid: str, status: str, idempotency_key: str) -> None:
        """``PUT /devices/{iccid}`` with ``{"status": status}``.

        Jasper answers 200 with ``{"iccid": ...}``; an answer that does not echo our ICCID is a
        :class:`PermanentError` naming both, because the change cannot be confirmed."""
        response = self._call(
            "PUT",
            iccid,
            UPDATE_STATUS,
            json_body={"status": status},
            idempotency_key=idempotency_key,
        )
        echo = response.body.get("iccid") if isinstance(response.body, dict) else None
        echoed = "" if echo is None else str(echo).strip()
        if not echoed:
            raise PermanentError(
                f"HTTP {response.status} from Jasper: the answer did not echo ICCID {iccid}; "
                "the status change is not confirmed",
                call=response.call,
            )
        if echoed != iccid:
            raise PermanentError(
                f"HTTP {response.status} from Jasper: the answer echoed ICCID {echoed}, not "
                f"{iccid}; the status change is not confirmed",
                call=response.call,
            )

    def _call(
        self,
        method: str,
        iccid: str,
        description: str,
        *,
        json_body: Any = None,
        idempotency_key: str = "",
    ) -> HttpResponse:
        headers = {"Accept": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return self.http.request(
            method,
            f"{API_ROOT}/devices/{quote(iccid, safe='')}",
            description=description,
            json_body=json_body,
            headers=headers,
            auth=(self.credentials.username, self.credentials.secret),
        )


class JasperProcessor(StatusUpdateProcessor):
    """Jasper status updates: one PUT per device. Setting a status the device already has
    changes nothing, so a repeated attempt is harmless; the echo check is the confirmation."""

    integration = Integration.JASPER
    display_name = CARRIER
    steps = (Step.CARRIER_STATUS,)
    descriptions: ClassVar[Mapping[Step, str]] = {Step.CARRIER_STATUS: UPDATE_STATUS}
    statuses: ClassVar[Mapping[str, StatusMapping]] = {
        name: StatusMapping(name, name, name)
        for name in (ACTIVATED, DEACTIVATED, ACTIVATION_READY, TEST_READY, INVENTORY, RETIRED)
    }

    @cached_property
    def client(self) -> JasperClient:
        """Built from the base class's constructor arguments (the one processor signature)."""
        return JasperClient(
            credentials=self.credentials,
            session=self.session,
            throttle=self.throttle,
            on_call=self.on_call,
            timeouts=self.timeouts,
        )

    @classmethod
    def account_label(cls, credentials: Credentials) -> str:
        """ "Jasper account <username>", with the row's ``account`` label when it adds one."""
        name = credentials.username or credentials.account
        label = f"Jasper account {name}"
        if credentials.account and credentials.account != name:
            label += f" ({credentials.account})"
        return label

    @classmethod
    def validate_options(cls, *, target_status: str, options: Mapping[str, str]) -> list[str]:
        """Jasper's status change takes no options: one given would be silently ignored, so it
        is refused at creation instead."""
        return [
            f"Jasper takes no {name}; leave it empty"
            for name, value in sorted(options.items())
            if value
        ]

    def check_identifiers(self, context: UpdateContext) -> None:
        """Jasper addresses devices by ICCID only."""
        if not context.iccid.strip():
            raise PermanentError("Jasper needs the device's ICCID; this device has none")

    def perform(self, step: Step, context: UpdateContext) -> StepResult:
        """Set the device's status and check the echo.

        Raises PermanentError (unknown ICCID, refused transition or status, rejected
        credentials, a wrong echo, an unknown target or step) or TransientError (timeouts,
        connection errors, 408, 429, 5xx)."""
        if step is not Step.CARRIER_STATUS:
            raise PermanentError(f"Jasper has no step {step!r}")
        target = self._target(context)
        self.client.set_status(
            iccid=context.iccid,
            status=self.statuses[target].carrier_value,
            idempotency_key=context.idempotency_key(step),
        )
        return StepResult(step, {"carrier_status_at": utc_now()})

    def read_status(self, context: UpdateContext) -> str | None:
        """The device's Jasper status when it is one we can set; None for PURGED, REPLACED, a
        missing or an unknown status."""
        device = self.client.get_device(iccid=context.iccid)
        status = device.get("status")
        if not isinstance(status, str):
            return None
        try:
            return self.canonical_status(status)
        except ValueError:
            return None

    def _target(self, context: UpdateContext) -> str:
        try:
            return self.canonical_status(context.target_status)
        except ValueError as exc:
            raise PermanentError(str(exc)) from exc
