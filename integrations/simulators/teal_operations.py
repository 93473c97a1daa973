"""Teal's eSIMs and the asynchronous operations on them, as ``docs/carriers/teal.md`` describes
them.

Every operation — enable, disable, and the ``esims/info`` read — is queued under the caller's
``requestId`` and completes ``completion_seconds`` (the value in force; ``None`` keeps it
running) after it was created. A change then gives each eSIM the action's state unless it
carries an injected entry error (reported in its entry, ``success: false``); an injected
operation error fails the whole operation (``success: false`` with the error as its message). A
read's entry is the eSIM as it stands at completion.

Completed operations whose callback has not been sent yet are handed out once by
:meth:`EsimOperations.take_signals`; the simulator sends them outside every lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ONLINE = "online"
WAITING = "waiting"
STOPPED = "stopped"
ESIM_STATES = (ONLINE, WAITING, STOPPED)
STATE_AFTER = {"enable": ONLINE, "disable": STOPPED}
READ = "info"  # the action of an esims/info read
NEVER = "never"
CALLBACK_METHODS = ("GET", "POST")
STUCK_APPLIED = "applied"
STUCK_STATES = (STUCK_APPLIED, "unapplied")


@dataclass
class TealEsim:
    eid: str
    iccid: str
    api_key: str
    status: str
    plan: str
    suspended: bool = False
    entry_error: str | None = None  # reported in the entry of every change of this eSIM
    operation_error: str | None = None  # fails every change of this eSIM
    generic_errors: int = 0  # the next N calls naming this eSIM answer GENERIC_ERROR
    generic_error_status: int = 400
    # Changes of this eSIM never report a result (their operation-result answers 102 for ever):
    # "applied" changes the eSIM all the same at completion time, "unapplied" leaves it.
    stuck: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The admin view (lower-case ``status`` as seeded)."""
        return {
            "eid": self.eid,
            "iccid": self.iccid,
            "status": self.status,
            "suspended": self.suspended,
            "plan": self.plan,
        }

    def as_info(self) -> dict[str, Any]:
        """The eSIM as a read's entry reports it."""
        return {
            "eid": self.eid,
            "iccid": self.iccid,
            "deviceStatus": self.status.upper(),
            "active": self.status != STOPPED,
            "suspended": self.suspended,
            "planUuid": f"plan-{self.plan}",
            "planName": self.plan,
            "planChangeStatus": "SUCCESS",
        }


@dataclass
class TealOperation:
    request_id: str
    api_key: str
    action: str  # enable, disable or info
    eids: tuple[str, ...]
    created_at: float
    callback_url: str
    done: bool = False
    stuck: bool = False  # completion time passed, but its result is never reported
    success: bool = True
    message: str | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)
    submissions: int = 1
    polls: int = 0
    interim_answers: int = 0
    signal_taken: bool = False
    callback: dict[str, Any] | None = None  # how the callback went, once sent

    def result_json(self) -> dict[str, Any]:
        """The 200 answer of operation-result once done."""
        body: dict[str, Any] = {"success": self.success, "entries": list(self.entries)}
        if self.message is not None:
            body["message"] = self.message
        return body

    def describe(self) -> dict[str, Any]:
        return {
            "requestId": self.request_id,
            "action": self.action,
            "eids": list(self.eids),
            "status": "DONE" if self.done else "STUCK" if self.stuck else "RUNNING",
            "result": self.result_json() if self.done else None,
            "callbackUrl": self.callback_url,
            "submissions": self.submissions,
            "polls": self.polls,
            "interim_answers": self.interim_answers,
            "callback": self.callback,
        }


@dataclass
class TealConfig:
    completion_seconds: float | None = 0.0  # None: operations never complete
    callback_method: str = "GET"  # how completion is signalled to the callbackUrl
    callbacks: bool = True  # False: no callback is sent
    # After a 102 the final answer follows on the same connection this much later.
    final_delay_seconds: float = 0.05

    def as_json(self) -> dict[str, Any]:
        completion = NEVER if self.completion_seconds is None else self.completion_seconds
        return {
            "completion_seconds": completion,
            "callback_method": self.callback_method,
            "callbacks": self.callbacks,
            "final_delay_seconds": self.final_delay_seconds,
        }


class EsimOperations:
    """eSIMs by EID, operations by ``requestId`` and the config that times them.

    ``lock`` guards them: the simulator's handlers (already under the simulator's lock) and its
    completion timer (under no other lock) both take it."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.lock = threading.RLock()
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
        """A new running operation. A requestId used before starts a new operation all the
        same (Teal documents no de-duplication); ``submissions`` counts the repeats."""
        previous = self.operations.get(request_id)
        operation = TealOperation(
            request_id=request_id,
            api_key=api_key,
            action=action,
            eids=eids,
            created_at=self._clock(),
            callback_url=callback_url,
            submissions=previous.submissions + 1 if previous is not None else 1,
        )
        self.operations[request_id] = operation
        self.settle(operation)
        return operation

    def running_change_on(self, eid: str, *, other_than: str) -> TealOperation | None:
        return next(
            (
                op
                for op in self.operations.values()
                if not op.done
                and op.action != READ
                and eid in op.eids
                and op.request_id != other_than
            ),
            None,
        )

    def seconds_to_next_completion(self) -> float | None:
        """When the next running operation completes (None: none will, as things stand)."""
        delay = self.config.completion_seconds
        running = [op.created_at for op in self.operations.values() if not (op.done or op.stuck)]
        if delay is None or not running:
            return None
        return max(0.0, min(running) + delay - self._clock())

    def settle_due(self) -> None:
        for operation in self.operations.values():
            self.settle(operation)

    def settle(self, operation: TealOperation) -> None:
        """Complete a running operation once its delay has passed (under the current config)."""
        delay = self.config.completion_seconds
        if operation.done or operation.stuck or delay is None:
            return
        if self._clock() - operation.created_at < delay:
            return
        esims = [self.esims[eid] for eid in operation.eids if eid in self.esims]
        if operation.action == READ:
            operation.done = True
            operation.entries = [esim.as_info() for esim in esims]
            return
        stuck = next((e.stuck for e in esims if e.stuck), None)
        if stuck is not None:
            operation.stuck = True
            if stuck == STUCK_APPLIED:
                for esim in esims:
                    _apply(esim, operation.action)
            return
        operation.done = True
        failure = next((e.operation_error for e in esims if e.operation_error), None)
        if failure is not None:
            operation.success = False
            operation.message = failure
            operation.entries = [_entry(e.eid, failure) for e in esims]
            return
        for esim in esims:
            if esim.entry_error is None:
                _apply(esim, operation.action)
            operation.entries.append(_entry(esim.eid, esim.entry_error))

    def take_signals(self) -> list[TealOperation]:
        """Completed operations whose callback is still to be sent, each handed out once."""
        taken = [op for op in self.operations.values() if op.done and not op.signal_taken]
        for operation in taken:
            operation.signal_taken = True
            if not self.config.callbacks:
                operation.callback = {"sent": False, "error": "callbacks are switched off"}
        return taken if self.config.callbacks else []


def _apply(esim: TealEsim, action: str) -> None:
    esim.status = STATE_AFTER[action]
    esim.suspended = action == "disable"


def _entry(eid: str, error: str | None) -> dict[str, Any]:
    return {"eid": eid, "success": error is None, "errorMessage": error}
