"""PondOps pipeline benchmark: a script that prints figures (performance targets live here, never
in timed tests). See tests/bench/README.md for what each figure means and how it is measured.

    .venv/bin/python tests/bench/bench_pipeline.py [--devices 2000] [--rate-limit 50]
        [--rev-rate-limit 70] [--latency-ms 20] [--workers 2] [--timeout 900]
        [--query-sample 200,5000] [--skip-throughput] [--skip-queries]
        [--carriers pond,thingspace,jasper,telegence,teal]

1. Throughput through the real pipeline: a fresh database (``pondops_bench`` on the PostgreSQL
   server of ``DATABASE_URL`` when set, else a temporary SQLite file), moto's SQS server, the
   carrier simulators (a ``python -m integrations.simulators`` subprocess), ``manage.py
   qcluster`` and ``manage.py poll_sqs`` subprocesses; for each carrier of ``--carriers`` in
   turn, one bulk change of N devices created in this process through the services every entry
   point uses; wait until it is final. The stack (database, moto, simulators, qcluster,
   poll_sqs) is shared by the carriers' runs.
2. DB queries per device (POND only): the same services run in this process (fan-out, then
   every ``process_devices`` chunk drained from an in-process list) under
   ``CaptureQueriesContext``.
3. A markdown summary with PASS/FAIL against the issue's targets, one row block per carrier.

Everything binds to 127.0.0.1; every wait is bounded (--timeout for the long ones); every
subprocess is stopped (and the bench database dropped) at the end, on errors and on Ctrl-C.
Exit status: 0 every target met, 1 a target missed, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Each run has its own database (two runs on one machine must not drop each other's).
BENCH_DB_PREFIX = "pondops_bench"
LOOPBACK = "127.0.0.1"
POND_KEY = "bench-pond-key-4c1d7e"
REV_USER = "bench"
REV_PASSWORD = "bench-rev-pw-9e2a31"
REV_CUSTOMER = 42
SEED_BATCH = 1000
# The bench tenants' approval threshold: thousands of devices run at once, since four-eyes
# approval (docs/operator-features.md) is not what the bench measures.
NO_APPROVAL_NEEDED = 1_000_000_000
SAMPLE_SECONDS = 0.5
STEADY = (0.10, 0.90)  # the steady part of a run: from 10 % to 90 % of devices finished
TARGET_RATIO = 0.9
TARGET_QUERY_SPREAD = 0.10
# A POND device makes 3 POND and 4 Rev.io requests, so Rev.io's own limiter must allow 4/3 of
# POND's rate (plus a margin) for the POND limiter to be the one the run measures; with equal
# limits Rev.io caps POND at 0.75 of its limit (--rev-rate-limit 50 shows it).
REV_RATE_FACTOR = 1.4
TX_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
CARRIERS = ("pond", "thingspace", "jasper", "telegence", "teal")  # simulator names, run order
# How long the asynchronous carriers (ThingSpace, Teal) take to complete a change in the
# simulator: short, so the confirm step is exercised without dominating the run.
ASYNC_COMPLETION_MS = 200


# --- Small helpers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, message: str, interval: float = 0.2
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {message}")
        time.sleep(interval)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def iccids(count: int, *, series: int) -> list[str]:
    """``count`` 20-digit ICCIDs; each series (run) has its own range."""
    return [f"89148{series:02d}{n:013d}" for n in range(count)]


def worker_environment(
    *,
    database_url: str,
    moto_url: str,
    queue_urls: dict[str, str],
    workers: int,
    redis_url: str = "",
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a benchmark's or chaos run's ``qcluster`` / ``poll_sqs`` /
    ``run_reaper`` subprocesses: this test's database, queue and worker count; Redis only when
    given."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pondops.settings",
        "DATABASE_URL": database_url,
        "AWS_ENDPOINT_URL_SQS": moto_url,
        "PONDOPS_SQS_QUEUE_URL": queue_urls["PONDOPS_SQS_QUEUE_URL"],
        "PONDOPS_SQS_DLQ_URL": queue_urls["PONDOPS_SQS_DLQ_URL"],
        "BULKCHANGE_SQS_WAIT_SECONDS": "2",  # only so that poll_sqs stops promptly
        "PONDOPS_Q_WORKERS": str(workers),
        "PONDOPS_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        "DATABASE_CONN_MAX_AGE": "60",  # a task reuses its process's connection
        # The simulators listen on loopback: an allowed extra origin of the workers' calls
        # (run outside pytest, nothing else sets it).
        "PONDOPS_CARRIER_EXTRA_ORIGINS": os.environ.get(
            "PONDOPS_CARRIER_EXTRA_ORIGINS", "http://127.0.0.1:*"
        ),
        **(extra or {}),
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    else:
        env.pop("REDIS_URL", None)
    return env


class BenchError(RuntimeError):
    """The benchmark could not run or finish (a timeout, a process that died)."""


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


# --- CPU accounting (read-only /proc) --------------------------------------------------------


@dataclass
class CpuSnapshot:
    at: float
    by_pid: dict[int, tuple[str, float]]  # pid -> (group, CPU seconds so far)
    machine_busy: float
    machine_total: float

    def seconds_since(self, before: CpuSnapshot) -> dict[str, float]:
        """CPU seconds per group between the two snapshots. A process that exited in between
        is counted through its parent (``cutime``/``cstime``: the postmaster's for PostgreSQL
        backends, a session leader's for its workers) once the parent has reaped it."""
        seconds: dict[str, float] = {}
        for pid, (group, cpu) in self.by_pid.items():
            earlier = before.by_pid.get(pid, (group, 0.0))[1]
            seconds[group] = seconds.get(group, 0.0) + max(0.0, cpu - earlier)
        return dict(sorted(seconds.items()))

    def cores_since(self, before: CpuSnapshot) -> dict[str, float]:
        """Cores used per group between the two snapshots."""
        span = self.at - before.at
        return {group: cpu / span for group, cpu in self.seconds_since(before).items()}


def proc_stats() -> Iterator[tuple[int, str, list[str]]]:
    """Every live process's ``/proc/<pid>/stat``: pid, command name, and the fields after the
    name (state first). A process gone while being read is skipped."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        yield (
            int(entry),
            stat[stat.index("(") + 1 : stat.rindex(")")],
            stat[stat.rindex(")") + 2 :].split(),
        )


def cpu_snapshot(leaders: dict[int, str]) -> CpuSnapshot:
    """CPU seconds of our subprocess trees (grouped by the session each was started in), this
    process, PostgreSQL (every live process, plus the backends that exited, through the
    postmaster's children times) and Redis; plus the machine's busy/total jiffies."""
    tick = os.sysconf("SC_CLK_TCK")
    by_pid: dict[int, tuple[str, float]] = {}
    me = os.getpid()
    stats = list(proc_stats())
    postgres = {pid for pid, comm, _ in stats if comm.startswith("postgres")}
    for pid, comm, rest in stats:
        session, cpu = int(rest[3]), (int(rest[11]) + int(rest[12])) / tick
        reaped = (int(rest[13]) + int(rest[14])) / tick  # children waited for
        if session in leaders:
            group = leaders[session]
            if pid == session:
                cpu += reaped  # a leader's exited children (qcluster's recycled workers)
        elif pid == me:
            group = "bench process (sampler)"
        elif pid in postgres:
            group = "postgres (all databases)"
            if int(rest[1]) not in postgres:
                cpu += reaped  # the postmaster: backends of closed connections
        elif comm.startswith("redis-server"):
            group = "redis"
        else:
            continue
        by_pid[pid] = (group, cpu)
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    total = sum(fields[:8])
    idle = fields[3] + fields[4]
    return CpuSnapshot(time.monotonic(), by_pid, (total - idle) / tick, total / tick)


# Issue 16's CPU budgets per device, all pipeline processes included (POND with its Rev.io).
CPU_TARGET_MS = {"pond": 15.0, "thingspace": 10.0, "teal": 10.0, "jasper": 5.0, "telegence": 5.0}

# Processes whose CPU is the pipeline's (not the load generators': simulators, moto, sampler).
PIPELINE_GROUPS = ("qcluster", "poll_sqs", "postgres", "redis")


def pipeline_cpu_ms(seconds: dict[str, float], devices: int) -> float:
    """CPU milliseconds per device of the pipeline's processes."""
    ours = sum(cpu for group, cpu in seconds.items() if group.startswith(PIPELINE_GROUPS))
    return ours * 1000 / devices if devices else 0.0


# --- Results ---------------------------------------------------------------------------------


@dataclass
class Throughput:
    devices: int
    carrier: str  # the simulator's name: pond, thingspace, jasper, telegence, teal
    label: str  # for people: POND, Verizon ThingSpace, ...
    limit: float  # the carrier's req/s, in our credentials and in the simulator
    rev_service: bool = False  # POND only: a Rev.io service per device
    note: str = ""  # e.g. the asynchronous carriers' completion delay
    final_status: str = "(not final)"
    device_counts: dict[str, int] = field(default_factory=dict)
    elapsed: float | None = None
    devices_per_s: float | None = None
    p50: float | None = None
    p95: float | None = None
    calls: dict[str, int] = field(default_factory=dict)  # the carrier's simulator stats
    rev: dict[str, int] = field(default_factory=dict)
    steady: float | None = None  # the carrier's req/s between 10 % and 90 % of devices
    rev_steady: float | None = None
    steady_window: tuple[float, float] | None = None
    cpu: dict[str, float] = field(default_factory=dict)  # cores by process group
    cpu_ms_per_device: float | None = None  # qcluster + poll_sqs + PostgreSQL + Redis
    machine_busy: float | None = None


@dataclass
class QuerySample:
    devices: int
    status: str
    create_queries: int
    fan_out_queries: int
    processing_queries: int
    chunks: int
    enqueues: int
    retry_sends: int
    seconds: float
    by_kind: Counter[str]

    @property
    def per_device(self) -> float:
        return (self.fan_out_queries + self.processing_queries) / self.devices

    @property
    def control_per_device(self) -> float:
        """Transaction-control entries (Django logs BEGIN/COMMIT/… too) per device."""
        return sum(self.by_kind[kind] for kind in TX_CONTROL) / self.devices


# --- The benchmark ---------------------------------------------------------------------------


class Bench:
    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.workdir = Path(tempfile.mkdtemp(prefix="pondops-bench-"))
        self.admin_conninfo: dict[str, Any] | None = None  # set when we created a PG database
        self.bench_db = ""  # that database's name, unique to this run
        self.database_url = ""
        self.engine = ""
        self.running: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self.moto_url = ""
        self.simulator_url = ""
        self.queue_urls: dict[str, str] = {}
        self.throughputs: list[Throughput] = []
        self.samples: list[QuerySample] = []
        self.code = code_version()  # at the start: other work may commit while this runs

    # -- set-up ---------------------------------------------------------------------------

    def prepare_database(self) -> None:
        url = os.environ.get("DATABASE_URL", "")
        if url and not url.startswith("sqlite"):
            import dj_database_url
            import psycopg

            conf = dj_database_url.parse(url)
            if "postgres" not in conf["ENGINE"]:
                raise BenchError(f"DATABASE_URL must be PostgreSQL or SQLite, not {conf['ENGINE']}")
            self.bench_db = f"{BENCH_DB_PREFIX}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            named = conf["NAME"] or "postgres"
            maintenance = "postgres" if named.startswith(BENCH_DB_PREFIX) else named
            self.admin_conninfo = {
                "host": conf.get("HOST") or LOOPBACK,
                "port": conf.get("PORT") or 5432,
                "user": conf.get("USER") or None,
                "password": conf.get("PASSWORD") or None,
                "dbname": maintenance,
            }
            with psycopg.connect(**self.admin_conninfo, autocommit=True) as admin:
                admin.execute(f"CREATE DATABASE {self.bench_db}")
            self.database_url = urlsplit(url)._replace(path=f"/{self.bench_db}").geturl()
            self.engine = "PostgreSQL"
        else:
            self.database_url = f"sqlite:///{self.workdir / 'bench.sqlite3'}"
            self.engine = "SQLite (WAL, IMMEDIATE)"
        os.environ["DATABASE_URL"] = self.database_url

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start a subprocess in its own session (so Ctrl-C reaches only us, and a qcluster's
        worker processes can be stopped with it); output to a log file."""
        log = self.workdir / f"{name}.log"
        process = subprocess.Popen(
            argv,
            env=env,
            cwd=ROOT,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.running.append((name, process, log))
        return process

    def check_alive(self) -> None:
        for name, process, log in self.running:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise BenchError(f"{name} exited with {process.returncode}:\n{tail}")

    def start_servers(self) -> None:
        import requests

        port = free_port()
        self.moto_url = f"http://{LOOPBACK}:{port}"
        self.start(
            "moto",
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
            dict(os.environ),
        )
        port = free_port()
        self.simulator_url = f"http://{LOOPBACK}:{port}"
        self.start(
            "simulators",
            [
                sys.executable,
                "-m",
                "integrations.simulators",
                "--host",
                LOOPBACK,
                "--port",
                str(port),
            ],
            dict(os.environ),
        )

        def up(url: str) -> bool:
            self.check_alive()
            try:
                return requests.get(url, timeout=1).status_code < 500
            except requests.RequestException:
                return False

        wait_for(lambda: up(self.moto_url + "/moto-api/"), timeout=60, message="moto server")
        wait_for(lambda: up(self.simulator_url + "/_sim/stats"), timeout=60, message="simulators")
        os.environ["AWS_ENDPOINT_URL_SQS"] = self.moto_url

    def setup_django(self) -> None:
        os.environ["DJANGO_SETTINGS_MODULE"] = "pondops.settings"
        os.environ.setdefault("PONDOPS_LOG_LEVEL", "WARNING")  # this process only
        # The query run calls the loopback simulators from this process (the workers get the
        # same from worker_environment).
        os.environ.setdefault("PONDOPS_CARRIER_EXTRA_ORIGINS", "http://127.0.0.1:*")
        os.environ.pop("REDIS_URL", None)  # the database limiter and the ORM broker
        if self.options.chunk_size:
            os.environ["BULKCHANGE_CHUNK_SIZE"] = str(self.options.chunk_size)
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        call_command("createcachetable", verbosity=0)
        from io import StringIO

        out = StringIO()
        name = f"pondops-bench-{uuid.uuid4().hex[:8]}"
        call_command("create_queues", "--name", name, stdout=out)
        self.queue_urls = dict(line.split("=", 1) for line in out.getvalue().split() if "=" in line)
        settings.PONDOPS_SQS_QUEUE_URL = self.queue_urls["PONDOPS_SQS_QUEUE_URL"]
        settings.PONDOPS_SQS_DLQ_URL = self.queue_urls["PONDOPS_SQS_DLQ_URL"]

    def worker_env(self) -> dict[str, str]:
        return worker_environment(
            database_url=self.database_url,
            moto_url=self.moto_url,
            queue_urls=self.queue_urls,
            workers=self.options.workers,
        )

    # -- world ----------------------------------------------------------------------------

    def world(
        self, *, name: str, account: str, rate: float, rev_rate: float, concurrency: int
    ) -> tuple[Any, Any, Any]:
        """Simulator accounts and a tenant with POND + Rev.io credentials (our limits equal
        the simulator's)."""
        from bulkchanges.models import IntegrationAuthentication, Tenant
        from integrations.simulators.control import SimulatorControl

        control = SimulatorControl(self.simulator_url)
        control.add_pond_account(distributor_id=account, api_key=POND_KEY, rate_limit=rate or None)
        control.add_rev_account(
            client_code=account,
            username=REV_USER,
            password=REV_PASSWORD,
            calls_per_minute=rev_rate * 60 or None,
        )
        control.add_rev_customers(client_code=account, customer_ids=[REV_CUSTOMER])
        control.close()
        tenant = Tenant.objects.create(name=name, approval_threshold=NO_APPROVAL_NEEDED)
        pond = IntegrationAuthentication.objects.create(
            tenant=tenant,
            integration="POND",
            base_url=self.simulator_url + "/pond/ds/u/distributorPPUService/v1",
            account=account,
            secret=POND_KEY,
            rate_limit=rate,
            max_concurrency=concurrency,
        )
        rev = IntegrationAuthentication.objects.create(
            tenant=tenant,
            integration="REV",
            base_url=self.simulator_url + "/rev",
            account=account,
            username=REV_USER,
            secret=REV_PASSWORD,
            rate_limit=rev_rate,
            max_concurrency=concurrency,
        )
        return tenant, pond, rev

    def seed(self, account: str, numbers: list[str]) -> None:
        from integrations.simulators.control import SimulatorControl

        with SimulatorControl(self.simulator_url, timeout=60) as control:
            for start in range(0, len(numbers), SEED_BATCH):
                control.seed_pond_sims(
                    distributor_id=account,
                    sims=[
                        {"iccid": n, "services": "ENABLED"}
                        for n in numbers[start : start + SEED_BATCH]
                    ],
                )

    def carrier_world(self, carrier: Any, *, rate: float, concurrency: int) -> tuple[Any, Any]:
        """A tenant with one credentials row for ``carrier`` (a ``DemoCarrier``: the demo's
        account, username and client id) and its simulator account, made by the demo's own
        ``configure`` (our limit equals the simulator's; Teal's is per minute, rate x 60)."""
        from bulkchanges.models import IntegrationAuthentication, Tenant
        from integrations.simulators.control import SimulatorControl

        tenant = Tenant.objects.create(
            name=f"Bench throughput {carrier.integration.label}",
            approval_threshold=NO_APPROVAL_NEEDED,
        )
        credentials = IntegrationAuthentication.objects.create(
            tenant=tenant,
            integration=carrier.integration.value,
            base_url=self.simulator_url + carrier.prefix,
            account=carrier.account,
            username=carrier.username,
            client_id=carrier.client_id,
            secret=f"bench-{carrier.integration.value.lower()}-{uuid.uuid4().hex[:12]}",
            secret_2=f"bench-2-{uuid.uuid4().hex[:12]}" if carrier.secret_count > 1 else "",
            rate_limit=rate,
            max_concurrency=concurrency,
        )
        with SimulatorControl(self.simulator_url) as control:
            carrier.configure(control, credentials)
        return tenant, credentials

    def seed_carrier(self, carrier: Any, credentials: Any, devices: list[Any]) -> None:
        from integrations.simulators.control import SimulatorControl

        with SimulatorControl(self.simulator_url, timeout=60) as control:
            for start in range(0, len(devices), SEED_BATCH):
                carrier.seed(control, credentials, devices[start : start + SEED_BATCH])

    @staticmethod
    def create_carrier_bulk_change(
        tenant: Any, carrier: Any, credentials: Any, devices: list[Any]
    ) -> Any:
        """The carrier's demo target status for every device, current status ignored."""
        from bulkchanges.services import bulk_change_create, status_update_request_validate

        validated = status_update_request_validate(
            tenant=tenant,
            integration=carrier.integration.value,
            update_status=carrier.demo_target,
            credentials_id=credentials.pk,
            is_ignore_current_status=True,
        )
        bulk_change, _ = bulk_change_create(
            tenant=tenant, created_by="bench", validated=validated, devices=devices
        )
        return bulk_change

    @staticmethod
    def create_bulk_change(tenant: Any, rev: Any, numbers: list[str]) -> Any:
        from bulkchanges.services import bulk_change_create, status_update_request_validate
        from bulkchanges.types import DeviceRef
        from integrations.rev_request import RevProduct, RevServiceRequest

        validated = status_update_request_validate(
            tenant=tenant,
            integration="POND",
            update_status="SUSPENDED",
            is_ignore_current_status=True,
            rev_service=RevServiceRequest(
                customer_id=REV_CUSTOMER,
                service_type_id=7,
                integration_authentication_id=rev.pk,
                products=(RevProduct(product_id=55, rate=Decimal("4.50")),),
            ),
        )
        bulk_change, _ = bulk_change_create(
            tenant=tenant,
            created_by="bench",
            validated=validated,
            devices=[DeviceRef(iccid=n) for n in numbers],
        )
        return bulk_change

    # -- 1. throughput --------------------------------------------------------------------

    def run_throughput(self) -> list[Throughput]:
        """One run per carrier of ``--carriers``, in turn, on the same stack: the workers are
        started once, before the first run, and stopped after the last."""
        from bulkchanges.services.demo import DEMO_CARRIERS
        from integrations.simulators.control import SimulatorControl

        options = self.options
        by_name = {carrier.integration.value.lower(): carrier for carrier in DEMO_CARRIERS}
        with SimulatorControl(self.simulator_url) as control:
            control.reset()
            control.config(latency_ms=options.latency_ms)
        print(
            f"[throughput] carriers {', '.join(options.carriers)}; starting qcluster "
            f"({options.workers} workers) and poll_sqs",
            flush=True,
        )
        env = self.worker_env()
        manage = [sys.executable, str(ROOT / "manage.py")]
        qcluster = self.start("qcluster", [*manage, "qcluster"], env)
        poller = self.start("poll_sqs", [*manage, "poll_sqs"], env)
        self.wait_ready(poller)
        leaders = {qcluster.pid: "qcluster (all processes)", poller.pid: "poll_sqs"}
        leaders.update(
            {p.pid: name for name, p, _ in self.running if name in ("moto", "simulators")}
        )
        for name in options.carriers:
            result = self.run_carrier(by_name[name], leaders)
            self.throughputs.append(result)
            self.print_throughput(result)
        self.stop_workers()
        return self.throughputs

    def run_carrier(self, carrier: Any, leaders: dict[int, str]) -> Throughput:
        """One bulk change of N devices for ``carrier``; sampled until it is final."""
        from bulkchanges.models import BulkChange, DeviceChange, IntegrationAuthentication
        from bulkchanges.selectors import device_status_counts
        from bulkchanges.types import DeviceRef
        from integrations.simulators.control import SimulatorControl

        options = self.options
        n = options.devices
        name = carrier.integration.value.lower()
        result = Throughput(
            devices=n,
            carrier=name,
            label=str(carrier.integration.label),
            limit=options.rate_limit,
            rev_service=name == "pond",
        )
        control = SimulatorControl(self.simulator_url)
        if name == "pond":
            # As before this option existed: our own account names, a Rev.io service each.
            tenant, _pond, rev = self.world(
                name="Bench throughput",
                account="BENCH",
                rate=options.rate_limit,
                rev_rate=options.rev_rate_limit,
                concurrency=options.concurrency,
            )
            numbers = iccids(n, series=1)
            self.seed("BENCH", numbers)
        else:
            tenant, credentials = self.carrier_world(
                carrier, rate=options.rate_limit, concurrency=options.concurrency
            )
            # The demo's configure sets the demo's (long) completion delay: shorten it.
            if name == "thingspace":
                control.set_thingspace_completion_delay(ASYNC_COMPLETION_MS)
                result.note = f"simulator completes each change after {ASYNC_COMPLETION_MS} ms"
            elif name == "teal":
                # Teal needs a callbackUrl on every call; the bench runs no web server, so the
                # row's own callback URL stands in (as an account's SQS queue would) and the
                # simulator sends no callbacks: polling decides, the fallback path.
                IntegrationAuthentication.objects.filter(pk=credentials.pk).update(
                    own_callback_url=f"http://{LOOPBACK}:9/pondops-bench-callbacks/"
                )
                control.configure_teal(
                    completion_seconds=ASYNC_COMPLETION_MS / 1000, callbacks=False
                )
                result.note = (
                    f"simulator completes each operation after {ASYNC_COMPLETION_MS} ms "
                    f"(no callbacks: polled); its limit is {options.rate_limit * 60:g} "
                    "calls/minute"
                )
            devices: list[DeviceRef] = carrier.devices(n)
            self.seed_carrier(carrier, credentials, devices)
        before_stats = control.stats()
        print(f"[{name}] seeded {n} devices", flush=True)

        before = cpu_snapshot(leaders)
        if name == "pond":
            bulk_change = self.create_bulk_change(tenant, rev, numbers)
        else:
            bulk_change = self.create_carrier_bulk_change(tenant, carrier, credentials, devices)
        queued_at = bulk_change.queued_at
        deadline = time.monotonic() + options.timeout
        print(f"[{name}] bulk change {bulk_change.pk} queued with {n} devices", flush=True)

        def requests_of(stats: dict[str, dict[str, int]], sim: str) -> int:
            return stats.get(sim, {}).get("requests", 0) - before_stats.get(sim, {}).get(
                "requests", 0
            )

        rows: list[tuple[float, int, int, int]] = []  # (monotonic, finished, carrier, rev)
        last_print = 0.0
        while True:
            self.check_alive()
            stats = control.stats()
            finished = DeviceChange.objects.filter(bulk_change=bulk_change, is_processed=True)
            done = finished.count()
            rows.append(
                (time.monotonic(), done, requests_of(stats, name), requests_of(stats, "rev"))
            )
            status = BulkChange.objects.filter(pk=bulk_change.pk).values_list("status", flat=True)
            if status.get() in BulkChange.TERMINAL:
                break
            if time.monotonic() - last_print >= 10:
                last_print = time.monotonic()
                rev_text = f", Rev requests {rows[-1][3]}" if result.rev_service else ""
                print(
                    f"[{name}]   {done}/{n} devices finished; {result.label} requests "
                    f"{rows[-1][2]}{rev_text}",
                    flush=True,
                )
            if time.monotonic() > deadline:
                print(f"[{name}] TIMEOUT after {options.timeout}s: {done}/{n} finished")
                break
            time.sleep(SAMPLE_SECONDS)
        after = cpu_snapshot(leaders)

        bulk_change.refresh_from_db()
        stats = control.stats()
        control.close()
        result.final_status = bulk_change.status
        result.device_counts = {
            k: v for k, v in device_status_counts(bulk_change_id=bulk_change.pk).items() if v
        }
        # The simulator's counters are for its whole life (reset once, before the first
        # carrier); each carrier has its own, and Rev.io is used by POND only. The request
        # counts are this run's; 429s and the busiest second are the carrier's (no other
        # run used it).
        result.calls = {**stats.get(name, {}), "requests": requests_of(stats, name)}
        result.rev = {**stats.get("rev", {}), "requests": requests_of(stats, "rev")}
        if bulk_change.queued_at != queued_at:
            print(f"[{name}] note: the reaper re-queued the bulk change during the run")
        if bulk_change.processed_at is not None:
            result.elapsed = (bulk_change.processed_at - queued_at).total_seconds()
            result.devices_per_s = n / result.elapsed
        result.p50, result.p95 = self.device_times(bulk_change.pk)
        result.steady_window, result.steady, result.rev_steady = steady_rates(rows, n)
        result.cpu = after.cores_since(before)
        result.cpu_ms_per_device = pipeline_cpu_ms(after.seconds_since(before), n)
        total = after.machine_total - before.machine_total
        result.machine_busy = (after.machine_busy - before.machine_busy) / total if total else None
        return result

    def wait_ready(self, poller: subprocess.Popen[bytes]) -> None:
        """poll_sqs has announced its queue and the cluster has run a task end to end."""
        from django_q.tasks import async_task, result

        log = next(log for name, p, log in self.running if p is poller)

        def polling() -> bool:
            self.check_alive()
            return "poll_sqs: polling" in log.read_text(errors="replace")

        wait_for(polling, timeout=60, message="poll_sqs")
        task_id = async_task("math.floor", 1.5, task_name=f"bench-warm-up-{uuid.uuid4().hex[:8]}")

        def warmed_up() -> bool:
            self.check_alive()
            return bool(result(task_id) == 1)

        wait_for(
            warmed_up,
            timeout=90,
            message="qcluster to run a warm-up task",
            interval=0.5,
        )

    @staticmethod
    def device_times(bulk_change_id: int) -> tuple[float | None, float | None]:
        """Per device: seconds from its first audit row to its outcome row."""
        from django.db.models import Min

        from bulkchanges.models import BulkChangeLog
        from bulkchanges.services.logs import DEVICE_OUTCOME

        rows = BulkChangeLog.objects.filter(
            bulk_change_id=bulk_change_id, device_change__isnull=False
        ).order_by()
        first = dict(
            rows.values("device_change_id")
            .annotate(first=Min("processed_at"))
            .values_list("device_change_id", "first")
        )
        outcome = dict(
            rows.filter(log_entry_description=DEVICE_OUTCOME).values_list(
                "device_change_id", "processed_at"
            )
        )
        spans = [(outcome[pk] - first[pk]).total_seconds() for pk in outcome if pk in first]
        if not spans:
            return None, None
        return percentile(spans, 0.50), percentile(spans, 0.95)

    def stop_workers(self) -> None:
        for name in ("poll_sqs", "qcluster"):
            for running_name, process, _ in self.running:
                if running_name == name:
                    stop_process(process, timeout=45)

    def print_throughput(self, r: Throughput) -> None:
        o = self.options
        print()
        print(f"== Throughput: {r.label} (real pipeline) ==")
        if r.note:
            print(f"note                    {r.note}")
        print(f"final status            {r.final_status}  devices {r.device_counts}")
        if r.elapsed is not None and r.devices_per_s is not None:
            print(
                f"devices/s               {r.devices_per_s:.2f}  "
                f"({r.devices} devices in {r.elapsed:.1f}s, queued_at -> processed_at)"
            )
        if r.p50 is not None and r.p95 is not None:
            print(
                f"per-device p50 / p95    {r.p50 * 1000:.0f} ms / {r.p95 * 1000:.0f} ms  "
                "(first audit row -> outcome row)"
            )
        carriers = [(r.carrier, r.calls, r.limit, r.steady)]
        if r.rev_service:
            carriers.append(("rev", r.rev, o.rev_rate_limit, r.rev_steady))
        for label, stats, limit, steady in carriers:
            per_device = stats.get("requests", 0) / r.devices
            ratio = f"{steady / limit:.3f}" if steady is not None and limit else "n/a"
            steady_text = f"{steady:.2f}" if steady is not None else "n/a"
            print(
                f"{label:<10} requests     {stats.get('requests', 0)} "
                f"({per_device:.2f}/device); steady {steady_text} req/s vs limit {limit:g} "
                f"-> ratio {ratio}; 429s {stats.get('rate_limited', 0)}; "
                f"max in any 1 s {stats.get('max_requests_in_1s', 0)}"
            )
        if r.steady_window:
            print(
                f"steady window           {r.steady_window[0]:.1f}s .. {r.steady_window[1]:.1f}s "
                f"after queueing ({STEADY[0]:.0%}..{STEADY[1]:.0%} of devices finished)"
            )
        if r.machine_busy is not None:
            cores = os.cpu_count() or 1
            ours = sum(r.cpu.values())
            print(
                f"machine CPU busy        {r.machine_busy:.0%} of {cores} cores "
                f"({r.machine_busy * cores:.2f} cores; {ours:.2f} in the processes listed below, "
                f"{max(0.0, r.machine_busy * cores - ours):.2f} elsewhere: other load, or "
                "processes that exited)"
            )
        print("CPU (cores) by process  " + ", ".join(f"{g} {v:.2f}" for g, v in r.cpu.items()))
        if r.cpu_ms_per_device is not None:
            print(
                f"CPU per device          {r.cpu_ms_per_device:.1f} ms "
                "(qcluster + poll_sqs + PostgreSQL + Redis; all of each, idle polling included)"
            )
        ceiling = pond_ceiling(r, o)
        if r.rev_service and ceiling is not None and ceiling < TARGET_RATIO * o.rate_limit:
            print(
                f"note: at {r.rev.get('requests', 0) / r.devices:.2f} Rev.io and "
                f"{r.calls.get('requests', 0) / r.devices:.2f} POND requests per device, the "
                f"Rev.io limit of {o.rev_rate_limit:g} req/s caps POND at {ceiling:.1f} req/s "
                f"({ceiling / o.rate_limit:.2f} of its limit): Rev.io is the binding limiter"
            )
        print(flush=True)

    # -- 2. queries per device ------------------------------------------------------------

    def run_queries(self) -> list[QuerySample]:
        from integrations.simulators.control import SimulatorControl

        with SimulatorControl(self.simulator_url) as control:
            control.config(latency_ms=0)
        tenant, _pond, rev = self.world(
            name="Bench query counts", account="BENCHQ", rate=0, rev_rate=0, concurrency=1
        )
        for series, size in enumerate(self.options.query_sample, start=2):
            numbers = iccids(size, series=series)
            self.seed("BENCHQ", numbers)
            sample = self.query_sample(tenant, rev, numbers)
            self.samples.append(sample)
            print(
                f"[queries] {size} devices: {sample.per_device:.2f} queries/device "
                f"({sample.seconds:.1f}s, {sample.seconds / size * 1000:.1f} ms/device, "
                f"status {sample.status})",
                flush=True,
            )
        self.print_queries()
        return self.samples

    def query_sample(self, tenant: Any, rev: Any, numbers: list[str]) -> QuerySample:
        from bulkchanges.models import BulkChange, BulkChangeLog
        from bulkchanges.services import logs
        from bulkchanges.services.processing import bulk_change_fan_out, device_changes_process

        with capture_queries() as created:
            bulk_change = self.create_bulk_change(tenant, rev, numbers)
        pending: deque[list[int]] = deque()
        enqueues = 0

        def enqueue(ids: list[int]) -> None:
            nonlocal enqueues
            enqueues += 1
            pending.append(list(ids))

        process_by = logs.process_by_worker()
        by_kind: Counter[str] = Counter()
        started = time.perf_counter()
        with capture_queries() as fan_out:
            bulk_change_fan_out(
                bulk_change_id=bulk_change.pk, enqueue=enqueue, process_by=process_by
            )
        processing = chunks = 0
        limit = 10 * len(numbers) + 10  # bounded: every device is handed out at most a few times
        deadline = time.monotonic() + self.options.query_timeout
        while pending and chunks < limit and time.monotonic() < deadline:
            ids = pending.popleft()
            chunks += 1
            with capture_queries() as captured:
                device_changes_process(ids=ids, process_by=process_by, enqueue=enqueue)
            processing += len(captured)
            by_kind.update(query_kind(q["sql"]) for q in captured.captured_queries)
        seconds = time.perf_counter() - started
        if pending:
            raise BenchError(
                f"the {len(numbers)}-device query sample did not finish within "
                f"{self.options.query_timeout:.0f}s ({chunks} chunks processed)"
            )
        by_kind.update(query_kind(q["sql"]) for q in fan_out.captured_queries)
        bulk_change.refresh_from_db()
        retry_sends = BulkChangeLog.objects.filter(
            bulk_change=bulk_change, log_entry_description=logs.RETRY_SCHEDULED
        ).count()
        return QuerySample(
            devices=len(numbers),
            status=str(BulkChange.Status(bulk_change.status).value),
            create_queries=len(created),
            fan_out_queries=len(fan_out),
            processing_queries=processing,
            chunks=chunks,
            enqueues=enqueues,
            retry_sends=retry_sends,
            seconds=seconds,
            by_kind=by_kind,
        )

    def print_queries(self) -> None:
        print()
        print("== DB queries per device (in-process, max_concurrency=1, no rate limit, 0 ms) ==")
        for s in self.samples:
            print(
                f"{s.devices:>6} devices: {s.per_device:.2f} queries/device "
                f"({s.per_device - s.control_per_device:.2f} SQL statements + "
                f"{s.control_per_device:.2f} BEGIN/COMMIT/SAVEPOINT/RELEASE) "
                f"(fan-out {s.fan_out_queries}, chunks {s.processing_queries} in {s.chunks} "
                f"process_devices calls; creation {s.create_queries} more, not counted); "
                f"{s.seconds:.1f}s = {s.seconds / s.devices * 1000:.1f} ms/device; "
                f"SQS sends during processing {s.retry_sends}; final {s.status}"
            )
        if len(self.samples) >= 2:
            low, high = self.samples[0], self.samples[-1]
            time_ratio = (high.seconds / high.devices) / (low.seconds / low.devices)
            print(
                f"ratio {high.devices}/{low.devices}: {high.per_device / low.per_device:.3f} "
                f"(time per device ratio {time_ratio:.2f})"
            )
        if self.samples:
            s = self.samples[0]
            print(f"per device at {s.devices} devices, by statement:")
            for kind, count in s.by_kind.most_common():
                print(f"    {count / s.devices:6.2f}  {kind}")
        print(flush=True)

    # -- 3. summary -----------------------------------------------------------------------

    def summary(self) -> bool:
        o = self.options
        rows: list[tuple[str, str, str, str]] = []  # (carrier, figure, value, target)
        ok = True

        def target(carrier: str, name: str, value: str, passed: bool | None) -> None:
            nonlocal ok
            verdict = "n/a" if passed is None else ("PASS" if passed else "FAIL")
            ok = ok and passed is not False
            rows.append((carrier, name, value, verdict))

        for r in self.throughputs:
            c = r.label
            target(
                c,
                "bulk change final",
                f"{r.final_status} {r.device_counts}",
                r.final_status == "PROCESSED",
            )
            target(c, "devices/s", fmt(r.devices_per_s, "{:.2f}"), None)
            target(
                c,
                "per-device p50 / p95 (first audit row → outcome)",
                f"{fmt(r.p50, '{:.3f}')} s / {fmt(r.p95, '{:.3f}')} s",
                None,
            )
            ratio = r.steady / r.limit if r.steady and r.limit else None
            target(
                c,
                f"req/s ÷ limit {r.limit:g} (steady) ≥ {TARGET_RATIO}",
                f"{fmt(r.steady, '{:.2f}')} req/s → {fmt(ratio, '{:.3f}')} "
                f"({r.calls.get('requests', 0) / r.devices:.2f} req/device)",
                None if ratio is None else ratio >= TARGET_RATIO,
            )
            target(
                c,
                "429s = 0",
                str(r.calls.get("rate_limited")),
                r.calls.get("rate_limited") == 0,
            )
            target(c, "max requests in any 1 s", str(r.calls.get("max_requests_in_1s")), None)
            cpu_target = CPU_TARGET_MS.get(r.carrier)
            target(
                c,
                f"CPU ms per device (pipeline processes) ≤ {cpu_target:g}"
                if cpu_target
                else "CPU ms per device (pipeline processes)",
                fmt(r.cpu_ms_per_device, "{:.1f}"),
                None
                if cpu_target is None or r.cpu_ms_per_device is None
                else r.cpu_ms_per_device <= cpu_target,
            )
            if r.rev_service:
                rev_ratio = (
                    r.rev_steady / o.rev_rate_limit if r.rev_steady and o.rev_rate_limit else None
                )
                target(
                    c,
                    f"Rev.io req/s ÷ limit {o.rev_rate_limit:g} (steady)",
                    f"{fmt(r.rev_steady, '{:.2f}')} req/s → {fmt(rev_ratio, '{:.3f}')}",
                    None,
                )
                target(
                    c,
                    "Rev.io 429s = 0",
                    str(r.rev.get("rate_limited")),
                    r.rev.get("rate_limited") == 0,
                )
                target(
                    c, "Rev.io max requests in any 1 s", str(r.rev.get("max_requests_in_1s")), None
                )
            if r.note:
                target(c, "note", r.note, None)
        if len(self.samples) >= 2:
            low, high = self.samples[0], self.samples[-1]
            spread = high.per_device / low.per_device - 1
            target(
                "POND",
                f"queries/device {low.devices} vs {high.devices} within ±10 %",
                f"{low.per_device:.2f} vs {high.per_device:.2f} ({spread:+.1%})",
                abs(spread) <= TARGET_QUERY_SPREAD,
            )
        elif self.samples:
            s = self.samples[0]
            target("POND", f"queries/device at {s.devices}", f"{s.per_device:.2f}", None)

        print("== Summary (markdown) ==")
        print()
        print(f"Code: {self.code} (at the start of the run).  ")
        print(
            f"Machine: {os.cpu_count()} cores, {platform.python_implementation()} "
            f"{platform.python_version()}, {self.engine}; {datetime.now():%Y-%m-%d %H:%M}.  "
        )
        queries = (
            "not run"
            if o.skip_queries
            else f"samples {','.join(map(str, o.query_sample))} (POND only)"
        )
        print(
            f"Run: N={o.devices} per carrier, carriers {','.join(o.carriers)}, carrier limit "
            f"{o.rate_limit:g} req/s each (Teal: {o.rate_limit * 60:g} calls/minute), Rev.io "
            f"limit {o.rev_rate_limit:g} req/s (POND only), simulator latency {o.latency_ms} ms, "
            f"ThingSpace/Teal completion {ASYNC_COMPLETION_MS} ms, {o.workers} qcluster workers "
            f"x max_concurrency {o.concurrency}, chunk {chunk_size()}; query run {queries}."
        )
        print()
        print("| carrier | figure | value | target |")
        print("|---|---|---|---|")
        for carrier, name, value, verdict in rows:
            print(f"| {carrier} | {name} | {value} | {verdict} |")
        print()
        print(f"Overall: {'PASS' if ok else 'FAIL'}", flush=True)
        return ok

    # -- tear-down ------------------------------------------------------------------------

    def cleanup(self) -> None:
        for _, process, _ in reversed(self.running):
            with contextlib.suppress(Exception):
                stop_process(process, timeout=45)
        if self.options.keep_logs:
            print(f"logs kept in {self.workdir}")
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if self.admin_conninfo is not None:
            import psycopg

            try:
                with psycopg.connect(**self.admin_conninfo, autocommit=True) as admin:
                    admin.execute(f"DROP DATABASE IF EXISTS {self.bench_db} WITH (FORCE)")
            except Exception as error:
                print(f"could not drop database {self.bench_db}: {error}", file=sys.stderr)
        if not self.options.keep_logs:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def print_logs(self) -> None:
        for name, _, log in self.running:
            with contextlib.suppress(OSError):
                print(f"--- {name} ({log})\n{log.read_text(errors='replace')[-4000:]}")


def stop_process(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGTERM (graceful), then SIGKILL to the process group we created for it."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, 0)  # anything left in its group (qcluster's workers)?
        os.killpg(process.pid, signal.SIGKILL)


def steady_rates(
    rows: list[tuple[float, int, int, int]], devices: int
) -> tuple[tuple[float, float] | None, float | None, float | None]:
    """Requests/s between the samples where 10 % and 90 % of the devices had finished (times in
    seconds after the first sample)."""
    if len(rows) < 2:
        return None, None, None
    start = next((row for row in rows if row[1] >= STEADY[0] * devices), None)
    end = next((row for row in rows if row[1] >= STEADY[1] * devices), None)
    if start is None or end is None or end[0] - start[0] < 2:
        start, end = rows[0], rows[-1]
    span = end[0] - start[0]
    if span <= 0:
        return None, None, None
    window = (start[0] - rows[0][0], end[0] - rows[0][0])
    return window, (end[2] - start[2]) / span, (end[3] - start[3]) / span


def pond_ceiling(r: Throughput, o: argparse.Namespace) -> float | None:
    """The POND rate the Rev.io limit allows, at the measured requests per device."""
    pond, rev = r.calls.get("requests", 0), r.rev.get("requests", 0)
    if not (pond and rev and o.rev_rate_limit):
        return None
    return float(o.rev_rate_limit * pond / rev)


@contextlib.contextmanager
def capture_queries() -> Iterator[Any]:
    """``CaptureQueriesContext`` on an emptied query log: the log is a deque capped at
    ``queries_limit`` (9,000) that outlives each capture, and once full its length stops
    growing, so a capture would count nothing. Refuses a capture that filled it."""
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    reset_queries()
    with CaptureQueriesContext(connection) as context:
        yield context
    if len(connection.queries_log) >= connection.queries_limit:
        raise BenchError(f"a capture reached Django's queries_limit ({connection.queries_limit})")


_TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE)\s+"?([A-Za-z0-9_]+)"?', re.IGNORECASE)


def query_kind(sql: str) -> str:
    verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
    if verb in TX_CONTROL:
        return verb
    match = _TABLE.search(sql)
    lock = " FOR UPDATE" if "FOR UPDATE" in sql.upper() else ""
    return f"{verb} {match.group(1) if match else '?'}{lock}"


def chunk_size() -> int:
    from django.conf import settings

    return int(settings.BULKCHANGE_CHUNK_SIZE)


def code_version() -> str:
    """The commit measured, and whether the working tree had uncommitted changes (read-only)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head or 'unknown'}{' + uncommitted changes' if dirty else ''}"


def fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


# --- Command line ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2000, help="N for the throughput run")
    parser.add_argument("--rate-limit", type=float, default=50, help="POND req/s (ours = sim's)")
    parser.add_argument(
        "--rev-rate-limit",
        type=float,
        default=None,
        help=f"Rev.io req/s (default {REV_RATE_FACTOR:g} x --rate-limit; 0: unlimited)",
    )
    parser.add_argument("--latency-ms", type=int, default=20, help="simulator latency")
    parser.add_argument("--workers", type=int, default=2, help="qcluster workers")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="credentials' max_concurrency (model default 4)"
    )
    parser.add_argument("--chunk-size", type=int, default=0, help="BULKCHANGE_CHUNK_SIZE override")
    parser.add_argument(
        "--timeout",
        type=float,
        default=900,
        help="bound, in seconds, on the throughput run's wait for the bulk change to be final",
    )
    parser.add_argument(
        "--query-timeout",
        type=float,
        default=1800,
        help="bound, in seconds, on each query sample (5,000 devices take 10-15 minutes)",
    )
    parser.add_argument(
        "--query-sample",
        default="200,5000",
        type=lambda text: [int(part) for part in text.split(",") if part.strip()],
        help="device counts for the queries-per-device run",
    )
    parser.add_argument(
        "--carriers",
        default=",".join(CARRIERS),
        type=lambda text: [part.strip().lower() for part in text.split(",") if part.strip()],
        help=f"carriers for the throughput run, in order (default {','.join(CARRIERS)})",
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-queries", action="store_true")
    parser.add_argument("--keep-logs", action="store_true", help="keep subprocess logs")
    options = parser.parse_args(argv)
    if options.rev_rate_limit is None:
        options.rev_rate_limit = options.rate_limit * REV_RATE_FACTOR
    if options.devices < 1 or any(size < 1 for size in options.query_sample):
        parser.error("device counts must be positive")
    unknown = sorted(set(options.carriers) - set(CARRIERS))
    if unknown or not options.carriers:
        parser.error(f"--carriers: choose from {','.join(CARRIERS)} (not {','.join(unknown)})")
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    bench = Bench(options)
    try:
        bench.prepare_database()
        bench.start_servers()
        bench.setup_django()
        if not options.skip_throughput:
            bench.run_throughput()
        if not options.skip_queries:
            bench.run_queries()
        return 0 if bench.summary() else 1
    except KeyboardInterrupt:
        print("interrupted: stopping processes", file=sys.stderr)
        return 130
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        bench.print_logs()
        return 2
    finally:
        bench.cleanup()


if __name__ == "__main__":
    sys.exit(main())
