"""The simulator application: one request in, one response (or a dropped connection) out.

Every carrier request goes through the same pipeline, whichever carrier serves it:

1. route it (unknown path → 404 JSON, known path but other method → 405);
2. under the lock: count it, log it, pick the fault it triggers (``X-Sim-Fault`` header first,
   then the fault queue);
3. outside the lock: sleep the configured latency, and a ``timeout`` fault's delay;
4. answer a fault, or, under the lock: authenticate, take a rate-limit token (429 with
   ``Retry-After: 1`` when the account's limit refuses it: an empty token bucket, or a full
   sliding window) and run the carrier's handler.

One lock guards all state, and nothing sleeps or does I/O while holding it, so the threaded
HTTP server can run many slow (latency-injected) requests at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import admin
from .carrier import AdminError, CarrierError, CarrierSimulator
from .faults import Fault, FaultKind, FaultQueue
from .jasper import JasperSimulator
from .messages import (
    DROP,
    Drop,
    MalformedBody,
    SimRequest,
    SimResponse,
    empty_response,
    html_response,
    json_response,
    reason_phrase,
)
from .metrics import CallCounters, CarrierStats, RequestLog
from .payloads import InvalidPayload
from .pond import PondSimulator
from .rev import RevSimulator
from .routing import Call, Match, MethodNotAllowed, Route, Router
from .teal import TealSimulator
from .telegence import TelegenceSimulator
from .thingspace import ThingSpaceSimulator

CARRIERS: tuple[type[CarrierSimulator], ...] = (
    PondSimulator,
    RevSimulator,
    TelegenceSimulator,
    JasperSimulator,
    TealSimulator,
    ThingSpaceSimulator,
)
ADMIN_PREFIX = "/_sim"
FAULT_HEADER = "X-Sim-Fault"


@dataclass
class SimulatorConfig:
    latency_ms: int = 0


class Simulator:
    """All carriers' state plus the cross-cutting machinery; thread-safe.

    ``latency_ms`` is the startup latency that ``POST /_sim/reset`` returns to.
    """

    def __init__(
        self,
        *,
        latency_ms: int = 0,
        carriers: Sequence[type[CarrierSimulator]] = CARRIERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._clock = clock
        self._startup_config = SimulatorConfig(latency_ms=latency_ms)
        self.config = SimulatorConfig(latency_ms=latency_ms)
        self.carriers = {carrier_class.name: carrier_class() for carrier_class in carriers}
        self.router = Router()
        for carrier in self.carriers.values():
            self.router.add(carrier.prefix, carrier.routes(), carrier=carrier.name)
            self.router.add(f"{ADMIN_PREFIX}/{carrier.name}", carrier.admin_routes())
        self.router.add(ADMIN_PREFIX, admin.core_routes(self))
        self.carrier_ops = self.router.carrier_ops()
        self.faults = FaultQueue()
        self.counters = CallCounters(self.carriers)
        self.stats = {name: CarrierStats() for name in self.carriers}
        self.request_log = RequestLog()

    def reset(self) -> None:
        """Forget accounts, state, counters, faults and runtime config. Call under the lock
        (the admin route does)."""
        for carrier in self.carriers.values():
            carrier.reset()
        self.faults.clear()
        self.counters.clear()
        self.stats = {name: CarrierStats() for name in self.carriers}
        self.request_log.clear()
        self.config = SimulatorConfig(latency_ms=self._startup_config.latency_ms)

    def stop(self) -> None:
        """Wake every request sleeping on latency or a timeout fault so shutdown is prompt."""
        self._stopping.set()

    def handle(self, request: SimRequest) -> SimResponse | Drop:
        try:
            match = self.router.match(request.method, request.path)
        except MethodNotAllowed:
            return self._unrouted(request, 405, f"{request.method} is not allowed here")
        if match is None:
            return self._unrouted(request, 404, f"No route for {request.method} {request.path}")
        if match.mount.carrier is None:
            with self._lock:
                return self._serve_admin(match, request)
        return self._serve_carrier(match, request)

    # -- carrier requests -------------------------------------------------------------------

    def _serve_carrier(self, match: Match, request: SimRequest) -> SimResponse | Drop:
        carrier = self.carriers[str(match.mount.carrier)]
        route = match.mount.route
        op = str(route.op)
        call = Call(request=request, params=match.params)
        with self._lock:
            key = _call_key(call, route.key)
            self.counters.record(carrier.name, op, key)
            stats = self.stats[carrier.name]
            arrived = self._clock()
            stats.record_request(arrived)
            entry = self.request_log.append(
                carrier=carrier.name, op=op, key=key, prefix=carrier.prefix, request=request
            )
            fault = _header_fault(request, carrier.name, op) or self.faults.take(
                carrier.name, op, key
            )
            if fault is not None:
                stats.faults_injected += 1
                entry["fault"] = str(fault.kind)
            latency_s = self.config.latency_ms / 1000

        if latency_s > 0:
            self._stopping.wait(latency_s)
        if fault is not None and fault.kind is FaultKind.DROP:
            return DROP
        if fault is not None and fault.kind is FaultKind.TIMEOUT:
            self._stopping.wait(fault.delay_ms / 1000)
            fault = None

        with self._lock:
            if fault is None:
                response = self._answer(carrier, route, call, arrived)
            else:
                response = _fault_response(carrier, fault)
            response = carrier.finish_response(request, response)
            entry["status"] = response.status
            if response.status == 429:
                stats.rate_limited += 1
        return response

    def _answer(
        self, carrier: CarrierSimulator, route: Route, call: Call, arrived: float
    ) -> SimResponse:
        try:
            if route.authenticated:
                call.account = carrier.authenticate(call)
                limit = call.account.limit
                if limit is not None and not limit.take(arrived):
                    return carrier.error_response(
                        429,
                        f"Rate limit of {limit.rate:g} requests/s exceeded for {call.account.name}",
                        headers={"Retry-After": "1"},
                    )
            return route.handler(call)
        except CarrierError as error:
            return carrier.error_response(error.status, error.message, code=error.code)
        except (MalformedBody, InvalidPayload) as error:
            return carrier.error_response(400, str(error))

    # -- admin and unrouted requests --------------------------------------------------------

    def _serve_admin(self, match: Match, request: SimRequest) -> SimResponse:
        try:
            return match.mount.route.handler(Call(request=request, params=match.params))
        except AdminError as error:
            return json_response(error.status, {"error": error.message})
        except (MalformedBody, InvalidPayload) as error:
            return json_response(400, {"error": str(error)})

    def _unrouted(self, request: SimRequest, status: int, message: str) -> SimResponse:
        for carrier in self.carriers.values():
            if request.path.startswith(carrier.prefix + "/"):
                return carrier.error_response(status, message)
        return json_response(status, {"error": message})


def _call_key(call: Call, key_function: Callable[[Call], str | None] | None) -> str | None:
    if key_function is None:
        return None
    try:
        return key_function(call)
    except (MalformedBody, InvalidPayload):
        return None


def _header_fault(request: SimRequest, carrier: str, op: str) -> Fault | None:
    """A one-off status fault asked for by the request itself (``X-Sim-Fault: 503``)."""
    value = request.header(FAULT_HEADER)
    if value is None:
        return None
    status = int(value) if value.strip().isdigit() else 0
    if not 100 <= status <= 599:
        status = 400  # a malformed fault header is answered as a bad request
    return Fault(carrier=carrier, op=op, key=None, kind=FaultKind.STATUS, status=status)


def _fault_response(carrier: CarrierSimulator, fault: Fault) -> SimResponse:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = fault.retry_after
    if fault.kind is FaultKind.HTML:
        return html_response(fault.status, headers)
    if fault.kind is FaultKind.EMPTY:
        return empty_response(fault.status, headers)
    message = f"Simulated fault: {fault.status} {reason_phrase(fault.status)}".strip()
    return carrier.error_response(fault.status, message, headers=headers)
