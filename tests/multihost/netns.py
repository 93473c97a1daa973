"""Test "hosts": Linux network namespaces joined to the machine by one veth pair each.

A :class:`NetnsHost` is ``ip netns add pondops-<run>-<letter>`` with loopback up and a veth
pair on a /30 of its own in 10.0.0.0/8 (the host side ``.1``, the namespace side ``.2``),
chosen at random among /30s that no address or route of the machine touches. The namespace has
no default route: it reaches the host side's address and nothing else, so its processes see
the shared services only through the forwarder listening there (:mod:`tests.multihost.forwarder`).

``/etc/netns/<name>/hosts`` (which ``ip netns exec`` mounts over ``/etc/hosts``) names that
address ``pondops-services``: one credentials row's ``base_url`` then reaches each host's own
forwarder. Processes run in a UTS namespace of their own too, with the host's name as their
hostname, so the audit rows' ``process_by`` (``worker:<hostname>/<pid>``) says which host
made each carrier call.

:meth:`NetnsHost.cut` takes the host-side veth down. A blackhole route for the /30 (a higher
metric than the link's own route, so unused while the link is up) keeps the machine from
sending the forwarder's retransmissions to its default gateway while the link is down.
Everything is removed by :meth:`NetnsHost.delete`, which tolerates a half-made host.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

SERVICES_NAME = "pondops-services"
NETNS_ETC = Path("/etc/netns")
BLACKHOLE_METRIC = 4242


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, no ``ip``, or the kernel refused)."""


def ip(*args: str, netns: str | None = None) -> str:
    """Run ``ip *args`` (inside ``netns`` when given); raises with ip's message on failure."""
    command = ["ip", *args] if netns is None else ["ip", "netns", "exec", netns, "ip", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip() or result.returncode}")
    return result.stdout


def netns_unavailable_reason() -> str | None:
    """Why this machine cannot make test hosts, or None when it can (probed by making and
    deleting a namespace)."""
    import os

    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if shutil.which("unshare") is None:
        return "the unshare command (util-linux) is not installed"
    probe = f"pondops-probe-{uuid.uuid4().hex[:6]}"
    try:
        ip("netns", "add", probe)
    except RuntimeError as error:
        return f"ip netns add failed: {error}"
    with contextlib.suppress(RuntimeError):
        ip("netns", "delete", probe)
    return None


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the machine has an address or a route in."""
    networks: list[ipaddress.IPv4Network] = []
    for line in ip("-4", "-o", "addr").splitlines():
        fields = line.split()
        if "inet" in fields:
            networks.append(ipaddress.IPv4Interface(fields[fields.index("inet") + 1]).network)
    for line in ip("-4", "route", "show", "table", "all").splitlines():
        first = line.split()[0] if line.split() else ""
        if first in {"local", "broadcast", "blackhole", "unreachable", "prohibit"}:
            first = line.split()[1]
        if first == "default":
            continue
        with contextlib.suppress(ValueError):
            networks.append(ipaddress.IPv4Network(first, strict=False))
    return networks


def free_subnets(count: int) -> list[ipaddress.IPv4Network]:
    """``count`` random /30s in 10.0.0.0/8 that overlap nothing the machine uses (and avoid
    10.0.x and 10.255.x, the blocks most often used by hand)."""
    used = used_networks()
    chosen: list[ipaddress.IPv4Network] = []
    rng = random.SystemRandom()
    while len(chosen) < count:
        base = ipaddress.IPv4Address(
            f"10.{rng.randint(100, 250)}.{rng.randint(1, 254)}.{rng.randrange(0, 256, 4)}"
        )
        subnet = ipaddress.IPv4Network(f"{base}/30")
        if not any(subnet.overlaps(other) for other in used + chosen):
            chosen.append(subnet)
    return chosen


@dataclass
class NetnsHost:
    """One host: ``name`` is the namespace (and the hostname its processes see)."""

    name: str
    subnet: ipaddress.IPv4Network
    host_veth: str
    netns_veth: str

    @property
    def host_address(self) -> str:
        """The host side of the veth, where the forwarder listens."""
        return str(self.subnet.network_address + 1)

    @property
    def netns_address(self) -> str:
        return str(self.subnet.network_address + 2)

    @classmethod
    def create(cls, *, name: str, subnet: ipaddress.IPv4Network, veth: str) -> NetnsHost:
        """Make the namespace and its veth pair; on any failure, remove what was made."""
        host = cls(name=name, subnet=subnet, host_veth=f"{veth}h", netns_veth=f"{veth}n")
        try:
            host._build()
        except BaseException:
            host.delete()
            raise
        return host

    def _build(self) -> None:
        prefix = self.subnet.prefixlen
        ip("netns", "add", self.name)
        ip("link", "add", self.host_veth, "type", "veth", "peer", "name", self.netns_veth)
        ip("link", "set", self.netns_veth, "netns", self.name)
        ip("addr", "add", f"{self.host_address}/{prefix}", "dev", self.host_veth)
        ip("route", "add", "blackhole", str(self.subnet), "metric", str(BLACKHOLE_METRIC))
        ip("link", "set", self.host_veth, "up")
        ip("link", "set", "lo", "up", netns=self.name)
        ip("addr", "add", f"{self.netns_address}/{prefix}", "dev", self.netns_veth, netns=self.name)
        ip("link", "set", self.netns_veth, "up", netns=self.name)
        etc = NETNS_ETC / self.name
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(
            f"127.0.0.1 localhost\n::1 localhost\n{self.host_address} {SERVICES_NAME}\n"
            f"127.0.1.1 {self.name}\n"
        )

    def prefix(self) -> list[str]:
        """The command that runs what follows it inside the namespace, in a UTS namespace
        named after the host. The chain execs all the way down, so the pid Popen returns is
        that of the command that follows."""
        return [
            "ip", "netns", "exec", self.name,
            "unshare", "--uts",
            "sh", "-c", 'hostname "$0" && exec "$@"', self.name,
        ]  # fmt: skip

    def cut(self) -> None:
        ip("link", "set", self.host_veth, "down")

    def restore(self) -> None:
        ip("link", "set", self.host_veth, "up")

    def delete(self) -> None:
        """Remove the veth pair (deleting one end deletes both), the blackhole route, the
        namespace and its /etc/netns directory (and /etc/netns once empty); each part may
        already be gone."""
        with contextlib.suppress(RuntimeError):
            ip("link", "delete", self.host_veth)
        with contextlib.suppress(RuntimeError):
            ip("route", "delete", "blackhole", str(self.subnet), "metric", str(BLACKHOLE_METRIC))
        with contextlib.suppress(RuntimeError):
            ip("netns", "delete", self.name)
        shutil.rmtree(NETNS_ETC / self.name, ignore_errors=True)
        with contextlib.suppress(OSError):  # /etc/netns itself, when no other host is left
            NETNS_ETC.rmdir()
