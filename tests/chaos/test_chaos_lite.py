"""The chaos suite, reduced for every run and CI: 120 devices, faults of a few seconds, short
leases and reaper settings through the subprocesses' environment. Each test asserts the
invariants (every device final, no duplicate Rev.io service, carrier calls <= audit rows,
duplicate carrier writes <= devices in flight at the fault) under generous hang-guard deadlines;
speed is the full suite's and the script's business (``test_chaos.py``, ``run_chaos.py``).

With REDIS_URL set (CI's second pass) the processes use Redis, with two qcluster and two
poll_sqs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.chaos import scenarios
from tests.chaos.conftest import assert_passed, chaos_config, needs_postgresql, redis_options
from tests.chaos.harness import StackOptions
from tests.chaos.scenarios import ChaosConfig, Outcome

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

DEVICES = 120
HANG_GUARD = 120  # s: a run not final by then has hung (a healthy one takes 10-30 s)
LITE_ENV = {
    "BULKCHANGE_LEASE_SECONDS": "6",
    "BULKCHANGE_REAPER_GRACE_SECONDS": "3",
    "BULKCHANGE_RETRY_BASE_SECONDS": "1",
    "BULKCHANGE_TASK_TIMEOUT": "30",
    "BULKCHANGE_TASK_RETRY": "40",
    # One device's CONFIRM attempt must fit in the task timeout (system check pondops.E014):
    # 2 x (2 + 3) + 5 = 15 s < 30 s.
    "BULKCHANGE_HTTP_CONNECT_TIMEOUT": "2",
    "BULKCHANGE_HTTP_READ_TIMEOUT": "3",
    "BULKCHANGE_CONFIRM_SECONDS": "5",
    # A task waits out a database outage inside its timeout, then fails cleanly (pondops.E011).
    "BULKCHANGE_DB_OUTAGE_WAIT_SECONDS": "20",
    "BULKCHANGE_CHUNK_SIZE": "10",
}


@pytest.fixture
def lite(tmp_path: Path, settings: Any, device_statuses: None) -> ChaosConfig:
    options = StackOptions(
        rate_limit=0,
        rev_rate_limit=0,
        latency_ms=5,
        reaper_interval=1,
        env=LITE_ENV,
        **redis_options(settings),
    )
    return chaos_config(
        workdir=tmp_path,
        settings=settings,
        devices=DEVICES,
        options=options,
        run_timeout=HANG_GUARD,
        restart_after=2,
        sqs_down_seconds=5,
        db_cut_seconds=5,
        speed=False,
        calls_equal_rows=False,
    )


def run(scenario: Callable[[ChaosConfig], Outcome], config: ChaosConfig) -> Outcome:
    outcome = scenario(config)
    assert_passed(outcome)
    return outcome


def test_sigkill_of_the_whole_cluster_group_loses_no_device_and_no_audit_row(
    lite: ChaosConfig,
) -> None:
    outcome = run(scenarios.kill_group, lite)
    assert outcome.figures is not None and outcome.figures.recovery is not None


def test_sqs_down_and_back_on_the_same_port_is_consumed_again_with_no_manual_step(
    lite: ChaosConfig,
) -> None:
    run(scenarios.sqs_down, lite)


@needs_postgresql
def test_a_database_cut_through_the_proxy_ends_with_every_device_final(lite: ChaosConfig) -> None:
    outcome = run(scenarios.db_cut, lite)
    assert outcome.figures is not None and outcome.figures.recovery is not None


def test_carrier_503_429_resets_html_and_timeouts_end_final_without_duplicates(
    lite: ChaosConfig,
) -> None:
    outcome = run(scenarios.carrier_faults, lite)
    assert outcome.figures is not None and outcome.figures.faults_injected > 0
