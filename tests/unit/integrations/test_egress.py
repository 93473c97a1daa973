"""The address classes the egress guard refuses (checked on the address connected to)."""

from __future__ import annotations

import ipaddress

import pytest

from integrations.base import EgressPolicy, address_problem


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
        ("127.0.0.1", "a loopback"),
        ("::1", "a loopback"),
        ("10.1.2.3", "a private"),
        ("172.16.0.1", "a private"),
        ("192.168.1.10", "a private"),
        ("fd00::1", "a private"),
        ("169.254.169.254", "a link-local"),
        ("fe80::1", "a link-local"),
        ("224.0.0.1", "a multicast"),
        ("ff02::1", "a multicast"),
        ("0.0.0.0", "an unspecified"),
        ("::", "an unspecified"),
        ("240.0.0.1", "a private"),  # reserved; Python lists it among the private ranges
        ("100.64.0.1", "a non-public"),  # carrier-grade NAT, shared address space
        ("::ffff:127.0.0.1", "a loopback"),  # IPv4-mapped: judged as the IPv4 address
        ("::ffff:169.254.169.254", "a link-local"),
        ("fec0::1", "a site-local"),
    ],
)
def test_address_problem(address: str, problem: str | None) -> None:
    assert address_problem(ipaddress.ip_address(address)) == problem


def test_the_default_policy_exempts_no_origin() -> None:
    policy = EgressPolicy()
    assert not policy.is_extra("http://127.0.0.1:8000/hook")


def test_a_policy_exempts_only_its_listed_origins() -> None:
    policy = EgressPolicy.from_origins(["http://127.0.0.1:*", "https://hooks.internal:8443"])
    assert policy.is_extra("http://127.0.0.1:8000/hook")
    assert policy.is_extra("https://hooks.internal:8443/a?b=c")
    assert not policy.is_extra("https://hooks.internal/a")
    assert not policy.is_extra("http://127.0.0.1.attacker.example:8000/hook")
    assert not policy.is_extra("http://127.0.0.1:8000@attacker.example/hook")
