"""Teal's eSIMs and the asynchronous operations that change them, as
``docs/carriers/teal.md`` describes them.

An operation is QUEUED when created, PROCESSING once polled, and completes on the first read
after ``completion_seconds`` (the value in force at that read; ``None`` keeps it running) have
passed since it was created: each eSIM takes the action's state unless it carries an injected
entry error (reported in its entry instead), and the operation is COMPLETED — or FAILED, with
the error as its message, when an eSIM carries an injected operation error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ONLINE = "online"
WAITING = "waiting"
STOPPED = "stopped"
ESIM_STATES = (ONLINE, WAITING, STOPPED)
STATE_AFTER = {"enable": ONLINE, "disable": STOPPED}

QUEUED = "QUEUED"
PROCESSING = "PROCESSING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
NEVER = "never"


@dataclass
class TealEsim:
    eid: str
    iccid: str
    api_key: str
    status: str
    plan: str
    entry_error: str | None = None  # reported in the entry of every operation on this eSIM
    operation_error: str | None = None  # fails every operation on this eSIM

    def as_json(self) -> dict[str, Any]:
        return {"eid": self.eid, "iccid": self.iccid, "status": self.status, "plan": self.plan}


@dataclass
class TealOperation:
    request_id: str
    api_key: str
    action: str
    eids: tuple[str, ...]
    created_at: float
    callback_url: str
    status: str = QUEUED
    message: str | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)
    submissions: int = 1
    polls: int = 0

    @property
    def running(self) -> bool:
        return self.status in (QUEUED, PROCESSING)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"requestId": self.request_id, "status": self.status}
        if not self.running:
            body["entries"] = list(self.entries)
        if self.status == FAILED:
            body["message"] = self.message
        return body

    def describe(self) -> dict[str, Any]:
        return {
            **self.as_json(),
            "action": self.action,
            "eids": list(self.eids),
            "callbackUrl": self.callback_url,
            "submissions": self.submissions,
            "polls": self.polls,
        }


@dataclass
class TealConfig:
    completion_seconds: float | None = 0.0  # None: operations never complete
    interim_polls: int = 0  # each operation's first N polls are answered HTTP 102

    def as_json(self) -> dict[str, Any]:
        completion = NEVER if self.completion_seconds is None else self.completion_seconds
        return {"completion_seconds": completion, "interim_polls": self.interim_polls}


class EsimOperations:
    """eSIMs by EID, operations by ``requestId`` and the config that times them.

    Not thread-safe on its own: the simulator calls it under its lock.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.esims: dict[str, TealEsim] = {}
        self.operations: dict[str, TealOperation] = {}
        self.config = TealConfig()

    def start(
        self,
        *,
        request_id: str,
        api_key: str,
        action: str,
        eids: tuple[str, ...],
        callback_url: str,
    ) -> TealOperation:
        """A new QUEUED operation; the caller has checked the id is new and no eSIM is busy."""
        operation = TealOperation(
            request_id=request_id,
            api_key=api_key,
            action=action,
            eids=eids,
            created_at=self._clock(),
            callback_url=callback_url,
        )
        self.operations[request_id] = operation
        return operation

    def running_on(self, eid: str) -> TealOperation | None:
        return next((op for op in self.operations.values() if op.running and eid in op.eids), None)

    def settle_due(self) -> None:
        for operation in self.operations.values():
            self.settle(operation)

    def settle(self, operation: TealOperation) -> None:
        """Complete a running operation once its delay has passed (under the current config)."""
        delay = self.config.completion_seconds
        if not operation.running or delay is None:
            return
        if self._clock() - operation.created_at < delay:
            return
        esims = [self.esims[eid] for eid in operation.eids if eid in self.esims]
        failure = next((e.operation_error for e in esims if e.operation_error), None)
        if failure is not None:
            operation.status = FAILED
            operation.message = failure
            operation.entries = [
                {"eid": e.eid, "status": e.status, "error": failure} for e in esims
            ]
            return
        for esim in esims:
            if esim.entry_error is None:
                esim.status = STATE_AFTER[operation.action]
            operation.entries.append(
                {"eid": esim.eid, "status": esim.status, "error": esim.entry_error}
            )
        operation.status = COMPLETED
