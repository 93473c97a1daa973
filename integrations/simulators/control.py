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
    """Drives one simulator server at ``base_url`` (e.g. ``http://127.0.0.1:8765``).

    Every ``add_<carrier>_account`` takes ``rate_window``: ``"bucket"`` (the default, a token
    bucket) or ``"sliding"`` (a strict sliding window: never more than the limit's count within
    any trailing second, or minute for a per-minute limit; see ``simulators/ratelimit.py``)."""

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
        rate_window: str = "bucket",
    ) -> None:
        """Create or replace a distributor; ``rate_limit`` requests/s, ``None``/0 unlimited."""
        account = {
            "distributor_id": distributor_id,
            "api_key": api_key,
            "rate_limit": rate_limit,
            "rate_window": rate_window,
        }
        self._call("POST", "/_sim/pond/accounts", account)

    def seed_pond_sims(self, *, distributor_id: str, sims: Iterable[Mapping[str, Any]]) -> int:
        """Create or replace SIMs (``{"iccid", "services"?, "status_of_sim"?, "packages"?}``,
        values as POND spells them: ``ENABLED``, ``In-Service``, ``NOT_ACTIVE``); returns the
        count."""
        body = {"distributor_id": distributor_id, "sims": [dict(sim) for sim in sims]}
        return int(self._call("POST", "/_sim/pond/sims", body)["seeded"])

    def pond_sim(self, iccid: str) -> dict[str, Any]:
        """A SIM as POND reads it (service statuses, ``status_of_sim``) with its packages."""
        return dict(self._call("GET", f"/_sim/pond/sims/{iccid}"))

    def set_pond_page_size(self, max_page_size: int | None) -> None:
        """At most ``max_page_size`` packages a page, whatever the client's ``count``; ``None``
        as many as asked. Reset clears it."""
        self._call("POST", "/_sim/pond/paging", {"max_page_size": max_page_size})

    # -- Rev.io -----------------------------------------------------------------------------

    def add_rev_account(
        self,
        *,
        client_code: str,
        username: str,
        password: str,
        subscription_key: str = "",
        calls_per_minute: float | None = 500,
        rate_window: str = "bucket",
        quota_calls: int | None = None,
        quota_period_seconds: float | None = None,
    ) -> None:
        """Create or replace a client (its customers are kept). ``subscription_key``: API
        management's key every call must then carry; ``calls_per_minute``: its rate limit
        (default 500, ``None``/0 unlimited); ``quota_calls`` per ``quota_period_seconds``: its
        call-volume quota (default 150,000 a day)."""
        account: dict[str, Any] = {
            "client_code": client_code,
            "username": username,
            "password": password,
            "subscription_key": subscription_key or None,
            "calls_per_minute": calls_per_minute,
            "rate_window": rate_window,
        }
        if quota_calls is not None:
            account["quota_calls"] = quota_calls
        if quota_period_seconds is not None:
            account["quota_period_seconds"] = quota_period_seconds
        self._call("POST", "/_sim/rev/accounts", account)

    def add_rev_customers(self, *, client_code: str, customer_ids: Sequence[int]) -> None:
        body = {"client_code": client_code, "customer_ids": list(customer_ids)}
        self._call("POST", "/_sim/rev/customers", body)

    def seed_rev_services(
        self, *, client_code: str, services: Iterable[Mapping[str, Any]]
    ) -> list[int]:
        """Services that already exist in Rev (``{"customer_id", "number",
        "service_type_id"?}``), created in order; returns their ids."""
        body = {"client_code": client_code, "services": [dict(s) for s in services]}
        return [int(i) for i in self._call("POST", "/_sim/rev/services", body)["service_ids"]]

    def rev_services(self) -> list[dict[str, Any]]:
        """Every Rev service created, with its fields and its ``products``."""
        return list(self._call("GET", "/_sim/rev/services")["services"])

    def configure_rev(
        self,
        *,
        max_page_size: int | None = None,
        number_search: str | None = None,
        retry_after_header: bool | None = None,
    ) -> dict[str, Any]:
        """Cap every page at ``max_page_size`` records (until a reset); make
        ``search.number`` match ``"exact"``, ``"contains"`` or be ``"ignored"``; leave the
        seconds of a 429 or quota 403 in the message only (``retry_after_header=False``).
        Arguments not given are unchanged; returns the Rev config now in force."""
        body: dict[str, Any] = {}
        if max_page_size is not None:
            body["max_page_size"] = max_page_size
        if number_search is not None:
            body["number_search"] = number_search
        if retry_after_header is not None:
            body["retry_after_header"] = retry_after_header
        return dict(self._call("POST", "/_sim/rev/config", body))

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

    # -- AT&T Telegence ---------------------------------------------------------------------

    @property
    def telegence_base_url(self) -> str:
        """The base_url to give a Telegence client (it appends
        ``/sp/mobility/lineconfig/api/v1/service/{subscriberNumber}``)."""
        return self.base_url + "/telegence"

    def add_telegence_account(
        self,
        *,
        app_id: str,
        app_secret: str,
        billing_account: str = "",
        rate_limit: float | None = DEFAULT_RATE_LIMIT,
        rate_window: str = "bucket",
    ) -> None:
        """Create or replace an app (``app-id``/``app-secret``); ``rate_limit`` requests/s,
        ``None``/0 unlimited."""
        account = {
            "app_id": app_id,
            "app_secret": app_secret,
            "billing_account": billing_account,
            "rate_limit": rate_limit,
            "rate_window": rate_window,
        }
        self._call("POST", "/_sim/telegence/accounts", account)

    def seed_telegence_subscribers(
        self, *, app_id: str, subscribers: Iterable[Mapping[str, Any]]
    ) -> int:
        """Create or replace lines (``{"msisdn", "iccid", "status"?}``: a 10-digit MSISDN,
        status Active, Suspended or Cancelled, default Active) of an app; returns the count."""
        body = {"app_id": app_id, "subscribers": [dict(entry) for entry in subscribers]}
        return int(self._call("POST", "/_sim/telegence/subscribers", body)["seeded"])

    def telegence_subscriber(self, msisdn: str) -> dict[str, Any]:
        """A line's service record (``status``, ``serviceCharacteristic``) with ``reads``, the
        ``pending`` change (``{"status"}`` or None) and the accepted ``changes``
        (``subscriberStatus``, ``reasonCode``, ``effectiveDate``)."""
        return dict(self._call("GET", f"/_sim/telegence/subscribers/{msisdn}"))

    def set_telegence_completion(
        self, *, reads: int | None = None, seconds: float | str | None = None
    ) -> dict[str, Any]:
        """How long an accepted change takes to show: ``reads`` reads still showing the old
        status and/or ``seconds`` (``"never"``: until :meth:`apply_telegence_change`); both 0
        (the default) apply it at the PATCH."""
        body: dict[str, Any] = {}
        if reads is not None:
            body["apply_after_reads"] = reads
        if seconds is not None:
            body["apply_after_seconds"] = seconds
        return dict(self._call("POST", "/_sim/telegence/config", body))

    def apply_telegence_change(self, msisdn: str) -> dict[str, Any]:
        """AT&T completes the line's pending change now; returns the line's record."""
        return dict(self._call("POST", f"/_sim/telegence/subscribers/{msisdn}/apply"))

    # -- Cisco Jasper -----------------------------------------------------------------------

    @property
    def jasper_base_url(self) -> str:
        """The base_url to give a Jasper client (the API is under ``/rws/api/v1``)."""
        return self.base_url + "/jasper"

    def add_jasper_account(
        self,
        *,
        username: str,
        api_key: str,
        rate_limit: float | None = DEFAULT_RATE_LIMIT,
        rate_window: str = "bucket",
    ) -> None:
        """Create or replace an account (Basic ``username:api_key``); ``rate_limit``
        requests/s, ``None``/0 unlimited."""
        account = {
            "username": username,
            "api_key": api_key,
            "rate_limit": rate_limit,
            "rate_window": rate_window,
        }
        self._call("POST", "/_sim/jasper/accounts", account)

    def seed_jasper_devices(self, *, username: str, devices: Iterable[Mapping[str, Any]]) -> int:
        """Create or replace an account's devices (``{"iccid", "status"?, "imsi"?, "msisdn"?,
        "ratePlan"?, "communicationPlan"?}``, status any Jasper status including PURGED and
        REPLACED, default ACTIVATED); returns the count."""
        body = {"username": username, "devices": [dict(device) for device in devices]}
        return int(self._call("POST", "/_sim/jasper/devices", body)["seeded"])

    def jasper_device(self, iccid: str) -> dict[str, Any]:
        """A device as ``GET /devices/{iccid}`` shows it, plus its owning ``username``."""
        return dict(self._call("GET", f"/_sim/jasper/devices/{iccid}"))

    def jasper_wrong_echo(
        self, *, iccid: str, echo: str | None = None, times: int = -1
    ) -> dict[str, Any]:
        """Make the next ``times`` PUTs for ``iccid`` (-1: all) answer 200 echoing ``echo``
        (default: the ICCID with its last digit moved on) and leave the device unchanged."""
        body = {"iccid": iccid, "echo": echo, "times": times}
        return dict(self._call("POST", "/_sim/jasper/wrong_echo", body))

    def jasper_unconfirmed(
        self,
        *,
        iccid: str,
        answer: str = "accepted",
        reads: int | None = 0,
        seconds: float = 0,
        times: int = -1,
    ) -> dict[str, Any]:
        """Make the next ``times`` PUTs for ``iccid`` (-1: all) answer without confirming —
        ``accepted`` (202 echoing the ICCID), ``accepted-empty`` (202, no body), ``no-echo``
        (200 ``{}``) or ``empty`` (200, no body) — and keep the change hidden from the next
        ``reads`` reads (``None``: until :meth:`jasper_settle`) and for ``seconds``."""
        body = {
            "iccid": iccid,
            "answer": answer,
            "reads": reads,
            "seconds": seconds,
            "times": times,
        }
        return dict(self._call("POST", "/_sim/jasper/unconfirmed", body))

    def jasper_settle(self, iccid: str) -> dict[str, Any]:
        """Apply the device's pending change now; returns the device as a read shows it."""
        return dict(self._call("POST", f"/_sim/jasper/devices/{iccid}/settle"))

    def jasper_tariff_limit(
        self,
        *,
        op: str = "update_device",
        iccid: str | None = None,
        status: int = 429,
        retry_after: str | int | None = None,
        times: int = 1,
    ) -> dict[str, Any]:
        """Make the next ``times`` calls of ``op`` (for ``iccid``; ``None``: any) answer
        ``40000029`` "Exceeding Tariff limits" with HTTP ``status`` (400 or 429)."""
        body = {
            "op": op,
            "iccid": iccid,
            "status": status,
            "retry_after": retry_after,
            "times": times,
        }
        return dict(self._call("POST", "/_sim/jasper/tariff_limit", body))

    # -- Teal -------------------------------------------------------------------------------

    @property
    def teal_base_url(self) -> str:
        """The base_url to give a Teal client (it appends ``/api/v1``)."""
        return self.base_url + "/teal"

    def add_teal_account(
        self,
        *,
        api_key: str,
        api_secret: str,
        label: str = "",
        calls_per_minute: float | None = 1000,
        rate_window: str = "bucket",
    ) -> None:
        """Create or replace an account (``ApiKey``/``ApiSecret`` headers); ``calls_per_minute``
        is Teal's per-minute limit (default 1,000), ``None``/0 unlimited."""
        account = {
            "api_key": api_key,
            "api_secret": api_secret,
            "label": label or api_key,
            "calls_per_minute": calls_per_minute,
            "rate_window": rate_window,
        }
        self._call("POST", "/_sim/teal/accounts", account)

    def seed_teal_esims(self, *, api_key: str, esims: Iterable[Mapping[str, Any]]) -> int:
        """Create or replace an account's eSIMs (``{"eid", "iccid", "status"?, "plan"?}``,
        status online, waiting or stopped, default online); returns the count."""
        body = {"api_key": api_key, "esims": [dict(esim) for esim in esims]}
        return int(self._call("POST", "/_sim/teal/esims", body)["seeded"])

    def teal_esim(self, eid: str) -> dict[str, Any]:
        """An eSIM as the simulator holds it (``eid``, ``iccid``, ``status`` online, waiting or
        stopped, ``suspended``, ``plan``), plus its ``account`` label and the errors injected
        for it."""
        return dict(self._call("GET", f"/_sim/teal/esims/{eid}"))

    def set_teal_errors(
        self,
        eid: str,
        *,
        entry_error: str | None = None,
        operation_error: str | None = None,
        generic_errors: int = 0,
        generic_error_status: int = 400,
        stuck: str | None = None,
    ) -> None:
        """Make every change of ``eid`` report ``entry_error`` in its entry (the eSIM is left
        unchanged) or fail with ``operation_error`` (``None`` clears either); make the next
        ``generic_errors`` calls naming it answer GENERIC_ERROR with ``generic_error_status``;
        with ``stuck`` ("applied" or "unapplied") its changes never report a result, the eSIM
        changed at completion time or left as it was."""
        body = {
            "entry_error": entry_error,
            "operation_error": operation_error,
            "generic_errors": generic_errors,
            "generic_error_status": generic_error_status,
            "stuck": stuck,
        }
        self._call("POST", f"/_sim/teal/esims/{eid}/errors", body)

    def configure_teal(
        self,
        *,
        completion_seconds: float | str | None = None,
        callback_method: str | None = None,
        callbacks: bool | None = None,
        final_delay_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Operations complete ``completion_seconds`` after they were created (``"never"``:
        they keep running; switching back completes waiting ones), then Teal invokes their
        callbackUrl with ``callback_method`` (GET or POST) unless ``callbacks`` is false; after a
        102 the final answer follows ``final_delay_seconds`` later on the same connection.
        Returns the Teal config now in force (arguments left ``None`` are unchanged)."""
        body: dict[str, Any] = {
            name: value
            for name, value in (
                ("completion_seconds", completion_seconds),
                ("callback_method", callback_method),
                ("callbacks", callbacks),
                ("final_delay_seconds", final_delay_seconds),
            )
            if value is not None
        }
        return dict(self._call("POST", "/_sim/teal/config", body))

    def teal_operations(self) -> list[dict[str, Any]]:
        """Every operation created: ``requestId``, ``action`` (enable, disable, info), ``eids``,
        ``status`` (RUNNING, DONE), ``result``, ``callbackUrl``, ``submissions`` (repeats of its
        requestId included), ``polls``, ``interim_answers`` (102s) and ``callback`` (how the
        callback went, once sent)."""
        return list(self._call("GET", "/_sim/teal/operations")["operations"])

    # -- Verizon ThingSpace -----------------------------------------------------------------

    @property
    def thingspace_base_url(self) -> str:
        """The base_url to give a ThingSpace client (the API is under ``/api``)."""
        return self.base_url + "/thingspace"

    def add_thingspace_account(
        self,
        *,
        account_name: str,
        client_key: str,
        client_secret: str,
        username: str,
        password: str,
        rate_limit: float | None = DEFAULT_RATE_LIMIT,
        rate_window: str = "bucket",
        token_seconds: int | None = None,
    ) -> None:
        """Create or replace an account (OAuth ``client_key``/``client_secret``, UWS
        ``username``/``password``; unlocks the user); ``rate_limit`` requests/s, ``None``/0
        unlimited; access tokens valid ``token_seconds`` (default 3600)."""
        account = {
            "account_name": account_name,
            "client_key": client_key,
            "client_secret": client_secret,
            "username": username,
            "password": password,
            "rate_limit": rate_limit,
            "rate_window": rate_window,
            "token_seconds": token_seconds,
        }
        self._call("POST", "/_sim/thingspace/accounts", account)

    def seed_thingspace_devices(
        self, *, account_name: str, devices: Iterable[Mapping[str, Any]]
    ) -> int:
        """Create or replace an account's devices (``{"iccid", "state"?, "imei"?,
        "service_plan"?}``, state active, suspended, deactivated or preactive, default active;
        a device seeded again keeps its requests); returns the count."""
        body = {"account_name": account_name, "devices": [dict(device) for device in devices]}
        return int(self._call("POST", "/_sim/thingspace/devices", body)["seeded"])

    def thingspace_device(self, iccid: str) -> dict[str, Any]:
        """A device's ``state``, ``service_plan``, ``mdn_zip_code`` and its ``requests``
        (``requestId``, ``action``, ``fields``, ``status``, ``error``), oldest first."""
        return dict(self._call("GET", f"/_sim/thingspace/devices/{iccid}"))

    def set_thingspace_completion_delay(self, delay_ms: int | None) -> dict[str, Any]:
        """How long action requests stay Pending (``None``: forever); the delay in force when
        a request is read decides, so lowering it completes requests already waiting."""
        body = {"completion_delay_ms": delay_ms}
        return dict(self._call("POST", "/_sim/thingspace/config", body))

    def expire_thingspace_tokens(
        self, *, kind: str = "all", after_requests: int = 0
    ) -> dict[str, Any]:
        """Revoke every ``kind`` token (all, access, session): now, or once ``after_requests``
        more device calls have been served, so the next call gets a 401."""
        body = {"kind": kind, "after_requests": after_requests}
        return dict(self._call("POST", "/_sim/thingspace/tokens/expire", body))

    def set_thingspace_config(self, **knobs: Any) -> dict[str, Any]:
        """Set any of ``completion_delay_ms`` (``None``: never), ``session_inactivity_seconds``,
        ``callback_retry_seconds``, ``callback_attempts``; answers them all."""
        return dict(self._call("POST", "/_sim/thingspace/config", knobs))

    def fail_thingspace_requests(
        self, *, iccid: str, error: str | None, faultcode: str | None = None
    ) -> None:
        """Requests completing for ``iccid`` end Failed with the fault ``error`` (its
        faultstring) and ``faultcode`` (``error=None``: stop)."""
        body = {"iccid": iccid, "error": error, "faultcode": faultcode}
        self._call("POST", "/_sim/thingspace/failures", body)

    def thingspace_callbacks(self) -> dict[str, Any]:
        """``listeners`` (accountName, serviceName, url) and ``deliveries`` (requestId, url,
        status, attempts, statuses, acknowledged, finished)."""
        return dict(self._call("GET", "/_sim/thingspace/callbacks"))

    def add_thingspace_callback(
        self, *, account_name: str, url: str, service_name: str = "CarrierService"
    ) -> None:
        """Register a listener as another system would."""
        body = {"account_name": account_name, "service_name": service_name, "url": url}
        self._call("POST", "/_sim/thingspace/callbacks", body)
