"""The full chaos suite (marker ``chaos``: ``./dev test -m chaos``; the default run leaves it
out): every scenario of ``scenarios.py`` at a moderate size (``PONDOPS_CHAOS_DEVICES``, default
500) on production lease and retry settings, judged by the issue's acceptance criteria —
recovery and finish times included, against the baseline run first in this module. The Redis
scenarios run when REDIS_URL is set for the test run (a database number of its own)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.chaos import scenarios
from tests.chaos.conftest import assert_passed, chaos_config, needs_postgresql
from tests.chaos.harness import StackOptions
from tests.chaos.scenarios import ChaosConfig

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.chaos,
    pytest.mark.timeout(1500),
]

DEVICES = int(os.environ.get("PONDOPS_CHAOS_DEVICES", "500"))
BASELINES: dict[str, float] = {}  # the uninterrupted runs of this session, by mode


@pytest.fixture
def full(tmp_path: Path, settings: Any, device_statuses: None) -> ChaosConfig:
    return chaos_config(
        workdir=tmp_path,
        settings=settings,
        devices=DEVICES,
        options=StackOptions(),
        run_timeout=900,
        baseline=BASELINES.get("database"),
    )


def test_baseline_uninterrupted_run(full: ChaosConfig) -> None:
    outcome = scenarios.baseline(full)
    assert_passed(outcome)
    assert outcome.figures is not None and outcome.figures.elapsed is not None
    BASELINES["database"] = outcome.figures.elapsed


@pytest.mark.parametrize(
    "name",
    [
        "kill-group",
        "kill-master",
        "kill-poller",
        "sqs-down",
        pytest.param("db-cut", marks=needs_postgresql),
        "carrier-faults",
    ],
)
def test_scenario_meets_the_acceptance_criteria(name: str, full: ChaosConfig) -> None:
    assert_passed(scenarios.SCENARIOS[name](full))


@pytest.fixture
def redis_full(full: ChaosConfig, settings: Any) -> ChaosConfig:
    if not settings.REDIS_URL:
        pytest.skip("the Redis mode needs REDIS_URL (a database number of its own)")
    full.baseline = BASELINES.get("redis")
    return full


def test_redis_baseline_two_clusters_two_pollers(redis_full: ChaosConfig) -> None:
    outcome = scenarios.redis_scenario("redis-baseline", redis_full)
    assert_passed(outcome)
    assert outcome.figures is not None and outcome.figures.elapsed is not None
    BASELINES["redis"] = outcome.figures.elapsed


def test_redis_sigkill_of_the_cluster_groups(redis_full: ChaosConfig) -> None:
    assert_passed(scenarios.redis_scenario("redis-kill-group", redis_full))
