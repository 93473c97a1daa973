"""Fixtures for the two-host test: two network namespaces (made and always removed here) and
the shared services' requirements (PostgreSQL, Redis), each skipped with its reason."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from tests.multihost.netns import NetnsHost, free_subnets, netns_unavailable_reason

# A Redis database number of this test's own (tests/fixtures/redisdb.py), unless the run gives
# one (CI's REDIS_URL); emptied with FLUSHDB of that number only.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture
def shared_redis_url(settings: Any) -> str:
    """The Redis both hosts share; the test skips when none answers on loopback."""
    import redis

    url = settings.REDIS_URL or DEFAULT_REDIS_URL
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.skip(f"two hosts share Redis; none answers at {url}: {error}")
    finally:
        client.close()
    return url


@pytest.fixture
def two_hosts() -> Iterator[list[NetnsHost]]:
    """Hosts ``pondops-<run>-a`` and ``-b``, each on a free /30 of its own; deleted in
    teardown whatever happened (a half-made host too)."""
    if connection.vendor != "postgresql":
        pytest.skip("two hosts share PostgreSQL: run with DATABASE_URL=postgresql://…")
    reason = netns_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    run = uuid.uuid4().hex[:6]
    hosts: list[NetnsHost] = []
    try:
        for letter, subnet in zip("ab", free_subnets(2), strict=True):
            hosts.append(
                NetnsHost.create(
                    name=f"pondops-{run}-{letter}", subnet=subnet, veth=f"pp{run}{letter}"
                )
            )
        yield hosts
    finally:
        for host in hosts:
            host.delete()
