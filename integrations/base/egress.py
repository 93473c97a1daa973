"""The egress guard of the one HTTP mechanism: where a request may connect.

Every session from :func:`integrations.base.http.http_session` resolves the URL's host once,
refuses the address it got when that address is not public (private, loopback, link-local,
multicast, reserved, unspecified, shared or otherwise not globally routable), and connects to
that very address — no second lookup that DNS could answer differently — while TLS still
verifies the certificate against, and sends SNI for, the URL's hostname. The resolution and the
pinning are Saleor's ``requests-hardened`` (:class:`IPFilterAdapter`); :class:`GuardedAdapter`
adds the address classes that library lets through and our own error.

The guard is waived only for an origin the deployment lists explicitly (:class:`EgressPolicy`,
built from ``PONDOPS_CARRIER_EXTRA_ORIGINS`` or ``PONDOPS_WEBHOOK_EXTRA_ORIGINS``: the
loopback simulators and receivers of the demo and the tests). Redirects are never followed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests_hardened.ip_filter import InvalidIPAddress
from requests_hardened.ip_filter_adapter import IPFilterAdapter

from integrations.base.origins import Origin, matching, origins_parse

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(requests.RequestException):
    """The host resolved to an address PondOps must not connect to; nothing was sent."""

    def __init__(self, *, host: str, address: str, reason: str) -> None:
        self.host = host
        self.address = address
        self.reason = reason
        where = f"{reason} address" if host == address else f"it resolves to {reason} address"
        super().__init__(f"refused to connect to {host}: {where} ({address})")


def address_problem(address: IPAddress) -> str | None:
    """What makes ``address`` unfit to connect to ("loopback", "link-local"…), None when it
    is a public unicast address. An IPv4-mapped IPv6 address is judged as its IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for reason, flag in (
        ("an unspecified", address.is_unspecified),
        ("a loopback", address.is_loopback),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("a private", address.is_private),
        ("a reserved", address.is_reserved),
        ("a site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
    ):
        if flag:
            return reason
    if not address.is_global:
        return "a non-public"
    return None


@dataclass(frozen=True)
class EgressPolicy:
    """Which origins are exempt from the address check — none unless the deployment lists
    them. The default policy is the production one."""

    extra_origins: tuple[Origin, ...] = ()

    @classmethod
    def from_origins(cls, texts: Iterable[str]) -> EgressPolicy:
        return cls(extra_origins=origins_parse(texts))

    def is_extra(self, url: str) -> bool:
        return matching(url, self.extra_origins) is not None


class GuardedAdapter(IPFilterAdapter):
    """requests-hardened's resolve-check-pin adapter with our pool sizes, the address classes
    of :func:`address_problem`, and :class:`EgressRefused` naming host and address."""

    def __init__(self, *, https: bool, pool_size: int) -> None:
        super().__init__(is_https_proto=https, allow_loopback=False)
        _pool(self, pool_size)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host = urlsplit(request.url or "").hostname or ""
        try:
            host_params, pool_kwargs = super().build_connection_pool_key_attributes(
                request, verify, cert
            )
        except InvalidIPAddress as exc:
            address = ipaddress.ip_address(str(exc.args[0]))
            reason = address_problem(address) or "a non-public"
            raise EgressRefused(host=host, address=str(address), reason=reason) from exc
        pinned = ipaddress.ip_address(str(host_params["host"]).strip("[]"))
        problem = address_problem(pinned)
        if problem:
            raise EgressRefused(host=host, address=str(pinned), reason=problem)
        return host_params, pool_kwargs


class PlainAdapter(HTTPAdapter):
    """For the deployment's explicitly allowed extra origins only: no address check."""

    def __init__(self, *, pool_size: int) -> None:
        super().__init__(pool_connections=4, pool_maxsize=pool_size, max_retries=0)


def _pool(adapter: HTTPAdapter, pool_size: int) -> None:
    """Re-create the adapter's pool manager with PondOps' sizes (requests-hardened's adapter
    takes none): pooled keep-alive connections, no hidden urllib3 retries."""
    adapter._pool_connections = 4  # type: ignore[attr-defined]
    adapter._pool_maxsize = pool_size  # type: ignore[attr-defined]
    adapter.init_poolmanager(4, pool_size, block=False)


class EgressSession(requests.Session):
    """A session that connects only to public addresses (except the policy's extra origins)
    and never follows a redirect, whatever its caller asks."""

    def __init__(self, *, policy: EgressPolicy, pool_size: int) -> None:
        super().__init__()
        # The environment is not consulted on each request (proxy variables, .netrc,
        # REQUESTS_CA_BUNDLE): reading it was a measurable share of a worker's CPU per call,
        # and a carrier call must go where the egress guard checked, not through a proxy
        # someone's environment names.
        self.trust_env = False
        self.policy = policy
        self._guarded = {
            "https://": GuardedAdapter(https=True, pool_size=pool_size),
            "http://": GuardedAdapter(https=False, pool_size=pool_size),
        }
        self._plain = PlainAdapter(pool_size=pool_size)
        for prefix, adapter in self._guarded.items():
            self.mount(prefix, adapter)

    def get_adapter(self, url: str) -> Any:
        if self.policy.is_extra(url):
            return self._plain
        for prefix, adapter in self._guarded.items():
            if url.lower().startswith(prefix):
                return adapter
        return super().get_adapter(url)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        kwargs["allow_redirects"] = False
        return super().send(request, **kwargs)

    def close(self) -> None:
        super().close()
        self._plain.close()


def redirect_target(headers: Mapping[str, str]) -> str:
    """The host a 3xx answer's ``Location`` names (never followed), for its error message."""
    location = headers.get("Location", "")
    parts = urlsplit(location)
    return parts.hostname or (location[:100] if location else "no Location")
