"""The carrier-independent control API under ``/_sim`` (JSON in and out, no auth).

Handlers run under the simulator's lock. Carrier-specific seeding lives in each carrier
module's ``admin_routes`` (``/_sim/pond/...``, ``/_sim/rev/...``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .carrier import AdminError
from .faults import fault_from_json
from .messages import SimResponse, json_response
from .routing import Call, Route

if TYPE_CHECKING:
    from .core import Simulator

MAX_LOG_LIMIT = 1000


def core_routes(simulator: Simulator) -> list[Route]:
    """Routes for reset, config, faults, counters, stats and the request log."""

    def reset(call: Call) -> SimResponse:
        simulator.reset()
        return json_response(200, {"ok": True})

    def show_config(call: Call) -> SimResponse:
        return json_response(200, {"latency_ms": simulator.config.latency_ms})

    def update_config(call: Call) -> SimResponse:
        payload = call.request.json_object()
        latency_ms = payload.get("latency_ms", simulator.config.latency_ms)
        if (
            isinstance(latency_ms, bool)
            or not isinstance(latency_ms, int | float)
            or latency_ms < 0
        ):
            raise AdminError(400, "latency_ms must be a non-negative number")
        simulator.config.latency_ms = int(latency_ms)
        return show_config(call)

    def add_fault(call: Call) -> SimResponse:
        fault = fault_from_json(call.request.json_object(), simulator.carrier_ops)
        simulator.faults.add(fault)
        return json_response(201, fault.describe())

    def list_faults(call: Call) -> SimResponse:
        return json_response(200, {"faults": simulator.faults.pending()})

    def clear_faults(call: Call) -> SimResponse:
        simulator.faults.clear()
        return json_response(200, {"ok": True})

    def calls(call: Call) -> SimResponse:
        query = call.request.query
        carrier = query.get("carrier")
        if carrier is None:
            return json_response(200, simulator.counters.snapshot())
        if carrier not in simulator.carriers:
            raise AdminError(400, f"unknown carrier {carrier!r}")
        count = simulator.counters.count(carrier, query.get("op"), query.get("key"))
        return json_response(200, {"count": count})

    def stats(call: Call) -> SimResponse:
        return json_response(
            200, {name: carrier_stats.as_json() for name, carrier_stats in simulator.stats.items()}
        )

    def requests(call: Call) -> SimResponse:
        query = call.request.query
        try:
            limit = int(query.get("limit", "50"))
        except ValueError as error:
            raise AdminError(400, "limit must be an integer") from error
        entries = simulator.request_log.select(
            carrier=query.get("carrier"),
            op=query.get("op"),
            key=query.get("key"),
            limit=min(limit, MAX_LOG_LIMIT),
        )
        return json_response(200, {"requests": entries})

    return [
        Route("POST", "/reset", reset),
        Route("GET", "/config", show_config),
        Route("POST", "/config", update_config),
        Route("POST", "/faults", add_fault),
        Route("GET", "/faults", list_faults),
        Route("DELETE", "/faults", clear_faults),
        Route("GET", "/calls", calls),
        Route("GET", "/stats", stats),
        Route("GET", "/requests", requests),
    ]
