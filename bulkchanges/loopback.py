"""Whether a host or URL is this machine: the one test behind every local-only convenience
(dummy credentials for a local SQS server, the demo's refusal to touch anything off this
machine)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP address (IPv4 or IPv6, without brackets)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """Whether the URL's host is a loopback host."""
    return is_loopback_host(urlsplit(url).hostname or "")
