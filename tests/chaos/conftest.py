"""Fixtures for the chaos suites: a :class:`ChaosConfig` on the test database (the stack's
subprocesses open it by URL; on PostgreSQL through the harness's TCP proxy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.chaos.harness import StackOptions
from tests.chaos.scenarios import ChaosConfig, Outcome
from tests.conftest import database_url

needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the database cut goes through a TCP proxy in front of PostgreSQL",
)


def redis_options(settings: Any) -> dict[str, Any]:
    """With REDIS_URL set for the test run (CI's Redis pass): the processes use it, two
    qcluster and two poll_sqs, as the issue's Redis mode asks."""
    if not settings.REDIS_URL:
        return {}
    return {"redis_url": settings.REDIS_URL, "clusters": 2, "pollers": 2}


def chaos_config(
    *, workdir: Path, settings: Any, devices: int, options: StackOptions, **knobs: Any
) -> ChaosConfig:
    return ChaosConfig(
        devices=devices,
        database_url=database_url(),
        workdir=workdir,
        options=options,
        redis_url=settings.REDIS_URL,
        **knobs,
    )


def assert_passed(outcome: Outcome) -> None:
    assert outcome.passed, outcome.explain()
