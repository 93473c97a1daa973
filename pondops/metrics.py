"""PondOps' Prometheus metrics: what the processes count as they work, and the multiprocess
plumbing (docs/operations/observability.md).

Every counter and histogram is defined here, once, so the names and labels are in one list.
Labels are bounded: ``carrier`` is the Integration code (POND, REV, …), ``operation`` a
client's fixed call description, ``code`` an HTTP status or ``error``, ``status`` a device
status. Never a tenant, an ICCID or a URL.

Multiprocess mode: with ``PROMETHEUS_MULTIPROC_DIR`` set in the environment *before* the
process starts, prometheus-client keeps each process's values in files of that directory
(one set per pid), and ``/metrics`` sums them. Every process of a host — gunicorn's workers,
``qcluster``'s forked workers, ``poll_sqs``, ``run_reaper`` — must share the directory, and
it must be emptied before they start (:func:`metrics_directory_reset`, ``manage.py
reset_metrics_dir``): files of an earlier boot would be added to this one's figures. When a
gunicorn worker exits, :func:`metrics_process_dead` drops its live-gauge files (counters
stay: they are totals). Files are named by host name and pid (:func:`metrics_process_id`), so
processes in separate containers on one host may share the directory.

The scrape-time figures (queue depth, oldest unfinished bulk change, …) are not here: they
are read when ``/metrics`` is, by ``bulkchanges.metrics``.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, Metric, multiprocess, values
from prometheus_client.registry import REGISTRY, Collector

# prometheus-client names each process's files by its pid. Processes in separate containers
# sharing the directory (one process per container) have colliding pids — each container's
# first process is pid 1 — and would write into one another's files; the host name (each
# container's own) makes the name unique. Set before the first metric below is created.
_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"


def metrics_process_id(pid: int | None = None) -> str:
    """The name of a process's files in the multiprocess directory: ``<host>-<pid>``."""
    return f"{_HOST}-{os.getpid() if pid is None else pid}"


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    values.ValueClass = values.MultiProcessValue(process_identifier=metrics_process_id)

TRANSPORT_ERROR = "error"  # the ``code`` of a call that got no HTTP answer

CARRIER_REQUESTS = Counter(
    "pondops_carrier_requests",
    "Carrier and Rev.io HTTP calls, by integration, operation and HTTP status (or 'error': "
    "no answer — a timeout, a refused connection, an egress refusal).",
    ["carrier", "operation", "code"],
)
CARRIER_RATE_LIMITED = Counter(
    "pondops_carrier_rate_limited",
    "Carrier answers 429 Too Many Requests, by integration (also in "
    "pondops_carrier_requests_total{code='429'}).",
    ["carrier"],
)
CARRIER_REQUEST_SECONDS = Histogram(
    "pondops_carrier_request_duration_seconds",
    "Time on the wire of a carrier call (after the rate limiter let it go), by integration.",
    ["carrier"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
DEVICE_OUTCOMES = Counter(
    "pondops_device_outcomes",
    "Device changes leaving PROCESSING (or never claimed: writes disabled, cancelled), by "
    "integration and the status recorded. PROCESSED, SKIPPED, ERROR and CANCELLED are final; "
    "RETRY_SCHEDULED and AWAITING_CARRIER come back.",
    ["carrier", "status"],
)


def carrier_call_observe(
    *, carrier: str, operation: str, status: int | None, seconds: float
) -> None:
    """Count one carrier call (``status`` None: no HTTP answer) and its time on the wire."""
    code = TRANSPORT_ERROR if status is None else str(status)
    CARRIER_REQUESTS.labels(carrier=carrier, operation=operation, code=code).inc()
    if status == 429:
        CARRIER_RATE_LIMITED.labels(carrier=carrier).inc()
    CARRIER_REQUEST_SECONDS.labels(carrier=carrier).observe(max(0.0, seconds))


def device_outcome_count(*, carrier: str, status: str, count: int = 1) -> None:
    """Count ``count`` device changes recorded with ``status`` (only transitions that won)."""
    if count > 0:
        DEVICE_OUTCOMES.labels(carrier=carrier, status=status).inc(count)


def metrics_directory() -> str:
    """The shared directory of multiprocess mode, or "" (single process). Read from the
    environment, as prometheus-client itself does when the process starts."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


class _ThisProcess(Collector):
    """This process's own metrics (the default registry), as one collector of another
    registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def metrics_registry(*, directory: str) -> CollectorRegistry:
    """A new registry for one scrape: every process's files in ``directory`` summed, or this
    process's own metrics when there is none. The caller adds its scrape-time collectors."""
    registry = CollectorRegistry()  # no describe: collectors run once, at the scrape
    if directory:
        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_ThisProcess())
    return registry


def metrics_directory_reset(directory: str) -> int:
    """Empty the multiprocess directory (creating it if needed) before a host's processes
    start; returns how many files were removed. Only prometheus-client's ``*.db`` files are
    removed, so a wrong path does not wipe someone else's directory."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    removed = 0
    for file in path.glob("*.db"):
        file.unlink(missing_ok=True)
        removed += 1
    return removed


def metrics_process_dead(pid: int, *, directory: str = "") -> None:
    """A process of the host exited (gunicorn's ``child_exit`` hook): drop its live-gauge
    files. No-op outside multiprocess mode."""
    path = directory or metrics_directory()
    if path:
        multiprocess.mark_process_dead(metrics_process_id(pid), path=path)
