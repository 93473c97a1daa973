"""``manage.py qcluster`` (bulkchanges/orphans.py): no process of a cluster outlives its
master. A real cluster in its own session; SIGKILL of the master pid only."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import Processes, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid``, from /proc/<pid>/task/*/children."""
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                pids = {int(child) for child in children.read_text().split()}
            except OSError:  # the task ended meanwhile
                continue
            frontier.extend(pids - found)
            found |= pids
    return found


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_the_sentinel_and_workers_exit_when_the_master_is_killed(processes: Processes) -> None:
    cluster = processes.start("qcluster", start_new_session=True, PONDOPS_Q_WORKERS="2")

    # The sentinel, two workers, the monitor and the pusher.
    def started() -> set[int] | None:
        found = descendants(cluster.pid)
        return found if len(found) >= 5 else None

    try:
        children: set[int] = wait_for(started, timeout=60, message="the cluster's processes")
    except AssertionError:
        print(processes.logs())
        raise

    os.kill(cluster.pid, signal.SIGKILL)  # the master only, not its group
    cluster.wait()

    try:
        wait_for(
            lambda: not any(alive(pid) for pid in children),
            timeout=30,
            interval=0.1,
            message=f"the cluster's processes {sorted(children)} to exit",
        )
    finally:  # never leave orphans behind, whatever the outcome
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
