"""The chaos harness: a stack of real processes against a real database, faults injected into
it, and the figures each scenario is judged by (issue 11 item 9).

A :class:`ChaosStack` runs, each on a free loopback port: moto's SQS server (a subprocess that
can be killed and started again on the *same* port, its queues recreated under the same names,
so their URLs do not change), the carrier simulators (``python -m integrations.simulators``),
``clusters`` x ``manage.py qcluster`` (each in its own process group), ``pollers`` x
``manage.py poll_sqs`` and one ``manage.py run_reaper``; optionally Redis (``redis_url`` names
a database number of its own, emptied with FLUSHDB of that database only); and, on
PostgreSQL, a loopback TCP proxy in front of the server that the subprocesses connect through,
so the database can be cut (every connection closed, new ones refused) and restored. This
process reads the database directly, never through the proxy, so sampling goes on during a cut.

The same code serves ``tests/chaos/run_chaos.py`` (the figures, on production settings) and
the pytest suites (``test_chaos.py``, ``test_chaos_lite.py``: short leases through ``env``).
Django must be set up (settings pointing at the database of ``database_url``) before a stack
starts; the stack sets the SQS settings of this process while it runs and restores them after.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.bench.bench_pipeline import (
    NO_APPROVAL_NEEDED,
    Bench,
    BenchError,
    free_port,
    iccids,
    proc_stats,
    stop_process,
    worker_environment,
)
from tests.bench.bench_pipeline import wait_for as wait_until

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
SAMPLE_SECONDS = 0.5
POND_KEY = "chaos-pond-key-5e8b21"
REV_USER = "chaos"
REV_PASSWORD = "chaos-rev-pw-3d9f70"
REV_CUSTOMER = 42
SEED_BATCH = 1000
# POND's writes (one SIM status, one package status per device here) and Rev.io's: a write
# counted more than once per device is a duplicate carrier write.
POND_WRITES = ("set_sim_status", "set_package_status")
REV_WRITES = ("create_service", "create_service_product")


class ChaosError(RuntimeError):
    """The stack could not start or a process died unexpectedly."""


def group_pids(pgid: int) -> set[int]:
    """Live processes whose process group is ``pgid`` (read from /proc)."""
    return {pid for pid, _, fields in proc_stats() if fields[0] != "Z" and int(fields[2]) == pgid}


# --- The TCP proxy in front of PostgreSQL ------------------------------------------------------


class TcpProxy:
    """Forwards loopback connections on ``port`` to ``target``; :meth:`cut` closes every
    connection and refuses new ones (accepted, then reset at once) until :meth:`restore`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="chaos-db-proxy", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            for sock in pair:
                _reset(sock)

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._closed.set()
        self.cut()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            pair = (client, upstream)
            with self._lock:
                self._pairs.add(pair)
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair: tuple[socket.socket, socket.socket]) -> None:
        client, upstream = pair
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        try:
            while not self._cut.is_set():
                for key, _ in selector.select(timeout=0.5):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            with self._lock:
                self._pairs.discard(pair)
            for sock in pair:
                _reset(sock)


def _reset(sock: socket.socket) -> None:
    """Close with RST (linger 0): the peer sees the connection die, as in a network cut."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        sock.close()


# --- The stack ---------------------------------------------------------------------------------


@dataclass
class StackOptions:
    clusters: int = 1
    pollers: int = 1
    workers: int = 2  # per qcluster
    redis_url: str = ""  # redis://127.0.0.1:6379/<n>, a database of its own; "" = none
    rate_limit: float = 50  # POND req/s, ours = the simulator's (0: unlimited)
    rev_rate_limit: float = 70
    concurrency: int = 4
    latency_ms: int = 20
    reaper_interval: float = 2
    env: dict[str, str] = field(default_factory=dict)  # settings for the subprocesses


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


class ChaosStack:
    """Start with :meth:`start`, stop with :meth:`stop` (or use it as a context manager)."""

    def __init__(self, *, database_url: str, workdir: Path, options: StackOptions) -> None:
        self.options = options
        self.workdir = workdir
        self.database_url = database_url  # what this process and (without a proxy) workers use
        self.worker_database_url = database_url
        self.proxy: TcpProxy | None = None
        self.procs: list[Proc] = []
        self.moto: subprocess.Popen[bytes] | None = None
        self.moto_port = 0
        self.simulator_url = ""
        self.queue_name = f"chaos-{uuid.uuid4().hex[:8]}"
        self.queue_urls: dict[str, str] = {}
        self._saved_settings: dict[str, Any] = {}
        self.series = 0
        self.tenant: Any = None
        self.pond: Any = None
        self.rev: Any = None

    # -- life cycle ---------------------------------------------------------------------------

    def __enter__(self) -> ChaosStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.database_url.startswith("postgres"):
            parts = urlsplit(self.database_url)
            self.proxy = TcpProxy((parts.hostname or LOOPBACK, parts.port or 5432))
            self.worker_database_url = parts._replace(
                netloc=f"{parts.username or 'root'}@{LOOPBACK}:{self.proxy.port}"
            ).geturl()
        if self.options.redis_url:
            self.redis_flush()
        else:
            from django_q.models import OrmQ

            OrmQ.objects.all().delete()  # the broker is disposable: no earlier run's tasks
        self.moto_port = free_port()
        self.sqs_up()
        self.start_simulators()
        self.make_world()
        for _ in range(self.options.clusters):
            self.start_cluster()
        for _ in range(self.options.pollers):
            self.start_poller()
        self.start_reaper()
        self.wait_ready()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                stop_process(proc.process, timeout=20)
        if self.moto is not None:
            self.sqs_down()
        if self.proxy is not None:
            self.proxy.close()
        from django.conf import settings

        from bulkchanges import sqs

        for name, value in self._saved_settings.items():
            setattr(settings, name, value)
        self._saved_settings.clear()
        sqs.sqs_client.cache_clear()

    def worker_env(self) -> dict[str, str]:
        return worker_environment(
            database_url=self.worker_database_url,
            moto_url=self.moto_url,
            queue_urls=self.queue_urls,
            workers=self.options.workers,
            redis_url=self.options.redis_url,
            extra={"PONDOPS_Q_POLL_SECONDS": "0.3", **self.options.env},
        )

    def spawn(
        self,
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
        label: str = "",
    ) -> Proc:
        """``manage.py *args`` in a session (and process group) of its own; ``prefix`` runs it
        through another command that execs it (``ip netns exec …``, tests/multihost), with
        ``env`` instead of :meth:`worker_env`."""
        log = self.workdir / f"{name}{label}-{len(self.procs)}.log"
        process = subprocess.Popen(
            [*prefix, sys.executable, str(ROOT / "manage.py"), *args],
            env=self.worker_env() if env is None else env,
            cwd=ROOT,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Proc(name, process, log)
        self.procs.append(proc)
        return proc

    def start_cluster(self) -> Proc:
        return self.spawn("qcluster", "qcluster")

    def start_poller(self) -> Proc:
        return self.spawn("poll_sqs", "poll_sqs")

    def start_reaper(self) -> Proc:
        return self.spawn(
            "run_reaper", "run_reaper", "--interval", str(self.options.reaper_interval)
        )

    def running(self, name: str) -> list[Proc]:
        return [p for p in self.procs if p.name == name and p.process.poll() is None]

    def logs(self, tail: int = 4000) -> str:
        return "\n".join(
            f"--- {p.log.name} (exit {p.process.poll()})\n"
            f"{p.log.read_text(errors='replace')[-tail:]}"
            for p in self.procs
        )

    def wait_ready(self) -> None:
        """Every poller has announced its queue and every cluster is up."""

        def polling() -> bool:
            pollers = self.running("poll_sqs")
            return bool(pollers) and all(
                "poll_sqs: polling" in p.log.read_text(errors="replace") for p in pollers
            )

        def clusters_up() -> bool:
            return all(
                len(group_pids(p.process.pid)) >= 2 + self.options.workers
                for p in self.running("qcluster")
            )

        try:
            wait_until(polling, timeout=90, message="poll_sqs to poll")
            wait_until(clusters_up, timeout=90, message="qcluster workers")
        except BenchError as error:  # wait_for's timeout
            raise ChaosError(f"{error}\n{self.logs()}") from error

    # -- SQS ----------------------------------------------------------------------------------

    @property
    def moto_url(self) -> str:
        return f"http://{LOOPBACK}:{self.moto_port}"

    def sqs_up(self) -> None:
        """moto on ``moto_port`` (the same port every time) and the queues recreated under the
        same names: moto keeps its state in memory, so a restart starts empty, and a queue's URL
        is its endpoint + account + name, so the workers' settings stay right."""
        import requests
        from django.core.management import call_command

        from bulkchanges import sqs

        self.moto = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.moto_port)],
            stdout=(self.workdir / "moto.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def up() -> bool:
            try:
                return requests.get(self.moto_url + "/moto-api/", timeout=1).status_code < 500
            except requests.RequestException:
                return False

        wait_until(up, timeout=60, message="moto server")
        for name, value in (
            ("AWS_ENDPOINT_URL_SQS", self.moto_url),
            ("BULKCHANGE_SQS_WAIT_SECONDS", 1),
        ):
            self._set_setting(name, value)
        sqs.sqs_client.cache_clear()
        out = StringIO()
        call_command("create_queues", "--name", self.queue_name, stdout=out)
        urls = dict(line.split("=", 1) for line in out.getvalue().split() if "=" in line)
        if self.queue_urls and urls != self.queue_urls:
            raise ChaosError(f"the queue URLs changed across a restart: {self.queue_urls} {urls}")
        self.queue_urls = urls
        self._set_setting("PONDOPS_SQS_QUEUE_URL", urls["PONDOPS_SQS_QUEUE_URL"])
        self._set_setting("PONDOPS_SQS_DLQ_URL", urls["PONDOPS_SQS_DLQ_URL"])

    def sqs_down(self) -> None:
        """SIGKILL moto: every message in it is lost, as when a local queue server dies."""
        if self.moto is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.moto.pid, signal.SIGKILL)
        self.moto.wait(timeout=10)
        self.moto = None

    def _set_setting(self, name: str, value: Any) -> None:
        from django.conf import settings

        if name not in self._saved_settings:
            self._saved_settings[name] = getattr(settings, name)
        setattr(settings, name, value)

    # -- the database ---------------------------------------------------------------------------

    def db_cut(self) -> None:
        if self.proxy is None:
            raise ChaosError("a database cut needs PostgreSQL (the TCP proxy)")
        self.proxy.cut()

    def db_restore(self) -> None:
        if self.proxy is not None:
            self.proxy.restore()

    # -- Redis ----------------------------------------------------------------------------------

    def redis_flush(self) -> None:
        """Empty this stack's Redis database (FLUSHDB of that database number only)."""
        from tests.fixtures.redisdb import redis_database_flush

        redis_database_flush(self.options.redis_url)

    # -- carriers -------------------------------------------------------------------------------

    def start_simulators(self) -> None:
        import requests

        port = free_port()
        self.simulator_url = f"http://{LOOPBACK}:{port}"
        log = self.workdir / "simulators.log"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "integrations.simulators",
                "--host",
                LOOPBACK,
                "--port",
                str(port),
            ],
            cwd=ROOT,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(Proc("simulators", process, log))

        def up() -> bool:
            try:
                return requests.get(self.simulator_url + "/_sim/stats", timeout=1).ok
            except requests.RequestException:
                return False

        wait_until(up, timeout=60, message="carrier simulators")
        self.control().config(latency_ms=self.options.latency_ms)

    @property
    def carrier_origin(self) -> str:
        """Where the workers reach the simulators (the credentials' base URLs start with it):
        the simulators' own loopback URL here; a forwarder's name for hosts that cannot see
        this machine's loopback (tests/multihost)."""
        return self.simulator_url

    def control(self, timeout: float = 30) -> Any:
        from integrations.simulators.control import SimulatorControl

        return SimulatorControl(self.simulator_url, timeout=timeout)

    def make_world(self) -> None:
        """A tenant with POND and Rev.io credentials (our limits equal the simulator's)."""
        from bulkchanges.models import IntegrationAuthentication, Tenant

        account = f"C{uuid.uuid4().hex[:6].upper()}"
        o = self.options
        with self.control() as control:
            control.add_pond_account(
                distributor_id=account, api_key=POND_KEY, rate_limit=o.rate_limit or None
            )
            control.add_rev_account(
                client_code=account,
                username=REV_USER,
                password=REV_PASSWORD,
                calls_per_minute=o.rev_rate_limit * 60 or None,
            )
            control.add_rev_customers(client_code=account, customer_ids=[REV_CUSTOMER])
        self.account = account
        # Thousands of devices, run at once: four-eyes approval is not what chaos measures.
        self.tenant = Tenant.objects.create(
            name=f"Chaos {account}", approval_threshold=NO_APPROVAL_NEEDED
        )
        common = {"tenant": self.tenant, "account": account, "max_concurrency": o.concurrency}
        self.pond = IntegrationAuthentication.objects.create(
            integration="POND",
            base_url=self.carrier_origin + "/pond/ds/u/distributorPPUService/v1",
            secret=POND_KEY,
            rate_limit=o.rate_limit,
            **common,
        )
        self.rev = IntegrationAuthentication.objects.create(
            integration="REV",
            base_url=self.carrier_origin + "/rev",
            username=REV_USER,
            secret=REV_PASSWORD,
            rate_limit=o.rev_rate_limit,
            **common,
        )

    def seed(self, devices: int) -> list[str]:
        """``devices`` new POND SIMs (a series of ICCIDs of their own), In-Service."""
        self.series += 1
        numbers = iccids(devices, series=self.series)
        with self.control(timeout=120) as control:
            for start in range(0, devices, SEED_BATCH):
                control.seed_pond_sims(
                    distributor_id=self.account,
                    sims=[
                        {"iccid": n, "services": "ENABLED"}
                        for n in numbers[start : start + SEED_BATCH]
                    ],
                )
        return numbers

    def bulk_change(self, numbers: list[str]) -> Any:
        """A POND bulk change for ``numbers``, with a Rev.io service each, through the
        services every entry point uses."""
        return Bench.create_bulk_change(self.tenant, self.rev, numbers)

    def carrier_counters(self) -> dict[str, Any]:
        with self.control() as control:
            return {"stats": control.stats(), "calls": control.calls()}

    def rev_services(self) -> list[dict[str, Any]]:
        with self.control() as control:
            return control.rev_services()

    # -- faults on processes --------------------------------------------------------------------

    def kill_group(self, proc: Proc) -> None:
        """SIGKILL a process and every process of its group (qcluster: master, sentinel,
        workers, monitor, pusher)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.process.pid, signal.SIGKILL)
        proc.process.wait(timeout=10)

    def kill_master(self, proc: Proc) -> set[int]:
        """SIGKILL the qcluster master only; returns the pids left in its group (orphans)."""
        proc.process.send_signal(signal.SIGKILL)
        proc.process.wait(timeout=10)
        return group_pids(proc.process.pid)


# --- Measuring a run -------------------------------------------------------------------------


@dataclass
class Sample:
    at: float  # monotonic
    final: int  # device changes in a terminal status


class Run:
    """One bulk change through a stack: samples progress every ~0.5 s while the scenario waits,
    and collects the figures it is judged by."""

    def __init__(
        self, stack: ChaosStack, devices: int, report: Callable[[str], None] | None = None
    ) -> None:
        from bulkchanges.models import BulkChangeLog

        self.report = report  # told the progress every ~30 s (the script prints it)
        self._reported = time.monotonic()
        self.stack = stack
        self.devices = devices
        self.samples: list[Sample] = []
        self.before = stack.carrier_counters()
        self.first_log_id = (
            BulkChangeLog.objects.order_by("-id").values_list("id", flat=True).first() or 0
        )
        self.iccids = stack.seed(devices)
        self.started = time.monotonic()  # the run's time counts from the bulk change's creation
        self.bulk_change = stack.bulk_change(self.iccids)
        self.fault_started: float | None = None
        self.fault_ended: float | None = None
        self.in_flight_at_fault = 0
        self.allowed_extra_writes = 0  # carrier faults on writes: a retried write is expected
        self.finished: float | None = None
        self.notes: list[str] = []

    # -- progress ----------------------------------------------------------------------------

    def final_count(self) -> int:
        from bulkchanges.models import DeviceChange

        return DeviceChange.objects.filter(
            bulk_change_id=self.bulk_change.pk, status__in=DeviceChange.TERMINAL
        ).count()

    def in_flight(self) -> int:
        from bulkchanges.models import DeviceChange

        return DeviceChange.objects.filter(
            bulk_change_id=self.bulk_change.pk, status=DeviceChange.Status.PROCESSING
        ).count()

    def is_final(self) -> bool:
        from bulkchanges.models import BulkChange

        status = BulkChange.objects.filter(pk=self.bulk_change.pk).values_list("status", flat=True)
        return status.get() in BulkChange.TERMINAL

    def sample(self) -> Sample:
        sample = Sample(time.monotonic(), self.final_count())
        self.samples.append(sample)
        if self.report is not None and sample.at - self._reported >= 30:
            self._reported = sample.at
            self.report(
                f"  {sample.final}/{self.devices} final after {sample.at - self.started:.0f}s"
            )
        if self.finished is None and sample.final >= self.devices and self.is_final():
            self.finished = sample.at
        return sample

    def wait(
        self,
        *,
        seconds: float | None = None,
        until: Callable[[Sample], bool] | None = None,
        timeout: float = 900,
    ) -> bool:
        """Sample every ~0.5 s for ``seconds``, or until ``until(sample)`` holds, or until the
        bulk change is final; False when ``timeout`` passed first."""
        deadline = time.monotonic() + (seconds if seconds is not None else timeout)
        while True:
            sample = self.sample()
            if until is not None and until(sample):
                return True
            if self.finished is not None and seconds is None:
                return True
            if time.monotonic() >= deadline:
                return seconds is not None
            time.sleep(SAMPLE_SECONDS)

    def wait_fraction(self, fraction: float, *, timeout: float = 900) -> bool:
        """Until ``fraction`` of the devices are final (the moment a fault is injected)."""
        target = max(1, int(self.devices * fraction))
        return self.wait(until=lambda s: s.final >= target, timeout=timeout)

    def wait_final(self, *, timeout: float) -> bool:
        return self.wait(until=lambda s: self.finished is not None, timeout=timeout)

    def fault_start(self) -> None:
        self.fault_started = time.monotonic()
        self.in_flight_at_fault = self.in_flight()

    def fault_end(self) -> None:
        self.fault_ended = time.monotonic()

    # -- figures -------------------------------------------------------------------------------

    def elapsed(self) -> float | None:
        return None if self.finished is None else self.finished - self.started

    def recovery(self) -> float | None:
        if self.fault_ended is None:
            return None
        return recovery_seconds(self.samples, fault_ended=self.fault_ended, devices=self.devices)

    def longest_stall(self) -> float | None:
        if self.fault_started is None:
            return None
        return longest_stall(self.samples, fault_started=self.fault_started, devices=self.devices)

    def figures(self) -> Figures:
        from django.db.models import Count

        from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
        from bulkchanges.services import logs

        after = self.stack.carrier_counters()
        bulk_change = BulkChange.objects.get(pk=self.bulk_change.pk)
        devices = DeviceChange.objects.filter(bulk_change=bulk_change)
        statuses = Counter(devices.values_list("status", flat=True))
        mine = set(self.iccids)

        def delta(carrier: str, name: str) -> int:
            return int(after["stats"].get(carrier, {}).get(name, 0)) - int(
                self.before["stats"].get(carrier, {}).get(name, 0)
            )

        duplicate_writes = 0
        for carrier, ops in (("pond", POND_WRITES), ("rev", REV_WRITES)):
            for op in ops:
                for key, count in after["calls"].get(carrier, {}).get(op, {}).items():
                    if key in mine:
                        duplicate_writes += max(0, count - 1)
        services = Counter(
            s["number"] for s in self.stack.rev_services() if s.get("number") in mine
        )
        calls = delta("pond", "requests") + delta("rev", "requests")
        # A call's row carries the request it sent (an outcome, retry or operator row does not).
        call_rows = BulkChangeLog.objects.filter(
            bulk_change=bulk_change, id__gt=self.first_log_id
        ).exclude(request_text="")
        by_worker = Counter(
            dict(call_rows.values_list("process_by").annotate(n=Count("id")).order_by())
        )
        return Figures(
            devices=self.devices,
            status=str(bulk_change.status),
            device_statuses=dict(statuses),
            final=sum(statuses[s] for s in DeviceChange.TERMINAL),
            elapsed=self.elapsed(),
            recovery=self.recovery(),
            longest_stall=self.longest_stall(),
            duplicate_writes=duplicate_writes,
            in_flight_at_fault=self.in_flight_at_fault,
            allowed_extra_writes=self.allowed_extra_writes,
            duplicate_rev_services=sum(n - 1 for n in services.values() if n > 1),
            rev_services=len(services),
            calls=calls,
            audit_rows=call_rows.count(),
            in_flight_rows=call_rows.filter(in_flight=True).count(),
            no_response_rows=call_rows.filter(response_status__isnull=True).count(),
            worker_stopped_rows=call_rows.filter(response_text=logs.NO_RESPONSE).count(),
            rate_limited=delta("pond", "rate_limited") + delta("rev", "rate_limited"),
            faults_injected=delta("pond", "faults_injected") + delta("rev", "faults_injected"),
            rows_by_worker=dict(by_worker),
            notes=list(self.notes),
        )


def recovery_seconds(samples: list[Sample], *, fault_ended: float, devices: int) -> float | None:
    """Seconds from the fault's end to the first sample showing more devices final than at
    the fault's end (0 when the run was already final; None: no progress was seen)."""
    at_end = [s for s in samples if s.at <= fault_ended]
    base = at_end[-1].final if at_end else 0
    if base >= devices:
        return 0.0
    for s in samples:
        if s.at > fault_ended and s.final > base:
            return s.at - fault_ended
    return None


def longest_stall(samples: list[Sample], *, fault_started: float, devices: int) -> float:
    """The longest time without a device reaching a final status, from the fault's start to
    the end of the run (or of sampling): the stalls a first-progress figure hides."""
    last = fault_started
    base = next((s.final for s in reversed(samples) if s.at <= fault_started), 0)
    longest = 0.0
    for s in samples:
        if s.at <= fault_started:
            continue
        if s.final > base:
            longest = max(longest, s.at - last)
            last, base = s.at, s.final
        if s.final >= devices:
            return longest
    if samples:
        longest = max(longest, samples[-1].at - last)
    return longest


@dataclass
class Figures:
    devices: int
    status: str
    device_statuses: dict[str, int]
    final: int
    elapsed: float | None
    recovery: float | None
    longest_stall: float | None
    duplicate_writes: int
    in_flight_at_fault: int
    allowed_extra_writes: int
    duplicate_rev_services: int
    rev_services: int
    calls: int
    audit_rows: int
    in_flight_rows: int
    no_response_rows: int
    worker_stopped_rows: int  # closed by the reaper: the worker died before the answer
    rate_limited: int
    faults_injected: int
    rows_by_worker: dict[str, int]
    notes: list[str]

    @property
    def all_final(self) -> bool:
        from bulkchanges.models import BulkChange

        return self.final == self.devices and self.status in BulkChange.TERMINAL

    @property
    def write_allowance(self) -> int:
        return self.in_flight_at_fault + self.allowed_extra_writes + self.rate_limited


@contextlib.contextmanager
def chaos_stack(*, database_url: str, workdir: Path, options: StackOptions) -> Iterator[ChaosStack]:
    stack = ChaosStack(database_url=database_url, workdir=workdir, options=options)
    with stack:
        yield stack
