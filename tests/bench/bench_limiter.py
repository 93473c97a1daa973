"""Limiter benchmark: a script that prints figures (never a timed test).

    .venv/bin/python tests/bench/bench_limiter.py [--rate 40] [--seconds 10] [--processes 2]
        [--threads 4] [--concurrency 4] [--latency-ms 20] [--backends sqlite,postgresql,redis]
        [--redis-url redis://127.0.0.1:6379/14]

For each backend of the shared limiter — database rows on SQLite (a temporary file), database
rows on PostgreSQL (a database ``pondops_bench_limiter`` created on the server of
``DATABASE_URL``, dropped afterwards; only when DATABASE_URL is PostgreSQL) and Redis — P sender
processes (tests/fixtures/limiter_sender.py) of T threads share one set of credentials' limits
(rate R, C concurrent calls) and send about R·seconds POND reads to the carrier simulator,
whose account enforces a strict sliding one-second window at R (``rate_window: sliding``) with
the given latency. Printed per backend: requests/s ÷ R in the steady part of the run (the
answers from the 10th to the 90th percentile of their times: the start and the tail, where
fewer threads are left than the rate needs, are the benchmark's, not the limiter's), the same
over the whole run (from the common start to the last answer), the 429s, the most requests the
simulator received within any trailing second, and the rate slots the senders gave up to late
wake-ups.

Everything binds to 127.0.0.1; every wait is bounded; every subprocess is stopped (and the
PostgreSQL database dropped) at the end. Exit status: 0 every backend had no 429 and at least
0.9 of the limit, 1 one did not, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from integrations.simulators import SimulatorServer  # noqa: E402
from integrations.simulators.control import SimulatorControl  # noqa: E402

# Unique to the run: two runs on one machine must not drop each other's database.
BENCH_DB = f"pondops_bench_limiter_{os.getpid()}_{uuid.uuid4().hex[:6]}"
LOOPBACK = "127.0.0.1"
DISTRIBUTOR = "7000"
POND_KEY = "bench-limiter-key-2b9f"
ICCID = "89148000000000000042"
TARGET_RATIO = 0.9
STEADY = (0.10, 0.90)
SENDER = ROOT / "tests" / "fixtures" / "limiter_sender.py"


class BenchError(RuntimeError):
    pass


@dataclass
class Result:
    backend: str
    answered: int
    elapsed: float
    steady: float  # requests/s in the 10 to 90 % part
    rate_limited: int
    max_in_1s: int
    slots_given_up: int
    rate: float

    @property
    def ratio(self) -> float:
        return self.answered / self.elapsed / self.rate

    @property
    def steady_ratio(self) -> float:
        return self.steady / self.rate

    @property
    def passed(self) -> bool:
        return (
            self.rate_limited == 0
            and self.max_in_1s <= self.rate
            and self.steady_ratio >= TARGET_RATIO
        )


def migrate(database_url: str) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--verbosity", "0"],
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "pondops.settings",
        },
        cwd=ROOT,
        check=True,
        timeout=300,
    )


def postgres_admin(url: str) -> dict[str, Any]:
    import dj_database_url

    conf = dj_database_url.parse(url)
    return {
        "host": conf.get("HOST") or LOOPBACK,
        "port": conf.get("PORT") or 5432,
        "user": conf.get("USER") or None,
        "password": conf.get("PASSWORD") or None,
        "dbname": "postgres" if conf["NAME"].startswith("pondops_bench") else conf["NAME"],
    }


def redis_up(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def run_senders(
    options: argparse.Namespace, *, backend: str, database_url: str, url: str
) -> tuple[int, float, float, int]:
    """Start the senders, let them go together; (answered, seconds, steady requests/s, slots
    given up)."""
    key = f"bench-{uuid.uuid4().hex}"
    each = math.ceil(options.rate * options.seconds / (options.processes * options.threads))
    argv = [sys.executable, str(SENDER), "send", "--backend", backend, "--key", key]
    argv += ["--redis-url", options.redis_url, "--rate", str(options.rate)]
    argv += ["--concurrency", str(options.concurrency), "--url", url, "--api-key", POND_KEY]
    argv += ["--threads", str(options.threads), "--requests", str(each)]
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "pondops.settings"}
    env.pop("REDIS_URL", None)
    senders = [
        subprocess.Popen(
            argv, env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(options.processes)
    ]
    try:
        for sender in senders:
            assert sender.stdout is not None
            if sender.stdout.readline().strip() != "ready":
                raise BenchError(f"a {backend} sender did not start (exit {sender.poll()})")
        started = time.monotonic()
        for sender in senders:
            assert sender.stdin is not None
            sender.stdin.write("go\n")
            sender.stdin.flush()
        reports = []
        for sender in senders:
            output, _ = sender.communicate(timeout=options.seconds * 10 + 60)
            reports.append(json.loads(output.strip().splitlines()[-1]))
        elapsed = time.monotonic() - started
    finally:
        for sender in senders:
            if sender.poll() is None:
                sender.kill()
                sender.wait(timeout=10)
    answered = sum(sum(report["statuses"].values()) for report in reports)
    given_up = sum(int(report["slots_given_up"]) for report in reports)
    times = sorted(float(moment) for report in reports for moment in report["answered_at"])
    first, last = int(len(times) * STEADY[0]), int(len(times) * STEADY[1])
    span = times[last] - times[first] if last > first else 0.0
    steady = (last - first) / span if span > 0 else 0.0
    return answered, elapsed, steady, given_up


def run_backend(
    options: argparse.Namespace,
    control: SimulatorControl,
    *,
    name: str,
    backend: str,
    database_url: str,
) -> Result:
    control.reset()
    control.config(latency_ms=options.latency_ms)
    control.add_pond_account(
        distributor_id=DISTRIBUTOR, api_key=POND_KEY, rate_limit=options.rate, rate_window="sliding"
    )
    control.seed_pond_sims(
        distributor_id=DISTRIBUTOR, sims=[{"iccid": ICCID, "services": "ENABLED"}]
    )
    url = f"{control.pond_base_url}/{DISTRIBUTOR}/sim/{ICCID}/status"
    answered, elapsed, steady, given_up = run_senders(
        options, backend=backend, database_url=database_url, url=url
    )
    stats = control.stats()["pond"]
    return Result(
        backend=name,
        answered=answered,
        elapsed=elapsed,
        steady=steady,
        rate_limited=int(stats["rate_limited"]),
        max_in_1s=int(stats["max_requests_in_1s"]),
        slots_given_up=given_up,
        rate=options.rate,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=40)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--backends", default="sqlite,postgresql,redis")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    options = parser.parse_args(argv)
    wanted = [name.strip() for name in options.backends.split(",") if name.strip()]

    workdir = Path(tempfile.mkdtemp(prefix="pondops-bench-limiter-"))
    server = SimulatorServer(host=LOOPBACK, port=0).start()
    control = SimulatorControl(server.url)
    results: list[Result] = []
    admin: dict[str, Any] | None = None
    try:
        for name in wanted:
            if name == "sqlite":
                url = f"sqlite:///{workdir / 'bench.sqlite3'}"
                migrate(url)
                results.append(
                    run_backend(
                        options, control, name="SQLite", backend="database", database_url=url
                    )
                )
            elif name == "postgresql":
                base = os.environ.get("DATABASE_URL", "")
                if not base.startswith("postgres"):
                    print("PostgreSQL: skipped (DATABASE_URL is not PostgreSQL)")
                    continue
                import psycopg

                admin = postgres_admin(base)
                with psycopg.connect(**admin, autocommit=True) as connection:
                    connection.execute(f"CREATE DATABASE {BENCH_DB}")
                url = urlsplit(base)._replace(path=f"/{BENCH_DB}").geturl()
                migrate(url)
                results.append(
                    run_backend(
                        options, control, name="PostgreSQL", backend="database", database_url=url
                    )
                )
            elif name == "redis":
                if not redis_up(options.redis_url):
                    print(f"Redis: skipped (nothing answers at {options.redis_url})")
                    continue
                url = f"sqlite:///{workdir / 'bench-redis.sqlite3'}"
                migrate(url)  # the senders' Django needs a database, though the limits are in Redis
                results.append(
                    run_backend(options, control, name="Redis", backend="redis", database_url=url)
                )
            else:
                raise BenchError(f"unknown backend {name!r} (sqlite, postgresql, redis)")
    except (BenchError, subprocess.SubprocessError, OSError) as error:
        print(f"bench_limiter: {error}", file=sys.stderr)
        return 2
    finally:
        control.close()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if admin is not None:
            import psycopg

            with psycopg.connect(**admin, autocommit=True) as connection:
                connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")

    print(
        f"\nLimiter: {options.processes} processes x {options.threads} threads, "
        f"rate {options.rate:g}/s, {options.concurrency} concurrent, simulator latency "
        f"{options.latency_ms} ms, strict sliding 1 s window, ~{options.seconds:g} s a backend\n"
    )
    print(
        "| backend | req/s ÷ limit, steady (whole run) | 429s | max requests in any 1 s "
        "| slots given up | verdict |"
    )
    print("|---|---|---|---|---|---|")
    for result in results:
        verdict = "PASS" if result.passed else "FAIL"
        print(
            f"| {result.backend} | {result.steady_ratio:.3f} ({result.ratio:.3f}) | "
            f"{result.rate_limited} | {result.max_in_1s} | {result.slots_given_up} | {verdict} |"
        )
    return 0 if all(result.passed for result in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
