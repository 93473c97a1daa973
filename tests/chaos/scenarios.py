"""The chaos scenarios: each starts a stack, runs one bulk change through it, injects its fault
and returns the figures with the issue's acceptance criteria checked against them.

Used by ``run_chaos.py`` (full size, production settings, speed criteria on) and by the pytest
suites (``test_chaos.py``; ``test_chaos_lite.py`` with short leases and speed criteria off:
invariants and hang guards only).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from tests.chaos.harness import ChaosStack, Figures, Run, StackOptions, group_pids, wait_until

# The "Done when" (docs/architecture.md §11 lists them too).
RECOVERY_AFTER_KILL = 30.0  # s from the restart to the first device final
FINISH_MARGIN = 60.0  # s beyond the uninterrupted run
RECOVERY_AFTER_SQS = 30.0  # s from the queue's return to a message being consumed
RECOVERY_AFTER_DB_CUT = 60.0
ORPHAN_DEADLINE = 10.0  # s after the master's death by which none of its group may live
PROBE_TIMEOUT = 60.0  # s a probe message may take to be consumed before it counts as "never"


@dataclass
class ChaosConfig:
    devices: int
    database_url: str
    workdir: Path
    options: StackOptions = field(default_factory=StackOptions)
    redis_url: str = ""  # for the Redis scenarios
    run_timeout: float = 900  # bound on each run; beyond it the run "did not finish"
    fault_at: float = 0.25  # fraction of devices final when the fault strikes
    restart_after: float = 5
    sqs_down_seconds: float = 30
    db_cut_seconds: float = 45
    baseline: float | None = None  # s the uninterrupted run took (baseline sets it)
    speed: bool = True  # check the recovery and finish-time criteria (off in the lite suite)
    calls_equal_rows: bool = True  # False: carrier calls <= audit rows (the lite suite)
    report: Callable[[str], None] | None = None  # progress lines (the script prints them)


@dataclass
class Check:
    criterion: str
    value: str
    passed: bool | None  # None: measured, not judged


@dataclass
class Outcome:
    scenario: str
    figures: Figures | None
    checks: list[Check] = field(default_factory=list)
    error: str = ""
    logs: str = ""

    @property
    def passed(self) -> bool:
        return not self.error and all(c.passed is not False for c in self.checks)

    def failures(self) -> list[str]:
        failed = [f"{c.criterion}: {c.value}" for c in self.checks if c.passed is False]
        return failed + ([self.error] if self.error else [])

    def explain(self) -> str:
        """Every figure and check, and the failures with the processes' logs (for asserts)."""
        lines = [f"scenario {self.scenario}: {'PASS' if self.passed else 'FAIL'}"]
        lines += [f"  {c.criterion}: {c.value} -> {_verdict(c.passed)}" for c in self.checks]
        if self.figures is not None:
            lines.append(f"  figures: {self.figures}")
        if self.error:
            lines.append(f"  error: {self.error}")
        if not self.passed and self.logs:
            lines.append(self.logs)
        return "\n".join(lines)


def _verdict(passed: bool | None) -> str:
    return "measured" if passed is None else ("PASS" if passed else "FAIL")


def _s(value: float | None) -> str:
    return "did not finish" if value is None else f"{value:.1f}s"


# --- Running one scenario ----------------------------------------------------------------------


@contextlib.contextmanager
def _stack(config: ChaosConfig, name: str, **overrides: object) -> Iterator[ChaosStack]:
    workdir = config.workdir / name
    workdir.mkdir(parents=True, exist_ok=True)
    options = replace(config.options, **overrides)  # type: ignore[arg-type]
    with ChaosStack(database_url=config.database_url, workdir=workdir, options=options) as stack:
        yield stack


def _judge(config: ChaosConfig, run: Run, checks: list[Check]) -> list[Check]:
    """The invariants every scenario asserts, then the scenario's own checks."""
    f = run.figures()
    common = [
        Check(
            "every device final",
            f"{f.final}/{f.devices} final, bulk change {f.status}",
            f.all_final,
        ),
        Check(
            "no duplicate Rev.io service",
            f"{f.duplicate_rev_services} duplicates of {f.rev_services} services",
            f.duplicate_rev_services == 0,
        ),
        Check(
            "duplicate carrier writes <= devices in flight at the fault (+ writes the simulator "
            "faulted or refused with 429)",
            f"{f.duplicate_writes} <= {f.write_allowance} ({f.in_flight_at_fault} in flight, "
            f"{f.allowed_extra_writes} faulted, {f.rate_limited} 429s)",
            f.duplicate_writes <= f.write_allowance,
        ),
    ]
    rows = (
        f"{f.calls} calls, {f.audit_rows} audit rows ({f.in_flight_rows} still in flight, "
        f"{f.no_response_rows} without a response, {f.worker_stopped_rows} closed as "
        "'no response: worker stopped')"
    )
    if config.calls_equal_rows:
        # A call's row is written before the call: a worker killed between the two leaves a
        # row (closed as "no response: worker stopped") for a call the carrier never saw. So:
        # every call has its row, and the only extra rows are such closed ones.
        common.append(
            Check(
                "carrier calls == audit rows (extra rows only those closed as no response)",
                rows,
                f.calls <= f.audit_rows <= f.calls + f.worker_stopped_rows
                and f.in_flight_rows == 0,
            )
        )
    else:
        common.append(Check("carrier calls <= audit rows", rows, f.calls <= f.audit_rows))
    return common + checks


def _finish(config: ChaosConfig, run: Run) -> None:
    if not run.wait_final(timeout=config.run_timeout):
        run.notes.append(f"did not finish within {config.run_timeout:.0f}s")


def _cancel_unfinished(run: Run) -> None:
    """An unfinished run's devices must not spill into the next scenario."""
    from bulkchanges.models import BulkChange
    from bulkchanges.services.bulk_change_actions import bulk_change_cancel

    bulk_change = BulkChange.objects.get(pk=run.bulk_change.pk)
    if bulk_change.status in BulkChange.OPEN:
        bulk_change_cancel(bulk_change=bulk_change, actor="chaos harness (run did not finish)")


def _finish_checks(config: ChaosConfig, run: Run, recovery_bound: float | None) -> list[Check]:
    checks = []
    recovery = run.recovery()
    if recovery_bound is not None:
        checks.append(
            Check(
                f"progress resumes within {recovery_bound:.0f}s of the fault's end",
                "no progress" if recovery is None else f"{recovery:.1f}s",
                (recovery is not None and recovery <= recovery_bound) if config.speed else None,
            )
        )
    if config.baseline is not None and recovery_bound is not None:
        elapsed = run.elapsed()
        bound = config.baseline + FINISH_MARGIN
        checks.append(
            Check(
                f"finishes within {FINISH_MARGIN:.0f}s of the uninterrupted run "
                f"({config.baseline:.1f}s)",
                _s(elapsed),
                (elapsed is not None and elapsed <= bound) if config.speed else None,
            )
        )
    return checks


def scenario(
    name: str, body: Callable[[ChaosConfig, ChaosStack, Run], list[Check]], **overrides: object
) -> Callable[[ChaosConfig], Outcome]:
    """A scenario function: start a stack, create the bulk change, run ``body`` (which injects
    the fault and waits), judge the run."""

    def run_scenario(config: ChaosConfig) -> Outcome:
        stack: ChaosStack | None = None
        try:
            with _stack(config, name, **overrides) as stack:
                run = Run(stack, config.devices, config.report)
                try:
                    checks = body(config, stack, run)
                    return Outcome(
                        name, run.figures(), _judge(config, run, checks), logs=stack.logs()
                    )
                finally:
                    _cancel_unfinished(run)
        except Exception as error:
            logs = stack.logs() if stack is not None else ""
            return Outcome(name, None, error=f"{type(error).__name__}: {error}", logs=logs)

    run_scenario.__name__ = name.replace("-", "_")
    return run_scenario


# --- The scenarios ---------------------------------------------------------------------------


def _baseline(config: ChaosConfig, stack: ChaosStack, run: Run) -> list[Check]:
    _finish(config, run)
    return [Check("uninterrupted run", _s(run.elapsed()), None)]


def _kill_group(config: ChaosConfig, stack: ChaosStack, run: Run) -> list[Check]:
    """SIGKILL every qcluster's whole process group mid-run; start them again 5 s later."""
    run.wait_fraction(config.fault_at, timeout=config.run_timeout)
    run.fault_start()
    clusters = stack.running("qcluster")
    for cluster in clusters:
        stack.kill_group(cluster)
    run.wait(seconds=config.restart_after)
    for _ in clusters:
        stack.start_cluster()
    run.fault_end()
    _finish(config, run)
    return _finish_checks(config, run, RECOVERY_AFTER_KILL)


def _kill_master(config: ChaosConfig, stack: ChaosStack, run: Run) -> list[Check]:
    """SIGKILL the qcluster master only; its sentinel and workers are orphans and must stop
    within seconds; a new cluster starts 5 s later."""
    run.wait_fraction(config.fault_at, timeout=config.run_timeout)
    run.fault_start()
    (cluster,) = stack.running("qcluster")[:1]
    killed_at = _now()
    orphans = stack.kill_master(cluster)
    run.wait(seconds=config.restart_after)
    stack.start_cluster()
    run.fault_end()
    run.wait(seconds=max(0.0, ORPHAN_DEADLINE - config.restart_after))
    survivors = group_pids(cluster.process.pid)
    _finish(config, run)
    host = socket.gethostname()
    by_orphans = _devices_processed_by(run, {f"worker:{host}/{pid}" for pid in orphans}, killed_at)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(cluster.process.pid, signal.SIGKILL)  # whatever survived the check
    return [
        Check(
            f"no process of the killed master's group alive {ORPHAN_DEADLINE:.0f}s after",
            f"{len(survivors)} of {len(orphans)} orphans alive",
            not survivors,
        ),
        Check("devices processed by orphans after the kill", str(by_orphans), None),
        *_finish_checks(config, run, RECOVERY_AFTER_KILL),
    ]


def _kill_poller(config: ChaosConfig, stack: ChaosStack, run: Run) -> list[Check]:
    """SIGKILL poll_sqs mid-run (with retries pending through SQS); start it again 5 s later."""
    run.wait_fraction(config.fault_at, timeout=config.run_timeout)
    _retries_pending(stack, run)
    run.fault_start()
    for poller in stack.running("poll_sqs"):
        stack.kill_group(poller)
    run.wait(seconds=config.restart_after)
    stack.start_poller()
    run.fault_end()
    consumed = _probe_consumed(stack, run, timeout=min(PROBE_TIMEOUT, config.run_timeout))
    _finish(config, run)
    return [_consumption_check(config, consumed), *_finish_checks(config, run, None)]


def _sqs_down(config: ChaosConfig, stack: ChaosStack, run: Run) -> list[Check]:
    """moto killed for 30 s (its messages lost) and started again on the same port with the
    queues recreated; poll_sqs must resume with no manual step."""
    run.wait_fraction(config.fault_at, timeout=config.run_timeout)
    _retries_pending(stack, run)
    run.fault_start()
    stack.sqs_down()
    run.wait(seconds=config.sqs_down_seconds)
    stack.sqs_up()
    run.fault_end()
    consumed = _probe_consumed(stack, run, timeout=min(PROBE_TIMEOUT, config.run_timeout))
    pollers = len(stack.running("poll_sqs"))
    _finish(config, run)
    return [
        _consumption_check(config, consumed),
        Check(
            "poll_sqs processes alive after the outage",
            f"{pollers} of {stack.options.pollers}",
            pollers == stack.options.pollers,
        ),
        *_finish_checks(config, run, None),
    ]


def _db_cut(config: ChaosConfig, stack: ChaosStack, run: Run) -> list[Check]:
    """Every worker connection to PostgreSQL cut (TCP proxy) for 45 s, then restored."""
    run.wait_fraction(config.fault_at, timeout=config.run_timeout)
    run.fault_start()
    stack.db_cut()
    run.wait(seconds=config.db_cut_seconds)
    stack.db_restore()
    run.fault_end()
    _finish(config, run)
    return _finish_checks(config, run, RECOVERY_AFTER_DB_CUT)


def _carrier_faults(config: ChaosConfig, stack: ChaosStack, run: Run) -> list[Check]:
    """A mix of carrier faults queued mid-run: 503s and 429s with Retry-After, connection
    resets, HTML error pages, and answers slower than the client's read timeout."""
    run.wait_fraction(config.fault_at, timeout=config.run_timeout)
    n = max(2, config.devices // 100)
    timeout_ms = int(float(stack.worker_env().get("BULKCHANGE_HTTP_READ_TIMEOUT", "30")) * 1000)
    faults = [  # (carrier, op, kind, status, retry_after, delay_ms, times, is a write)
        ("pond", "set_sim_status", "status", 503, 1, 0, n, True),
        ("pond", "read_sim_status", "status", 429, 2, 0, n, False),
        ("pond", "set_package_status", "drop", 503, None, 0, n, True),
        ("rev", "create_service", "html", 502, None, 0, n, True),
        ("rev", "find_services", "timeout", 503, None, timeout_ms + 2000, max(1, n // 5), False),
    ]
    run.fault_start()
    with stack.control() as control:
        for carrier, op, kind, status, retry_after, delay_ms, times, _ in faults:
            control.add_fault(
                carrier,
                op,
                kind=kind,
                status=status,
                retry_after=retry_after,
                delay_ms=delay_ms,
                times=times,
            )
    run.allowed_extra_writes = sum(f[6] for f in faults if f[7])

    def faults_used(_: object) -> bool:
        with stack.control() as control:
            return not control._call("GET", "/_sim/faults")["faults"]

    run.wait(until=faults_used, timeout=config.run_timeout)
    run.fault_end()
    _finish(config, run)
    return [
        Check("faults injected", str(sum(f[6] for f in faults)), None),
        *_finish_checks(config, run, None),
    ]


# --- Helpers -----------------------------------------------------------------------------------


def _now() -> object:
    from django.utils import timezone

    return timezone.now()


def _devices_processed_by(run: Run, workers: set[str], since: object) -> int:
    from bulkchanges.models import BulkChangeLog

    return (
        BulkChangeLog.objects.filter(
            bulk_change_id=run.bulk_change.pk, process_by__in=workers, processed_at__gte=since
        )
        .values("device_change_id")
        .distinct()
        .count()
    )


def _retries_pending(stack: ChaosStack, run: Run) -> None:
    """503s with Retry-After for the next few SIM-status writes, so that retries travel through
    SQS while the fault lasts."""
    n = max(2, run.devices // 50)
    with stack.control() as control:
        control.add_fault(
            "pond", "set_sim_status", kind="status", status=503, retry_after=1, times=n
        )
    run.allowed_extra_writes += n


def _probe_consumed(stack: ChaosStack, run: Run, *, timeout: float) -> float | None:
    """Send a message for a device already final (the consumer acknowledges it and does
    nothing) and return the seconds until it has left the queue, i.e. was consumed."""
    from bulkchanges import sqs
    from bulkchanges.models import DeviceChange

    device_change_id = wait_until(
        lambda: (
            DeviceChange.objects.filter(
                bulk_change_id=run.bulk_change.pk, status__in=DeviceChange.TERMINAL
            )
            .values_list("id", flat=True)
            .first()
        ),
        timeout=60,
        message="a final device for the probe",
    )
    sent_at = time.monotonic()
    sqs.send_device_retry(
        bulk_change_id=run.bulk_change.pk,
        device_change_id=device_change_id,
        retry_number=1,
        delay_seconds=0,
        request_id="chaos-probe",
    )
    client = sqs.sqs_client()
    queue_url = stack.queue_urls["PONDOPS_SQS_QUEUE_URL"]

    def consumed(_: object) -> bool:
        attributes = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])
        values = attributes["Attributes"]
        return all(
            values.get(name) == "0"
            for name in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
        )

    if run.wait(until=consumed, timeout=timeout) and consumed(None):
        return time.monotonic() - (run.fault_ended or sent_at)
    return None


def _consumption_check(config: ChaosConfig, consumed: float | None) -> Check:
    return Check(
        f"a message sent after the fault is consumed within {RECOVERY_AFTER_SQS:.0f}s, "
        "no manual step",
        "never" if consumed is None else f"{consumed:.1f}s",
        consumed is not None and (consumed <= RECOVERY_AFTER_SQS or not config.speed),
    )


baseline = scenario("baseline", _baseline)
kill_group = scenario("kill-group", _kill_group)
kill_master = scenario("kill-master", _kill_master)
kill_poller = scenario("kill-poller", _kill_poller)
sqs_down = scenario("sqs-down", _sqs_down)
db_cut = scenario("db-cut", _db_cut)
carrier_faults = scenario("carrier-faults", _carrier_faults)
SCENARIOS: dict[str, Callable[[ChaosConfig], Outcome]] = {
    s.__name__.replace("_", "-"): s
    for s in (baseline, kill_group, kill_master, kill_poller, sqs_down, db_cut, carrier_faults)
}
REDIS_CLUSTERS = {"clusters": 2, "pollers": 2}


def redis_scenario(name: str, config: ChaosConfig) -> Outcome:
    """``redis-baseline`` / ``redis-kill-group``: two qcluster + two poll_sqs on Redis."""
    body = {"redis-baseline": _baseline, "redis-kill-group": _kill_group}[name]
    return scenario(name, body, redis_url=config.redis_url, **REDIS_CLUSTERS)(config)


def needs_postgresql(name: str) -> bool:
    return name == "db-cut"
