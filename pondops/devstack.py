"""The whole PondOps system on one machine, in the foreground (``manage.py run_demo``).

Runs on the embedded defaults (SQLite, django-q2's ORM broker, the database cache) and starts,
as child processes bound to 127.0.0.1 only: moto's SQS server, the carrier simulators, the web
server, ``qcluster``, ``poll_sqs`` and ``run_reaper``. Each child writes to
``<PONDOPS_VAR_DIR>/logs/NAME.log`` (overwritten on every start). In between it migrates the
database, creates the queue and its dead-letter queue, seeds the demo data for every carrier and
queues one demo bulk change per carrier, then prints where to log in and, later, one line per
carrier on how its demo bulk change ended.

With ``production`` (``manage.py run_demo --production``, ``./dev prod``) it rehearses the
production layout instead: the workers run with ``PONDOPS_ENVIRONMENT=production`` against the
PostgreSQL of ``DATABASE_URL`` and the Redis of ``REDIS_URL`` (both required, on this machine),
the web server is gunicorn (``pondops.gunicorn_conf``) on static files collected first, and a
TLS-terminating proxy (:mod:`pondops.tls_proxy`, a self-signed certificate made on every start,
which the simulators trust for their callbacks) stands in front of it as the load balancer
would. moto and the simulators still stand in for AWS and the carriers. The demo admin gets a
password generated for this start (production refuses the published one); the Django secret
key and the Fernet key are this machine's own, made once in ``<PONDOPS_VAR_DIR>/rehearsal``
unless the environment sets them.

It runs until SIGINT (Ctrl-C) or SIGTERM, then stops the children — SIGTERM, a grace period,
then SIGKILL for the child's whole process group (``qcluster`` forks workers) — and returns.
A child that dies on its own stops everything with :class:`DevStackError`, after printing the
tail of that child's log.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from types import FrameType

import requests
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse

from bulkchanges import sqs
from bulkchanges.errors import ApplicationError
from bulkchanges.loopback import is_loopback_host, is_loopback_url
from bulkchanges.models import BulkChange
from bulkchanges.selectors import FINISHED_ORDER, bulk_change_progress
from bulkchanges.services.callback_registration import carrier_callback_register
from bulkchanges.services.demo import (
    DEMO_ADMIN_PASSWORD,
    DemoData,
    DemoRefused,
    demo_bulk_changes_create,
    demo_egress_allow,
    demo_environment_check,
    demo_seed,
)
from integrations.base import Integration
from integrations.simulators.control import SimulatorControl, SimulatorControlError
from pondops.tls_proxy import CERTIFICATE_FILE, Certificate, self_signed_certificate_create

HOST = "127.0.0.1"
QUEUE_VISIBILITY_SECONDS = 60
POLL_WAIT_SECONDS = 5  # poll_sqs's long-poll wait here: Ctrl-C stops it within 5 s, not 20
START_TIMEOUT = 60.0  # seconds for each child to answer
STOP_TIMEOUT = 25.0  # seconds for the workers to stop before they are killed
INFRASTRUCTURE_STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 20
TICK = 0.25


class DevStackError(Exception):
    """The stack cannot start or keep running; the message is one line for the operator."""


class _Interrupted(Exception):
    """SIGINT or SIGTERM arrived while the stack was starting."""


@dataclass(frozen=True)
class DevStackOptions:
    web_port: int = 8000
    sqs_port: int = 9324
    simulator_port: int = 8765
    admin_password: str = DEMO_ADMIN_PASSWORD
    demo_bulk_change: bool = True
    production: bool = False  # the production layout (module docstring)
    proxy_port: int = 8443  # the TLS proxy, with production only


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    infrastructure: bool  # stopped after the workers, which need it while they drain


class DevStack:
    """One run of the local stack. :meth:`run` blocks until a signal or a failure."""

    def __init__(self, options: DevStackOptions, *, say: Callable[[str], None]) -> None:
        self.options = options
        self.say = say
        self.log_dir = Path(settings.VAR_DIR) / "logs"
        self.children: list[_Child] = []
        self._stop_requested = threading.Event()
        self._hurry = threading.Event()  # a second signal: kill without the grace period
        self._secrets: dict[str, str] = {}  # the production rehearsal's keys
        self._certificate: Certificate | None = None  # the production rehearsal's TLS proxy

    # -- the run --------------------------------------------------------------------------

    def run(self) -> None:
        """Start everything, watch it, stop it. Returns after a clean stop on a signal;
        raises DevStackError when something cannot start or a child dies."""
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self._check_environment()
            if self.options.production:
                self._check_production_services()
                self._secrets = self._rehearsal_secrets()
            self._check_ports()
            bulk_change_ids = self._start()
            self._watch(bulk_change_ids)
        except _Interrupted:
            pass
        finally:
            self._stop_children()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if self.children or self._stop_requested.is_set():
                self.say("stopped")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stop_requested.is_set():
            self._hurry.set()
        self._stop_requested.set()

    def _start(self) -> list[int]:
        options = self.options
        self.log_dir.mkdir(parents=True, exist_ok=True)
        database = settings.DATABASES["default"]
        self.say(f"PondOps local stack: database {database['NAME']} ({database['ENGINE']})")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("createcachetable", verbosity=0)
        self.say("  database     migrated")

        sqs_url = f"http://{HOST}:{options.sqs_port}"
        moto = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(options.sqs_port)]
        self._spawn("sqs", moto, url=sqs_url, infrastructure=True)
        self._wait_until("sqs", lambda: (_status(f"{sqs_url}/moto-api/") or 500) < 500)

        simulator_url = f"http://{HOST}:{options.simulator_port}"
        simulators = ["run_simulators", "--host", HOST, "--port", str(options.simulator_port)]
        trust: dict[str, str] = {}
        if options.production:
            # The proxy's certificate, made now: the simulators' callbacks verify it.
            self._certificate = self_signed_certificate_create(directory=self._certificate_dir)
            trust["SSL_CERT_FILE"] = str(self._certificate.certificate)
        self._spawn(
            "simulators",
            _manage(*simulators),
            url=simulator_url,
            infrastructure=True,
            extra_env=trust,
        )
        control = SimulatorControl(simulator_url)
        self._wait_until("simulators", lambda: _simulator_answers(control))

        queue_url, dlq_url = self._create_queues(sqs_url)
        names = " + ".join(url.rsplit("/", 1)[-1] for url in (queue_url, dlq_url))
        self.say(f"  queues       {names} (visibility {QUEUE_VISIBILITY_SECONDS} s)")

        extra_origins = demo_egress_allow(simulator_url=simulator_url)
        with control:
            data = demo_seed(
                simulator=control,
                simulator_url=simulator_url,
                admin_password=options.admin_password,
            )
        self.say(f"  demo data    {_describe(data)}")
        self._check_stop()

        web_url = f"http://{HOST}:{options.web_port}"
        environment = self._production_environment() if options.production else {}
        environment |= {
            "AWS_ENDPOINT_URL_SQS": sqs_url,
            "PONDOPS_SQS_QUEUE_URL": queue_url,
            "PONDOPS_SQS_DLQ_URL": dlq_url,
            # The credentials rows point at the loopback simulators: an allowed extra origin.
            "PONDOPS_CARRIER_EXTRA_ORIGINS": extra_origins,
        }
        if options.production:
            web_url = f"https://{HOST}:{options.proxy_port}"
        # The simulators call back on loopback (ThingSpace, Teal), as carriers would on the
        # public origin in production: there through the TLS proxy, trusting its certificate.
        environment["CARRIER_CALLBACK_BASE_URL"] = web_url
        if options.production:
            self._start_production_web(environment)
        else:
            # --insecure: the admin's CSS is served by runserver although DEBUG stays off.
            web = ["runserver", f"{HOST}:{options.web_port}", "--noreload", "--insecure"]
            self._spawn("web", _manage(*web), url=web_url + "/", extra_env=environment)
        self._spawn("qcluster", _manage("qcluster"), extra_env=environment)
        poller = _manage("poll_sqs", "--wait-seconds", str(POLL_WAIT_SECONDS))
        self._spawn("poll_sqs", poller, extra_env=environment)
        self._spawn("run_reaper", _manage("run_reaper"), extra_env=environment)
        verify = str(self._certificate.certificate) if self._certificate else True
        self._wait_until("web", lambda: _status(f"{web_url}/admin/login/", verify=verify) == 200)
        self._register_callbacks(data, web_url)

        bulk_changes: list[BulkChange] = []
        if options.demo_bulk_change:
            bulk_changes = demo_bulk_changes_create(data=data)
        self._announce(web_url, data, bulk_changes)
        return [bulk_change.pk for bulk_change in bulk_changes]

    # -- the production rehearsal ---------------------------------------------------------

    @property
    def _rehearsal_dir(self) -> Path:
        return Path(settings.VAR_DIR) / "rehearsal"

    @property
    def _certificate_dir(self) -> Path:
        return self._rehearsal_dir / "tls"

    def _rehearsal_secrets(self) -> dict[str, str]:
        """DJANGO_SECRET_KEY and PONDOPS_FERNET_KEYS for the production processes: the
        environment's, else this machine's own, made once (mode 0600) and kept, so that the
        secrets encrypted by an earlier rehearsal still open. This process encrypts the demo's
        secrets with the same keys."""
        path = self._rehearsal_dir / "secrets.json"
        stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        if not stored:
            stored = {
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
                "PONDOPS_FERNET_KEYS": Fernet.generate_key().decode(),
            }
            self._rehearsal_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(json.dumps(stored))
        chosen = {name: os.environ.get(name) or value for name, value in stored.items()}
        settings.DJANGO_FERNETIX_KEYS = [
            key.strip() for key in chosen["PONDOPS_FERNET_KEYS"].split(",") if key.strip()
        ]
        return chosen

    def _production_environment(self) -> dict[str, str]:
        proxy = f"https://{HOST}:{self.options.proxy_port}"
        return {
            **self._secrets,
            "PONDOPS_ENVIRONMENT": "production",
            "DJANGO_ALLOWED_HOSTS": f"{HOST},localhost",
            "DJANGO_CSRF_TRUSTED_ORIGINS": f"{proxy},https://localhost:{self.options.proxy_port}",
            "PONDOPS_BEHIND_TLS_PROXY": "true",
            "PONDOPS_WEB_BIND": f"{HOST}:{self.options.web_port}",
        }

    def _start_production_web(self, environment: dict[str, str]) -> None:
        """collectstatic (a release step, in the production environment: hashed names), then
        gunicorn and the TLS proxy in front of it, on the certificate made before."""
        collect = subprocess.run(
            _manage("collectstatic", "--noinput", "--verbosity", "0"),
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "pondops.settings", **environment},
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
        if collect.returncode != 0:
            raise DevStackError(f"collectstatic failed: {collect.stderr.strip()[-500:]}")
        self.say(f"  static files collected into {_shown(Path(settings.STATIC_ROOT))}")
        gunicorn = [sys.executable, "-m", "gunicorn", "-c", "python:pondops.gunicorn_conf"]
        web_url = f"http://{HOST}:{self.options.web_port}"
        self._spawn("web", [*gunicorn, "pondops.wsgi"], url=web_url, extra_env=environment)
        proxy_url = f"https://{HOST}:{self.options.proxy_port}"
        proxy = [
            *(sys.executable, "-m", "pondops.tls_proxy"),
            *("--listen", f"{HOST}:{self.options.proxy_port}"),
            *("--upstream", f"{HOST}:{self.options.web_port}"),
            *("--cert-dir", str(self._certificate_dir)),
        ]
        self._spawn("tls_proxy", proxy, url=proxy_url, infrastructure=True)

    def _check_production_services(self) -> None:
        """The rehearsal runs on what production needs: PostgreSQL and Redis."""
        if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
            raise DevStackError(
                "the production rehearsal needs PostgreSQL: set DATABASE_URL (./dev prod "
                "defaults it to postgresql://127.0.0.1:5432/pondops)"
            )
        if not settings.REDIS_URL:
            raise DevStackError(
                "the production rehearsal needs Redis: set REDIS_URL (./dev prod defaults it "
                "to redis://127.0.0.1:6379/0)"
            )

    def _register_callbacks(self, data: DemoData, web_url: str) -> None:
        """Register the demo ThingSpace account's CarrierService listener on the local web
        server, as an operator does with ``register_carrier_callbacks`` (this process is the
        launcher: it takes the children's CARRIER_CALLBACK_BASE_URL for the registration)."""
        settings.CARRIER_CALLBACK_BASE_URL = web_url
        row = data.credentials[Integration.THINGSPACE.value]
        try:
            carrier_callback_register(credentials=row)
        except ApplicationError as error:
            self.say(f"  callbacks    ThingSpace not registered ({error}); polling only")
            return
        self.say(f"  callbacks    ThingSpace and Teal call back on {web_url}/carriers/…")

    def _create_queues(self, sqs_url: str) -> tuple[str, str]:
        """``create_queues`` against the local server. This process sends the demo bulk
        changes' messages itself, so its own settings point at the queue too."""
        settings.AWS_ENDPOINT_URL_SQS = sqs_url
        sqs.sqs_client.cache_clear()
        out = StringIO()
        call_command(
            "create_queues", "--visibility-timeout", str(QUEUE_VISIBILITY_SECONDS), stdout=out
        )
        urls = dict(line.split("=", 1) for line in out.getvalue().splitlines() if "=" in line)
        settings.PONDOPS_SQS_QUEUE_URL = urls["PONDOPS_SQS_QUEUE_URL"]
        settings.PONDOPS_SQS_DLQ_URL = urls["PONDOPS_SQS_DLQ_URL"]
        return urls["PONDOPS_SQS_QUEUE_URL"], urls["PONDOPS_SQS_DLQ_URL"]

    def _announce(self, web_url: str, data: DemoData, bulk_changes: list[BulkChange]) -> None:
        lines = [
            "",
            "PondOps is up. Ctrl-C stops everything.",
            f"  Admin:        {web_url}/admin/",
            f"  Login:        {data.admin_username} / {self.options.admin_password}",
        ]
        if self.options.production:
            certificate = _shown(self._certificate_dir / CERTIFICATE_FILE)
            lines += [
                "  Mode:         production (gunicorn behind a TLS proxy, PostgreSQL, Redis)",
                f"  Certificate:  {certificate} (self-signed; trust it or accept the warning)",
            ]
        if bulk_changes:
            lines.append("  Bulk changes: one per carrier")
        for bulk_change in bulk_changes:
            path = reverse("admin:bulkchanges_bulkchange_change", args=[bulk_change.pk])
            count = bulk_change.device_changes.count()
            target = bulk_change.request["UpdateStatus"]
            rev = ", each with a Rev.io service" if bulk_change.request.get("RevService") else ""
            lines.append(
                f"    {bulk_change.integration:<{_INTEGRATION_WIDTH}} {web_url}{path} "
                f"({count} devices -> {target}{rev})"
            )
        names = ", ".join(f"{child.name}.log" for child in self.children)
        lines += [f"  Logs:         {_shown(self.log_dir)}/ ({names})", ""]
        for line in lines:
            self.say(line)

    def _watch(self, bulk_change_ids: list[int]) -> None:
        """Until a signal: check the children; report each demo bulk change, one line each,
        once it is final."""
        started = time.monotonic()
        waiting = list(bulk_change_ids)
        while not self._stop_requested.wait(TICK):
            self._check_children()
            if not waiting:
                continue
            finished = BulkChange.objects.filter(pk__in=waiting, status__in=BulkChange.TERMINAL)
            for bulk_change in finished.order_by("pk"):
                self.say(_finished_line(bulk_change, time.monotonic() - started))
                waiting.remove(bulk_change.pk)

    # -- checks ---------------------------------------------------------------------------

    def _check_environment(self) -> None:
        """The demo writes a superuser with a known password and fake credentials: it runs
        only with PONDOPS_ENVIRONMENT=local, checked before anything touches a database. The
        loopback checks stay as a second layer: a local environment pointed at a remote
        database or Redis is a mistake too."""
        try:
            demo_environment_check()
        except DemoRefused as error:
            raise DevStackError(str(error)) from None
        database = settings.DATABASES["default"]
        host = str(database.get("HOST") or "")
        if not database["ENGINE"].endswith("sqlite3") and host and not _is_loopback(host):
            raise DevStackError(
                f"DATABASE_URL points at {host}; the demo runs only against a local database "
                "(unset DATABASE_URL for the embedded SQLite)"
            )
        if settings.REDIS_URL and not is_loopback_url(settings.REDIS_URL):
            raise DevStackError("REDIS_URL points off this machine; unset it for the demo")

    def _check_ports(self) -> None:
        options = self.options
        flags = [
            ("--web-port", options.web_port),
            ("--sqs-port", options.sqs_port),
            ("--simulator-port", options.simulator_port),
        ]
        if options.production:
            flags.append(("--proxy-port", options.proxy_port))
        ports = [port for _, port in flags]
        if len(set(ports)) != len(ports):
            raise DevStackError(" and ".join(flag for flag, _ in flags) + " must differ")
        for flag, port in flags:
            if not 0 < port < 65536:
                raise DevStackError(f"{flag} {port} is not a TCP port")
            if not _port_free(port):
                raise DevStackError(
                    f"port {port} on {HOST} is already in use (is another stack running?); "
                    f"choose another with {flag}"
                )

    def _check_stop(self) -> None:
        if self._stop_requested.is_set():
            raise _Interrupted

    def _check_children(self) -> None:
        for child in self.children:
            code = child.process.poll()
            if code is None:
                continue
            self.say(f"{child.name} exited unexpectedly with code {code}; last lines of its log:")
            for line in _tail(child.log, LOG_TAIL_LINES):
                self.say(f"  | {line}")
            raise DevStackError(f"{child.name} died (exit code {code}); see {_shown(child.log)}")

    def _wait_until(self, name: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            self._check_children()
            self._check_stop()
            if time.monotonic() > deadline:
                log = _shown(self.log_dir / f"{name}.log")
                raise DevStackError(
                    f"{name} did not answer within {START_TIMEOUT:.0f} s; see {log}"
                )
            time.sleep(TICK)

    # -- children -------------------------------------------------------------------------

    def _spawn(
        self,
        name: str,
        command: Sequence[str],
        *,
        url: str = "",
        infrastructure: bool = False,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        """Start a child in its own session (so Ctrl-C reaches only us, and we stop it in
        order) with its output in its log file."""
        self._check_stop()
        log = self.log_dir / f"{name}.log"
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "pondops.settings",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        with log.open("wb") as output:
            process = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=settings.BASE_DIR,
                env=environment,
                start_new_session=True,
            )
        self.children.append(_Child(name, process, log, infrastructure))
        self.say(f"  {name:<12} {url or '-':<26} pid {process.pid:<8} log {_shown(log)}")

    def _stop_children(self) -> None:
        """Workers first (they drain against the queue and the simulators), then the rest."""
        if any(child.process.poll() is None for child in self.children):
            self.say("stopping...")
        workers = [child for child in self.children if not child.infrastructure]
        infrastructure = [child for child in self.children if child.infrastructure]
        self._terminate(workers, STOP_TIMEOUT)
        self._terminate(infrastructure, INFRASTRUCTURE_STOP_TIMEOUT)

    def _terminate(self, children: list[_Child], timeout: float) -> None:
        for child in children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while (
            any(child.process.poll() is None for child in children)
            and time.monotonic() < deadline
            and not self._hurry.is_set()
        ):
            time.sleep(0.1)
        for child in children:
            if child.process.poll() is None:
                self.say(f"{child.name} did not stop within {timeout:.0f} s; killing it")
            # Whatever is left in the child's process group (qcluster's workers) goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()


def _manage(*args: str) -> list[str]:
    return [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args]


def _status(url: str, *, verify: str | bool = True) -> int | None:
    """The HTTP status ``url`` answers with, or None while nothing answers (``verify``: the
    certificate file an https URL is checked against)."""
    try:
        return requests.get(url, timeout=2, verify=verify).status_code
    except requests.RequestException:
        return None


def _simulator_answers(control: SimulatorControl) -> bool:
    try:
        control.stats()
    except (requests.RequestException, SimulatorControlError):
        return False
    return True


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _is_loopback(host: str) -> bool:
    """A database host on this machine: a loopback host (an IPv6 one may keep its brackets)
    or a Unix socket directory."""
    return host.startswith("/") or is_loopback_host(host.strip("[]"))


def _describe(data: DemoData) -> str:
    carriers = ", ".join(
        f"{integration} {len(devices)}" for integration, devices in data.devices.items()
    )
    return f'tenant "{data.tenant.name}", SIMs {carriers}; Rev.io client {data.rev.account}'


_INTEGRATION_WIDTH = 10  # the longest carrier code, THINGSPACE and TELEGENCE


def _finished_line(bulk_change: BulkChange, elapsed: float) -> str:
    """``demo bulk change 3 JASPER     finished: PROCESSED (20 processed, 0 skipped, ...)``."""
    counts = bulk_change_progress(bulk_change_id=bulk_change.pk).counts
    summary = ", ".join(f"{counts[status]} {status.lower()}" for status in FINISHED_ORDER)
    return (
        f"demo bulk change {bulk_change.pk} {bulk_change.integration:<{_INTEGRATION_WIDTH}} "
        f"finished: {bulk_change.status} ({summary}) in {elapsed:.1f} s"
    )


def _tail(path: Path, lines: int) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it."""
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)
