"""gunicorn's configuration for the PondOps web process:
``gunicorn -c python:pondops.gunicorn_conf pondops.wsgi``.

A module of the package (not a loose ``gunicorn.conf.py``), so the same command works from a
checkout, an installed wheel and the container image, whatever the working directory. Every
value comes from ``pondops/settings.py``, which reads the environment once: importing it here
creates nothing and opens no connection, and a bad or missing variable stops the master at
start with the settings' own message, before any worker is forked.

Decisions (docs/operations/deployment.md):

- **Workers and threads** (``gthread``): ``PONDOPS_WEB_WORKERS`` processes with
  ``PONDOPS_WEB_THREADS`` threads each. Requests spend their time waiting on PostgreSQL, so
  threads are cheap concurrency; processes keep one crash from taking every request with it.
- **No preload.** Each worker imports ``pondops.wsgi`` itself, so the production preflight
  (``pondops/startup.py``) runs in every worker and a refusal stops that worker from booting
  (gunicorn then exits: "Worker failed to boot"). Preloading would run it in the master, whose
  database connection every forked worker would then share — one socket, several processes.
- **Timeouts.** ``timeout`` (a worker silent this long is replaced) and ``graceful_timeout``
  (SIGTERM lets requests in flight finish this long) cover the largest request the API takes.
  A process manager must wait longer than ``graceful_timeout`` before it kills.
- **Proxy headers, as the settings trust them.** Django trusts ``X-Forwarded-Proto`` only with
  ``PONDOPS_BEHIND_TLS_PROXY`` (``SECURE_PROXY_SSL_HEADER``), and the client address comes
  from ``X-Forwarded-For`` only through ``PONDOPS_TRUSTED_PROXY_HOPS`` (DRF's NUM_PROXIES, read
  by the app, never by gunicorn). gunicorn follows the same rule for ``wsgi.url_scheme``:
  behind the TLS proxy it honours that one header (from ``PONDOPS_WEB_FORWARDED_ALLOW_IPS``,
  default any peer: the proxy is the only thing that reaches the web port, and it overwrites the
  header); otherwise from no peer at all — gunicorn's default would let any process on
  127.0.0.1 claim https. No header may rewrite ``SCRIPT_NAME`` or ``PATH_INFO``.
- **Logs to the standard streams**: the access log on stdout, gunicorn's own on stderr. The
  access line logs the path without its query string: a Teal callback carries its token there,
  and secrets never reach a log. No referrer either (it may carry another site's query).
- **No control socket**: it lives at one path per user, so two gunicorns collide there.
- ``worker_tmp_dir`` is ``/dev/shm`` where it exists: the workers' heartbeat files must not
  sit on a slow or read-only disk (container images).
"""

from __future__ import annotations

import os
from typing import Any

from pondops import settings as pondops_settings

wsgi_app = "pondops.wsgi:application"
bind = pondops_settings.PONDOPS_WEB_BIND
worker_class = "gthread"
workers = pondops_settings.PONDOPS_WEB_WORKERS
threads = pondops_settings.PONDOPS_WEB_THREADS
timeout = pondops_settings.PONDOPS_WEB_TIMEOUT_SECONDS
graceful_timeout = pondops_settings.PONDOPS_WEB_GRACEFUL_TIMEOUT_SECONDS
preload_app = False

if pondops_settings.PONDOPS_BEHIND_TLS_PROXY:
    forwarded_allow_ips = ",".join(pondops_settings.PONDOPS_WEB_FORWARDED_ALLOW_IPS) or "*"
    secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
else:
    forwarded_allow_ips = ""  # gunicorn takes a comma-separated string
    secure_scheme_headers = {}
forwarder_headers = ""  # no header may set SCRIPT_NAME or PATH_INFO

if os.path.isdir("/dev/shm"):  # noqa: S108 — tmpfs for the heartbeat files, not temp data
    worker_tmp_dir = "/dev/shm"  # noqa: S108

# gunicorn's control socket (gunicornc) sits at one path per user ($HOME/.gunicorn): two web
# processes of one user would fight over it, and a read-only home refuses it. Signals (HUP,
# TTIN/TTOU, TERM) do the same work.
control_socket_disable = True

accesslog = "-"
errorlog = "-"
loglevel = pondops_settings.LOG_LEVEL.lower()
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'


def child_exit(server: object, worker: Any) -> None:
    """Prometheus multiprocess mode (docs/operations/observability.md): an exited worker's
    live-gauge files are dropped, so /metrics does not count a dead process."""
    from pondops.metrics import metrics_process_dead

    metrics_process_dead(worker.pid)
