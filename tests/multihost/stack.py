"""Two hosts sharing one PondOps deployment's services: the chaos harness's stack, with its
workers moved into network namespaces (:mod:`tests.multihost.netns`).

The shared services stay where the chaos harness starts them, on this machine's loopback:
PostgreSQL and Redis (never reconfigured), moto's SQS server and the carrier simulators (each a
subprocess on a free 127.0.0.1 port). Each host gets a forwarder on the host side of its veth
(:mod:`tests.multihost.forwarder`, a subprocess, the same port numbers) and runs ``manage.py
qcluster``, ``manage.py poll_sqs`` and ``manage.py run_reaper`` inside its namespace, with every
URL (``DATABASE_URL``, ``REDIS_URL``, the SQS endpoint and queue URLs) on its forwarder's
address, and the credentials' ``base_url`` on ``pondops-services``, which each namespace's
``/etc/hosts`` maps to that same address. This process reads the database and the simulators
directly on loopback, so it keeps watching while a host is cut off.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.bench.bench_pipeline import wait_for as wait_until
from tests.bench.bench_pipeline import worker_environment
from tests.chaos.harness import ROOT, ChaosStack, Proc, StackOptions, free_port
from tests.multihost.netns import SERVICES_NAME, NetnsHost


def _on(url: str, address: str) -> str:
    """``url`` with its loopback host replaced by ``address`` (port, path and user kept)."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return parts._replace(netloc=f"{user}{address}:{parts.port}").geturl()


class TwoHostStack(ChaosStack):
    """:class:`ChaosStack` whose qcluster / poll_sqs / run_reaper run on ``hosts``; Redis is
    required (``options.redis_url``): the broker, cache and limiters every host shares."""

    def __init__(
        self, *, database_url: str, workdir: Path, options: StackOptions, hosts: list[NetnsHost]
    ) -> None:
        if not options.redis_url or not database_url.startswith("postgres"):
            raise ValueError("two hosts share PostgreSQL and Redis: give both")
        super().__init__(database_url=database_url, workdir=workdir, options=options)
        self.hosts = hosts
        self.host_of: dict[int, NetnsHost] = {}  # Popen pid -> the host it runs on

    @property
    def carrier_origin(self) -> str:
        return f"http://{SERVICES_NAME}:{urlsplit(self.simulator_url).port}"

    def start(self) -> None:
        self.redis_flush()
        self.moto_port = free_port()
        self.sqs_up()
        self.start_simulators()
        self.make_world()
        for host in self.hosts:
            self.start_forwarder(host)
        for host in self.hosts:
            for command in ("qcluster", "poll_sqs", "run_reaper"):
                self.start_on(host, command)
        self.wait_ready()

    def forwarded_ports(self) -> list[int]:
        database = urlsplit(self.database_url)
        redis = urlsplit(self.options.redis_url)
        simulators = urlsplit(self.simulator_url)
        return [database.port or 5432, redis.port or 6379, self.moto_port, simulators.port or 0]

    def start_forwarder(self, host: NetnsHost) -> Proc:
        log = self.workdir / f"forwarder-{host.name}.log"
        argv = ["-m", "tests.multihost.forwarder", "--listen", host.host_address]
        for port in self.forwarded_ports():
            argv += ["--port", str(port)]
        process = subprocess.Popen(
            [sys.executable, *argv],
            cwd=ROOT,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Proc(f"forwarder-{host.name}", process, log)
        self.procs.append(proc)
        wait_until(
            lambda: "forwarding" in log.read_text() or process.poll() is not None,
            timeout=30,
            message=f"the forwarder of {host.name}",
        )
        if process.poll() is not None:
            raise RuntimeError(f"the forwarder of {host.name} exited: {log.read_text()}")
        return proc

    def host_env(self, host: NetnsHost) -> dict[str, str]:
        """The worker environment of ``host``: every shared service on its forwarder."""
        address = host.host_address
        env = worker_environment(
            database_url=_on(self.database_url, address),
            moto_url=f"http://{address}:{self.moto_port}",
            queue_urls={name: _on(url, address) for name, url in self.queue_urls.items()},
            workers=self.options.workers,
            redis_url=_on(self.options.redis_url, address),
            extra={
                "PONDOPS_Q_POLL_SECONDS": "0.3",
                "PONDOPS_CARRIER_EXTRA_ORIGINS": f"http://{SERVICES_NAME}:*",
                # moto's dummy keys: the endpoint is not loopback from a host, so the app
                # takes credentials from boto3's chain (the environment here) as in production.
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                **self.options.env,
            },
        )
        env.pop("PONDOPS_WEBHOOK_EXTRA_ORIGINS", None)
        return env

    def start_on(self, host: NetnsHost, command: str) -> Proc:
        """``manage.py <command>`` inside ``host`` (a session of its own, as the harness's)."""
        args = [command]
        if command == "run_reaper":
            args += ["--interval", str(self.options.reaper_interval)]
        proc = self.spawn(
            command, *args, env=self.host_env(host), prefix=host.prefix(), label=f"-{host.name}"
        )
        self.host_of[proc.process.pid] = host
        return proc

    def on_host(self, host: NetnsHost) -> list[Proc]:
        return [p for p in self.procs if self.host_of.get(p.process.pid) is host]

    def bulk_change(self, numbers: list[str]) -> Any:
        """A POND bulk change (no Rev.io service: three POND requests a device, so POND's
        limit is the one every host shares)."""
        from tests.conftest import PondWorld, create_bulk_change

        with self.control() as control:
            world = PondWorld(self.tenant, self.pond, self.rev, control)
            return create_bulk_change(world, numbers, with_rev=False)
