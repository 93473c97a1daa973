"""A thin client for the simulators' ``/_sim`` control API, for tests, benchmark and demo.

Every method is one HTTP call and raises :class:`SimulatorControlError` (with the server's
message) when the simulator refuses it, so a mistyped op or seed fails the test at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import requests

POND_PREFIX = "/pond/ds/u/distributorPPUService/v1"
REV_PREFIX = "/rev"
DEFAULT_RATE_LIMIT = 50


class SimulatorControlError(RuntimeError):
    """The simulator answered a control call with an error status."""


class SimulatorControl:
    """Drives one simulator server at ``base_url`` (e.g. ``http://127.0.0.1:8765``)."""

    def __init__(
        self, base_url: str, *, session: requests.Session | None = None, timeout: float = 10.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session or requests.Session()
        self._timeout = timeout

    @property
    def pond_base_url(self) -> str:
        """The base_url to give a POND client."""
        return self.base_url + POND_PREFIX

    @property
    def rev_base_url(self) -> str:
        """The base_url to give a Rev.io client."""
        return self.base_url + REV_PREFIX

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> SimulatorControl:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- whole simulator --------------------------------------------------------------------

    def reset(self) -> None:
        """Forget all accounts, devices, counters, faults, logs and runtime config."""
        self._call("POST", "/_sim/reset")

    def config(self, *, latency_ms: int) -> dict[str, Any]:
        """Set the latency added to every carrier request; returns the config now in force."""
        return dict(self._call("POST", "/_sim/config", {"latency_ms": latency_ms}))

    def add_fault(
        self,
        carrier: str,
        op: str,
        *,
        key: str | None = None,
        kind: str = "status",
        status: int = 503,
        retry_after: str | int | None = None,
        delay_ms: int = 0,
        times: int = 1,
    ) -> dict[str, Any]:
        """Queue a fault for the next ``times`` matching requests (``key=None``: any key;
        ``times=-1``: forever). Kinds: status, html, empty, timeout, drop."""
        fault = {
            "carrier": carrier,
            "op": op,
            "key": key,
            "kind": kind,
            "status": status,
            "retry_after": None if retry_after is None else str(retry_after),
            "delay_ms": delay_ms,
            "times": times,
        }
        return dict(self._call("POST", "/_sim/faults", fault))

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sim/faults")

    def calls(self) -> dict[str, dict[str, dict[str, int]]]:
        """Requests received: ``{carrier: {op: {key: count}}}``, faulted and 429s included."""
        return dict(self._call("GET", "/_sim/calls"))

    def call_count(self, carrier: str, op: str | None = None, key: str | None = None) -> int:
        """Requests received for a carrier, narrowed to an op and a key when given."""
        params = {"carrier": carrier, "op": op, "key": key}
        return int(self._call("GET", "/_sim/calls", params=params)["count"])

    def stats(self) -> dict[str, dict[str, int]]:
        """Per carrier: requests, rate_limited (429s), faults_injected, max_requests_in_1s."""
        return dict(self._call("GET", "/_sim/stats"))

    def requests(
        self,
        *,
        carrier: str | None = None,
        op: str | None = None,
        key: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """The newest recorded carrier requests (oldest first), secret headers redacted."""
        params = {"carrier": carrier, "op": op, "key": key, "limit": limit}
        return list(self._call("GET", "/_sim/requests", params=params)["requests"])

    # -- POND -------------------------------------------------------------------------------

    def add_pond_account(
        self,
        *,
        distributor_id: str,
        api_key: str,
        rate_limit: float | None = DEFAULT_RATE_LIMIT,
    ) -> None:
        """Create or replace a distributor; ``rate_limit`` requests/s, ``None``/0 unlimited."""
        account = {"distributor_id": distributor_id, "api_key": api_key, "rate_limit": rate_limit}
        self._call("POST", "/_sim/pond/accounts", account)

    def seed_pond_sims(self, *, distributor_id: str, sims: Iterable[Mapping[str, Any]]) -> int:
        """Create or replace SIMs (``{"iccid", "status", "packages"?}``); returns the count."""
        body = {"distributor_id": distributor_id, "sims": [dict(sim) for sim in sims]}
        return int(self._call("POST", "/_sim/pond/sims", body)["seeded"])

    def pond_sim(self, iccid: str) -> dict[str, Any]:
        """A SIM's current service statuses, ``sim_status`` and packages."""
        return dict(self._call("GET", f"/_sim/pond/sims/{iccid}"))

    # -- Rev.io -----------------------------------------------------------------------------

    def add_rev_account(
        self,
        *,
        client_code: str,
        username: str,
        password: str,
        rate_limit: float | None = DEFAULT_RATE_LIMIT,
    ) -> None:
        account = {
            "client_code": client_code,
            "username": username,
            "password": password,
            "rate_limit": rate_limit,
        }
        self._call("POST", "/_sim/rev/accounts", account)

    def add_rev_customers(self, *, client_code: str, customer_ids: Sequence[int]) -> None:
        body = {"client_code": client_code, "customer_ids": list(customer_ids)}
        self._call("POST", "/_sim/rev/customers", body)

    def rev_services(self) -> list[dict[str, Any]]:
        """Every Rev service created, with its fields and its ``products``."""
        return list(self._call("GET", "/_sim/rev/services")["services"])

    # -- transport --------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        query = {name: value for name, value in (params or {}).items() if value is not None}
        response = self._session.request(
            method, self.base_url + path, json=body, params=query, timeout=self._timeout
        )
        if response.status_code >= 400:
            raise SimulatorControlError(
                f"{method} {path} -> {response.status_code}: {response.text[:500]}"
            )
        return response.json() if response.content else None
