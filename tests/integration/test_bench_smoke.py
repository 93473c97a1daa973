"""The benchmarks are scripts the suite never times — but they must keep running: they drive the
demo's carrier set-up, the simulators and the real pipeline processes (the limiter's: its sender
processes), so a refactor of any of them can break them unnoticed. One tiny run of each (SQLite,
a few devices; a second per limiter backend) checks that it completes and prints its figures;
whether the figures meet their targets is not judged here (with 20 devices the steady-state
rate is not meaningful)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def run_benchmark(script: str, *arguments: str) -> str:
    """Run a benchmark script as a developer would (no test database or Redis from the
    environment); returns its output, after checking it could run (exit 2: it could not)."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "PONDOPS_TEST_SQLITE"}
    }
    result = subprocess.run(
        [sys.executable, f"tests/bench/{script}", *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode in (0, 1), output[-4000:]
    return output


def test_the_benchmark_runs_end_to_end_and_prints_its_figures() -> None:
    output = run_benchmark(
        "bench_pipeline.py",
        *("--devices", "20", "--carriers", "pond", "--query-sample", "5,10"),
        *("--timeout", "120", "--query-timeout", "120"),
    )
    assert "| POND | bulk change final | PROCESSED {'PROCESSED': 20} | PASS |" in output
    assert "| POND | 429s = 0 | 0 | PASS |" in output
    assert "queries/device 5 vs 10" in output
    assert "Overall: " in output


def test_the_limiter_benchmark_runs_and_prints_its_table() -> None:
    """A one-second run of each backend there is (SQLite, and Redis when it answers)."""
    output = run_benchmark("bench_limiter.py", "--seconds", "1", "--rate", "20")
    assert "PostgreSQL: skipped (DATABASE_URL is not PostgreSQL)" in output
    assert "| SQLite | " in output
    assert "| Redis | " in output or "Redis: skipped" in output
