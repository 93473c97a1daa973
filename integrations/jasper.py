"""Cisco Jasper Control Center (REST API v1): client and status-update processor.

Wire contract: ``docs/carriers/jasper.md``. Every call is under ``{base_url}/rws/api/v1`` with HTTP
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
from typing import Any, ClassVar
from urllib.parse import quote

from integrations.base.errors import PermanentError
from integrations.base.http import CarrierClient
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

CARRIER = "Jasper"
API_ROOT = "rws/api/v1"

ACTIVATED = "ACTIVATED"
DEACTIVATED = "DEACTIVATED"
ACTIVATION_READY = "ACTIVATION_READY"
TEST_READY = "TEST_READY"
INVENTORY = "INVENTORY"
RETIRED = "RETIRED"
# Statuses Jasper reports but will not let us set (docs/carriers/jasper.md).
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

    def basic_auth(self) -> tuple[str, str]:
        return (self.credentials.username, self.credentials.secret)

    def get_device(self, *, iccid: str) -> dict[str, Any]:
        """``GET /devices/{iccid}``: the device's details, ``status`` among them."""
        return self._json_object(self._call("GET", _device_path(iccid), READ_DEVICE))

    def set_status(self, *, iccid: str, status: str, idempotency_key: str) -> None:
        """``PUT /devices/{iccid}`` with ``{"status": status}``.

        Jasper answers 200 with ``{"iccid": ...}``; an answer that does not echo our ICCID is a
        :class:`PermanentError` naming both, because the change cannot be confirmed."""
        response = self._call(
            "PUT",
            _device_path(iccid),
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


def _device_path(iccid: str) -> str:
    return f"{API_ROOT}/devices/{quote(iccid, safe='')}"


class JasperProcessor(StatusUpdateProcessor[JasperClient]):
    """Jasper status updates: one PUT per device. Setting a status the device already has
    changes nothing, so a repeated attempt is harmless; the echo check is the confirmation."""

    integration = Integration.JASPER
    display_name = CARRIER
    client_class = JasperClient
    steps = (Step.CARRIER_STATUS,)
    descriptions: ClassVar[Mapping[Step, str]] = {Step.CARRIER_STATUS: UPDATE_STATUS}
    statuses: ClassVar[Mapping[str, StatusMapping]] = {
        name: StatusMapping(name, name, name)
        for name in (ACTIVATED, DEACTIVATED, ACTIVATION_READY, TEST_READY, INVENTORY, RETIRED)
    }

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
            raise self._unknown_step(step)
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
