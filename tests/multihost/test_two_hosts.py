"""Two hosts share one bulk change, and one of them loses its network mid-run (issue 14 item 6).

Hosts A and B are network namespaces (tests/multihost/netns.py), each running ``qcluster``,
``poll_sqs`` and ``run_reaper`` against the shared PostgreSQL, Redis, SQS and carrier simulator
through a forwarder on its own veth (tests/multihost/stack.py). A 2,000-device POND bulk change
(``PONDOPS_MULTIHOST_DEVICES``) runs under a 50 req/s limit shared by both hosts. Once a quarter
of the devices are final and A has made carrier calls, A's veth goes down: A keeps its
processes, its leases and its half-sent requests, but can reach nothing. B's reaper takes A's
devices back when their leases lapse; then A's link comes back and A rejoins the run.

Asserted: both hosts processed devices (the audit rows' ``process_by`` names the host); A had
devices in flight at the cut and B's reaper took their leases back while A was cut off (A's
claim, cut off inside its transaction, is ended by PostgreSQL's idle-in-transaction timeout,
which PondOps sets); every device ends PROCESSED; every carrier write (POND's SIM and package
status) happened once per device, twice at most and only for devices in flight at the cut; no
sliding second at the carrier held more than the limit (bulkchanges/ratelimit.py promises every
sliding second at or under it) and the carrier sent no 429; A's processes survived the cut and
came back (their heartbeat beats again), then stop cleanly on SIGTERM.

Marker ``multihost``: excluded from the default run (root, PostgreSQL and Redis needed); run it
with ``./dev test tests/multihost -m multihost`` and a PostgreSQL ``DATABASE_URL``.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.harness import POND_WRITES, Run, StackOptions
from tests.conftest import database_url, wait_for
from tests.multihost.netns import SERVICES_NAME, NetnsHost
from tests.multihost.stack import TwoHostStack

# The suite's 300 s per-test timeout is for ordinary tests; this one is bounded by its own waits.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.multihost,
    pytest.mark.timeout(900),
]

DEVICES = int(os.environ.get("PONDOPS_MULTIHOST_DEVICES", "2000"))
RATE = 50  # POND requests/s: the simulator's limit for the account and our credentials'
CUT_AT = 0.25  # fraction of devices final when A's link goes down
RUN_GUARD = 480  # s: a run not final by then has hung (a healthy one takes two to four minutes)
HOST_ENV = {
    # Short leases so that B takes A's devices back within seconds, within the relations the
    # system checks hold every process to (docs/operations/timings.md).
    "BULKCHANGE_LEASE_SECONDS": "6",
    "BULKCHANGE_REAPER_GRACE_SECONDS": "3",
    "BULKCHANGE_RETRY_BASE_SECONDS": "1",
    "BULKCHANGE_TASK_TIMEOUT": "60",
    "BULKCHANGE_TASK_RETRY": "80",
    # A cut-off host's task waits out the outage inside its timeout, then fails (pondops.E011).
    "BULKCHANGE_DB_OUTAGE_WAIT_SECONDS": "30",
    "BULKCHANGE_HTTP_CONNECT_TIMEOUT": "3",
    "BULKCHANGE_HTTP_READ_TIMEOUT": "5",
    "BULKCHANGE_CHUNK_SIZE": "20",
    # A's claim cut off inside its transaction holds row locks; PostgreSQL ends that session
    # after this, so B's claims and reaper are not stuck behind it (pondops/settings.py).
    "PONDOPS_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS": "5",
}


def host_of(process_by: str, hosts: list[NetnsHost]) -> str:
    """``worker:<hostname>/<pid>`` -> the host's name (processes run under its hostname)."""
    name = process_by.removeprefix("worker:").split("/", 1)[0]
    return next((h.name for h in hosts if h.name == name), name)


def devices_by_host(run: Run, hosts: list[NetnsHost], *, after_id: int = 0) -> dict[str, set[int]]:
    """The device changes each host made a carrier call for (an audit row with a request)."""
    from bulkchanges.models import BulkChangeLog

    rows = (
        BulkChangeLog.objects.filter(bulk_change_id=run.bulk_change.pk, id__gt=after_id)
        .exclude(request_text="")
        .values_list("process_by", "device_change_id")
    )
    by_host: dict[str, set[int]] = {h.name: set() for h in hosts}
    for process_by, device_change_id in rows:
        by_host.setdefault(host_of(process_by, hosts), set()).add(device_change_id)
    return by_host


def last_log_id() -> int:
    from bulkchanges.models import BulkChangeLog

    return BulkChangeLog.objects.order_by("-id").values_list("id", flat=True).first() or 0


def processing(run: Run) -> dict[int, str]:
    """device change id -> ICCID of the run's PROCESSING devices."""
    from bulkchanges.models import DeviceChange

    rows = DeviceChange.objects.filter(
        bulk_change_id=run.bulk_change.pk, status=DeviceChange.Status.PROCESSING
    ).values_list("pk", "iccid")
    return dict(rows)


def heartbeat_after(host: NetnsHost, kind: str, moment: float) -> bool:
    """A ``kind`` process on ``host`` beat after ``moment`` (epoch seconds)."""
    from datetime import UTC, datetime

    from bulkchanges.models import ProcessHeartbeat

    return ProcessHeartbeat.objects.filter(
        kind=kind,
        identity__startswith=f"{host.name}/",
        beat_at__gt=datetime.fromtimestamp(moment, tz=UTC),
    ).exists()


def database_state(run: Run | None) -> str:
    """For a failure's message: the unfinished devices and what every session of the test
    database is doing (a host cut off in a transaction shows as "idle in transaction")."""
    from django.db import connection

    from bulkchanges.models import DeviceChange

    lines = []
    if run is not None:
        unfinished = DeviceChange.objects.filter(
            bulk_change_id=run.bulk_change.pk, status__in=DeviceChange.UNFINISHED
        ).values_list("pk", "status", "claimed_until", "attempts")[:20]
        lines += [f"unfinished: {row}" for row in unfinished]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, client_port, state, wait_event_type, wait_event, "
            "now() - state_change, left(query, 120) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        lines += [f"session: {row}" for row in cursor.fetchall()]
    return "\n".join(lines)


@pytest.fixture
def stack(
    two_hosts: list[NetnsHost],
    shared_redis_url: str,
    tmp_path: Path,
    settings: Any,
    device_statuses: None,
) -> Any:
    # This process saves the credentials rows (base_url on the hosts' forwarders' name).
    settings.PONDOPS_CARRIER_EXTRA_ORIGINS = [
        *settings.PONDOPS_CARRIER_EXTRA_ORIGINS,
        f"http://{SERVICES_NAME}:*",
    ]
    options = StackOptions(
        workers=2,
        redis_url=shared_redis_url,
        rate_limit=RATE,
        rev_rate_limit=0,
        concurrency=4,
        latency_ms=20,
        reaper_interval=1,
        env=HOST_ENV,
    )
    with TwoHostStack(
        database_url=database_url(), workdir=tmp_path, options=options, hosts=two_hosts
    ) as running:
        yield running


def test_two_hosts_share_a_bulk_change_and_survive_one_losing_its_network(
    stack: TwoHostStack, two_hosts: list[NetnsHost], record_property: Any
) -> None:
    a = two_hosts[0]
    figures: dict[str, Any] = {"devices": DEVICES}

    def explain(message: str) -> str:
        return f"{message}\nfigures: {figures}\n{database_state(run)}\n{stack.logs()}"

    run = Run(stack, DEVICES)
    # The cut: a quarter final, and A working (it has made carrier calls).
    assert run.wait(
        until=lambda s: (
            s.final >= DEVICES * CUT_AT and bool(devices_by_host(run, two_hosts)[a.name])
        ),
        timeout=RUN_GUARD,
    ), explain("the run never reached the cut")
    a.cut()
    cut_at = time.time()
    run.fault_start()
    cut_log_id = last_log_id()
    # A can write nothing now: what is PROCESSING and was touched by A is A's in flight.
    in_flight = processing(run)
    touched_by_a = devices_by_host(run, two_hosts)[a.name]
    a_in_flight = {pk: iccid for pk, iccid in in_flight.items() if pk in touched_by_a}
    figures.update(in_flight_at_cut=len(in_flight), a_in_flight_at_cut=len(a_in_flight))
    assert a_in_flight, explain("A had no device in flight at the cut")

    # A's leases lapse (A cannot renew them) and the reaper still in touch, B's, takes the
    # devices back: none of them still carries the claim token A held at the cut.
    from bulkchanges.models import DeviceChange

    def a_leases_taken_back() -> bool:
        run.sample()
        return not DeviceChange.objects.filter(
            pk__in=list(a_in_flight), claim_token__in=list(a_claims.values())
        ).exists()

    a_claims = dict(
        DeviceChange.objects.filter(pk__in=list(a_in_flight)).values_list("pk", "claim_token")
    )
    try:
        wait_for(a_leases_taken_back, timeout=90, interval=0.5, message="B to take A's leases")
    except AssertionError as error:
        raise AssertionError(explain(str(error))) from None
    figures["a_leases_taken_back_after_s"] = round(time.time() - cut_at, 1)
    a.restore()
    restored_at = time.time()
    run.fault_end()

    assert run.wait_final(timeout=RUN_GUARD), explain("the bulk change did not finish")
    result = run.figures()
    by_host = devices_by_host(run, two_hosts)
    figures.update(
        elapsed_s=round(result.elapsed or 0, 1),
        devices_by_host={name: len(ids) for name, ids in by_host.items()},
        calls_by_process=result.rows_by_worker,
        duplicate_writes=result.duplicate_writes,
        status=result.device_statuses,
    )

    # Both hosts processed devices, and every device ended PROCESSED.
    assert all(by_host[h.name] for h in two_hosts), explain("a host processed no device")
    assert result.device_statuses == {DeviceChange.Status.PROCESSED: DEVICES}, explain(
        "not every device PROCESSED"
    )

    # Each carrier write once per device; twice at most, only for devices in flight at the cut.
    counters = stack.carrier_counters()
    writes = {op: Counter(counters["calls"]["pond"].get(op, {})) for op in POND_WRITES}
    mine = set(run.iccids)
    repeated = {
        iccid
        for counts in writes.values()
        for iccid, n in counts.items()
        if n > 1 and iccid in mine
    }
    figures["devices_written_twice"] = len(repeated)
    for op, counts in writes.items():
        missing = mine - set(counts)
        assert not missing, explain(f"{len(missing)} devices never got {op}")
        assert max(counts[i] for i in mine) <= 2, explain(f"a device got {op} three times")
    unexplained = repeated - set(in_flight.values())
    assert not unexplained, explain(f"written twice, not in flight at the cut: {unexplained}")

    # The shared limit held at the carrier across both hosts: no sliding second over it.
    pond = counters["stats"]["pond"]
    figures.update(max_requests_in_1s=pond["max_requests_in_1s"], rate_limited=pond["rate_limited"])
    assert pond["rate_limited"] == 0, explain("the carrier answered 429")
    assert pond["max_requests_in_1s"] <= RATE, explain("a sliding second held more than the limit")

    # A survived the cut: every process alive, its poller beating again, and A back at work
    # after its link returned (carrier calls recorded after the restore).
    a_procs = stack.on_host(a)
    assert all(p.process.poll() is None for p in a_procs), explain("a process of A exited")
    wait_for(
        lambda: heartbeat_after(a, "poll_sqs", restored_at),
        timeout=90,
        message="A's poll_sqs heartbeat after the restore",
    )
    figures["a_calls_after_restore"] = len(
        devices_by_host(run, two_hosts, after_id=cut_log_id)[a.name]
    )
    # Then A stops cleanly on SIGTERM, as a supervisor would stop it.
    exits: dict[str, int | None] = {}
    for proc in a_procs:
        proc.process.terminate()
    for proc in a_procs:
        try:
            exits[proc.name] = proc.process.wait(timeout=45)
        except subprocess.TimeoutExpired:
            exits[proc.name] = None
    figures["a_exit_codes"] = exits
    record_property("figures", figures)
    print(f"multihost figures: {figures}")
    assert all(code == 0 for code in exits.values()), explain(f"A did not stop cleanly: {exits}")
