"""ThingSpace's devices and the asynchronous action requests on them, as
``docs/carriers/thingspace.md`` describes them.

A submitted request stays ``Pending`` for the completion delay (default 300 ms, ``None`` =
never; the delay in force when requests are next settled decides), then completes: ``Success``
with the device's new state, or ``Failed`` with a fault (``faultcode``, ``faultstring``) when
the action is not allowed from its state (suspend: active; restore: suspended; deactivate:
active or suspended; activate: preactive or deactivated) or a failure was injected for its
ICCID. The request status tells only ``{requestId, status}``; the fault reaches the caller only
through the CarrierService callback (:mod:`.thingspace_callbacks`), which :meth:`settle` hands
each completed request to. Requests complete when :meth:`DeviceActions.settle` runs: at the
start of each read, and from the callback sender's thread when they are due.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
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
NOT_ALLOWED_FAULT = "UnifiedWebService.REQUEST_FAILED.InvalidStateTransition"
INJECTED_FAULT = "UnifiedWebService.REQUEST_FAILED.ProvisioningFailed"


@dataclass
class Device:
    iccid: str
    account_name: str
    state: str
    imei: str = ""
    service_plan: str = ""
    mdn_zip_code: str = ""
    request_ids: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        device_ids = [{"kind": "iccid", "id": self.iccid}]
        if self.imei:
            device_ids.append({"kind": "imei", "id": self.imei})
        return {
            "accountName": self.account_name,
            "deviceIds": device_ids,
            "carrierInformations": [
                {
                    "carrierName": "Verizon Wireless",
                    "servicePlan": self.service_plan,
                    "state": self.state,
                }
            ],
            "connected": False,
        }


@dataclass
class Fault:
    faultcode: str
    faultstring: str


@dataclass
class ActionRequest:
    """One single-device action request."""

    request_id: str
    account_name: str
    action: str
    iccid: str
    fields: dict[str, Any]
    submitted_at: float
    status: str = PENDING
    fault: Fault | None = None

    def as_json(self) -> dict[str, Any]:
        """The request-status answer: the status and nothing else."""
        return {"requestId": self.request_id, "status": self.status}


class DeviceActions:
    """Devices by ICCID, requests by id, the failures injected per ICCID and the completion
    delay. Not thread-safe on its own: the simulator calls it under its state lock.
    ``on_complete`` is told of every request as it completes (the callback sender)."""

    def __init__(self, *, on_complete: Callable[[ActionRequest], None] | None = None) -> None:
        self.devices: dict[str, Device] = {}
        self.requests: dict[str, ActionRequest] = {}
        self.failures: dict[str, Fault] = {}
        self.completion_delay_ms: int | None = DEFAULT_COMPLETION_DELAY_MS
        self._pending: list[ActionRequest] = []
        self._on_complete = on_complete

    def submit(
        self, *, account_name: str, action: str, device: Device, fields: dict[str, Any]
    ) -> ActionRequest:
        """A new ``Pending`` request for ``action`` (a key of :data:`TRANSITIONS`); every
        submit makes a new one, nothing is de-duplicated."""
        request = ActionRequest(
            request_id=str(uuid.uuid4()),
            account_name=account_name,
            action=action,
            iccid=device.iccid,
            fields=fields,
            submitted_at=time.monotonic(),
        )
        self.requests[request.request_id] = request
        self._pending.append(request)
        device.request_ids.append(request.request_id)
        return request

    def next_due(self) -> float | None:
        """When (monotonic) the next pending request completes; None: none will."""
        if self.completion_delay_ms is None or not self._pending:
            return None
        return min(r.submitted_at for r in self._pending) + self.completion_delay_ms / 1000

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
        device = self.devices[request.iccid]
        fault = self.failures.get(request.iccid)
        if fault is None and device.state not in allowed_from:
            fault = Fault(
                NOT_ALLOWED_FAULT,
                f"Device {request.iccid} is {device.state}; {request.action} is not allowed",
            )
        request.fault = fault
        if fault is None:
            device.state = new_state
            if request.action == "activate":
                device.service_plan = str(request.fields["servicePlan"])
                device.mdn_zip_code = str(request.fields["mdnZipCode"])
        request.status = FAILED if fault is not None else SUCCESS
        if self._on_complete is not None:
            self._on_complete(request)
