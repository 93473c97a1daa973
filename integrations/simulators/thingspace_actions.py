"""ThingSpace's devices and the asynchronous action requests on them, as
``docs/carriers/thingspace.md`` describes them.

A submitted request stays ``Pending`` for the completion delay (default 300 ms, ``None`` =
never; the delay in force when requests are next read decides), then completes: ``Success``
with the devices' new state, or ``Failed`` with each refused device's error when the action is
not allowed from its state (suspend: active; restore: suspended; deactivate: active or
suspended; activate: preactive or deactivated) or a failure was injected for its ICCID.
Requests complete lazily, when :meth:`DeviceActions.settle` runs at the start of each read.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ACTIVE = "active"
SUSPENDED = "suspended"
DEACTIVATED = "deactivated"
PREACTIVE = "preactive"
STATES = (ACTIVE, SUSPENDED, DEACTIVATED, PREACTIVE)

# action → (states it is allowed from, the state it leaves the device in)
TRANSITIONS: Mapping[str, tuple[frozenset[str], str]] = {
    "suspend": (frozenset({ACTIVE}), SUSPENDED),
    "restore": (frozenset({SUSPENDED}), ACTIVE),
    "deactivate": (frozenset({ACTIVE, SUSPENDED}), DEACTIVATED),
    "activate": (frozenset({PREACTIVE, DEACTIVATED}), ACTIVE),
}

PENDING = "Pending"
SUCCESS = "Success"
FAILED = "Failed"

DEFAULT_COMPLETION_DELAY_MS = 300


@dataclass
class Device:
    iccid: str
    account_name: str
    state: str
    service_plan: str = ""
    mdn_zip_code: str = ""
    request_ids: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "deviceIds": [{"kind": "iccid", "id": self.iccid}],
            "carrierInformations": [{"state": self.state, "servicePlan": self.service_plan}],
        }


@dataclass
class ActionRequest:
    request_id: str
    account_name: str
    action: str
    iccids: list[str]
    fields: dict[str, Any]
    submitted_at: float
    status: str = PENDING
    errors: dict[str, str | None] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "requestId": self.request_id,
            "status": self.status,
            "devices": [
                {"id": iccid, "kind": "iccid", "error": self.errors.get(iccid)}
                for iccid in self.iccids
            ],
        }


class DeviceActions:
    """Devices by ICCID, requests by id, the failures injected per ICCID and the completion
    delay. Not thread-safe on its own: the simulator calls it under its lock."""

    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}
        self.requests: dict[str, ActionRequest] = {}
        self.failures: dict[str, str] = {}
        self.completion_delay_ms: int | None = DEFAULT_COMPLETION_DELAY_MS
        self._pending: list[ActionRequest] = []

    def submit(
        self,
        *,
        account_name: str,
        action: str,
        devices: Sequence[Device],
        fields: dict[str, Any],
    ) -> ActionRequest:
        """A new ``Pending`` request for ``action`` (a key of :data:`TRANSITIONS`); every
        submit makes a new one, nothing is de-duplicated."""
        request = ActionRequest(
            request_id=str(uuid.uuid4()),
            account_name=account_name,
            action=action,
            iccids=[device.iccid for device in devices],
            fields=fields,
            submitted_at=time.monotonic(),
        )
        self.requests[request.request_id] = request
        self._pending.append(request)
        for device in devices:
            device.request_ids.append(request.request_id)
        return request

    def settle(self) -> None:
        """Complete every pending request whose delay (the one in force now) has passed."""
        if self.completion_delay_ms is None or not self._pending:
            return
        due = time.monotonic() - self.completion_delay_ms / 1000
        still_pending = []
        for request in self._pending:
            if request.submitted_at <= due:
                self._complete(request)
            else:
                still_pending.append(request)
        self._pending = still_pending

    def _complete(self, request: ActionRequest) -> None:
        allowed_from, new_state = TRANSITIONS[request.action]
        for iccid in request.iccids:
            device = self.devices[iccid]
            error = self.failures.get(iccid)
            if error is None and device.state not in allowed_from:
                error = f"Device {iccid} is {device.state}; {request.action} is not allowed"
            request.errors[iccid] = error
            if error is None:
                device.state = new_state
                if request.action == "activate":
                    device.service_plan = str(request.fields["servicePlan"])
                    device.mdn_zip_code = str(request.fields["mdnZipCode"])
        failed = any(request.errors.values())
        request.status = FAILED if failed else SUCCESS
