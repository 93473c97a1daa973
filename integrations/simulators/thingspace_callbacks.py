"""ThingSpace's callback listeners and the CarrierService callbacks it sends, as
``docs/carriers/thingspace.md`` describes them.

An account registers one listener per callback service (``POST /callbacks/{account}``, again to
replace it). When a request completes, the account's ``CarrierService`` listener is POSTed one
JSON callback for the device — ``Success`` with a ``deviceResponse``, or ``Failed`` with a
``faultResponse`` — carrying the registered ``username`` and ``password``. A callback not
acknowledged with a 2xx is sent again every ``retry_seconds`` (Verizon: 300) until
``max_attempts`` (Verizon: 4) were made; ``callbackCount`` numbers them.

Callbacks go out from one sender thread per simulator, which also completes requests when they
are due (so callbacks are sent without anyone polling). It takes the simulator's state lock,
never the core's, and makes its HTTP calls outside it. Only loopback URLs are ever called; a
delivery to any other host is recorded as refused.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .thingspace_actions import ActionRequest

CARRIER_SERVICE = "CarrierService"
DEFAULT_RETRY_SECONDS = 300.0
DEFAULT_MAX_ATTEMPTS = 4
SEND_TIMEOUT_SECONDS = 5.0
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
IDLE_WAIT_SECONDS = 1.0


@dataclass
class Listener:
    account_name: str
    service_name: str
    url: str
    username: str = ""
    password: str = ""

    def as_json(self) -> dict[str, str]:
        """As the list call answers it (without the credentials)."""
        return {"accountName": self.account_name, "serviceName": self.service_name, "url": self.url}


@dataclass
class Delivery:
    """One callback for one completed request, and its attempts so far."""

    request_id: str
    listener: Listener
    body: dict[str, Any]
    next_at: float
    attempts: int = 0
    statuses: list[int | str] = field(default_factory=list)  # HTTP status or error text
    acknowledged: bool = False
    finished: bool = False
    sending: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "requestId": self.request_id,
            "url": self.listener.url,
            "status": self.body["status"],
            "attempts": self.attempts,
            "statuses": list(self.statuses),
            "acknowledged": self.acknowledged,
            "finished": self.finished,
        }


def callback_body(request: ActionRequest) -> dict[str, Any]:
    """The CarrierService callback for a completed request (without credentials and count)."""
    body: dict[str, Any] = {
        "requestId": request.request_id,
        "deviceIds": [{"id": request.iccid, "kind": "iccid"}],
        "status": request.status,
    }
    if request.fault is not None:
        body["faultResponse"] = {
            "faultcode": request.fault.faultcode,
            "faultstring": request.fault.faultstring,
        }
    else:
        body["deviceResponse"] = {
            f"{request.action}Response": {"deviceIds": [{"id": request.iccid, "kind": "iccid"}]}
        }
    return body


class CallbackSender:
    """Listeners by (account, service), the deliveries made, and the thread that sends them.

    ``lock`` is the simulator's state lock (re-entrant); ``settle`` completes due requests (it
    calls :meth:`request_completed` for each); ``next_due`` says when the next one is due."""

    def __init__(
        self,
        *,
        lock: threading.RLock,
        settle: Callable[[], None],
        next_due: Callable[[], float | None],
    ) -> None:
        self._lock = lock
        self._settle = settle
        self._next_due = next_due
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.listeners: dict[tuple[str, str], Listener] = {}
            self.deliveries: list[Delivery] = []
            self.retry_seconds = DEFAULT_RETRY_SECONDS
            self.max_attempts = DEFAULT_MAX_ATTEMPTS

    # -- the registry (called under the state lock) -----------------------------------------

    def listed(self, account_name: str) -> list[Listener]:
        return [entry for (account, _), entry in self.listeners.items() if account == account_name]

    def register(self, listener: Listener) -> None:
        self.listeners[(listener.account_name, listener.service_name.lower())] = listener
        self._start()
        self._wake.set()

    def deregister(self, account_name: str, service_name: str) -> Listener | None:
        return self.listeners.pop((account_name, service_name.lower()), None)

    def wake(self) -> None:
        """Something changed (a request submitted, the delay lowered): look again now."""
        self._wake.set()

    def request_completed(self, request: ActionRequest) -> None:
        listener = self.listeners.get((request.account_name, CARRIER_SERVICE.lower()))
        if listener is None:
            return
        self.deliveries.append(
            Delivery(
                request_id=request.request_id,
                listener=listener,
                body=callback_body(request),
                next_at=time.monotonic(),
            )
        )
        self._wake.set()

    # -- the thread -------------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="thingspace-callbacks", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.clear()  # before the work: a wake-up during it is not lost
            with self._lock:
                self._settle()
                now = time.monotonic()
                due = [d for d in self.deliveries if not d.finished and d.next_at <= now]
                for delivery in due:
                    delivery.sending = True
                    delivery.attempts += 1
                sends = [(d, self._payload(d)) for d in due]
            for delivery, payload in sends:
                result = _post(delivery.listener.url, payload)
                with self._lock:
                    self._record(delivery, result)
            with self._lock:
                wait = self._wait_seconds()
            self._wake.wait(wait)

    def _payload(self, delivery: Delivery) -> bytes:
        body = {
            "username": delivery.listener.username,
            "password": delivery.listener.password,
            **delivery.body,
            "callbackCount": delivery.attempts,
            "maxCallbackThreshold": self.max_attempts,
        }
        return json.dumps(body).encode()

    def _record(self, delivery: Delivery, result: int | str) -> None:
        delivery.sending = False
        delivery.statuses.append(result)
        if isinstance(result, int) and 200 <= result < 300:
            delivery.acknowledged = delivery.finished = True
        elif result == REFUSED or delivery.attempts >= self.max_attempts:
            delivery.finished = True  # archived by Verizon for 30 days: never sent again
        else:
            delivery.next_at = time.monotonic() + self.retry_seconds

    def _wait_seconds(self) -> float:
        """Until the next request completes or the next delivery is due (at most a second
        while nothing is, so a lowered delay is noticed)."""
        times = [d.next_at for d in self.deliveries if not d.finished and not d.sending]
        due = self._next_due()
        if due is not None:
            times.append(due)
        if not times:
            return IDLE_WAIT_SECONDS
        return max(0.0, min(min(times) - time.monotonic(), IDLE_WAIT_SECONDS))


REFUSED = "not sent: only loopback URLs are called"


def _post(url: str, payload: bytes) -> int | str:
    """POST one callback; the HTTP status, or the error text of a failed connection."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or (parts.hostname or "") not in LOOPBACK_HOSTS:
        return REFUSED
    request = urllib.request.Request(  # noqa: S310 - http(s) to loopback only, checked above
        url, data=payload, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_SECONDS) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError) as error:
        return f"{type(error).__name__}: {error}"
