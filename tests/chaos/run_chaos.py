"""The chaos script: runs the scenarios of ``tests/chaos/scenarios.py`` against the current code
and prints one table (issue 11 item 9; the figures a before/after note quotes).

    .venv/bin/python tests/chaos/run_chaos.py [--devices 2000] [--scenarios baseline,kill-group]
        [--redis] [--redis-db 14] [--database postgresql|sqlite] [--run-timeout 900]
        [--keep-logs]

Each run gets a database of its own — ``pondops_chaos_<pid>`` on the PostgreSQL server of
``DATABASE_URL`` (default postgresql://root@127.0.0.1:5432/postgres), dropped at the end, or a
temporary SQLite file — and each scenario a stack of its own (see ``harness.py``): moto, the
simulators, qcluster, poll_sqs and run_reaper subprocesses, on production settings except the
reaper's interval (2 s). ``--redis`` adds ``redis-baseline`` and ``redis-kill-group``: two
qcluster + two poll_sqs with ``REDIS_URL=redis://127.0.0.1:6379/<--redis-db>`` (that database
is emptied with FLUSHDB first). Every wait is bounded; a run that passes ``--run-timeout`` is
reported as "did not finish" and cancelled. Exit status: 0 every criterion met, 1 one missed,
2 the script could not run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_SCENARIOS = (
    "baseline",
    "kill-group",
    "kill-master",
    "kill-poller",
    "sqs-down",
    "db-cut",
    "carrier-faults",
)
REDIS_SCENARIOS = ("redis-baseline", "redis-kill-group")
COLUMNS = (
    "scenario",
    "devices",
    "baseline s",
    "run s",
    "recovery s",
    "final",
    "dup writes",
    "dup Rev",
    "calls",
    "audit rows",
    "429s",
    "verdict",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument(
        "--scenarios",
        type=lambda text: [part.strip() for part in text.split(",") if part.strip()],
        default=None,
        help=f"comma-separated, in order (default {','.join(DEFAULT_SCENARIOS)}; with --redis "
        f"also {','.join(REDIS_SCENARIOS)})",
    )
    parser.add_argument("--redis", action="store_true", help="add the Redis-mode scenarios")
    parser.add_argument("--redis-db", type=int, default=14, help="Redis database number (not 0)")
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--run-timeout", type=float, default=900, help="bound on each run, s")
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=None,
        help="the uninterrupted run's time from an earlier invocation (instead of running "
        "baseline again)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    options = parser.parse_args(argv)
    if options.scenarios is None:
        options.scenarios = list(DEFAULT_SCENARIOS) + (
            list(REDIS_SCENARIOS) if options.redis else []
        )
    known = set(DEFAULT_SCENARIOS) | set(REDIS_SCENARIOS)
    unknown = sorted(set(options.scenarios) - known)
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {sorted(known)}")
    if options.redis_db < 1 or options.devices < 10:
        parser.error("--redis-db must be 1..15 and --devices at least 10")
    return options


class Database:
    """A database of this run's own; dropped (PostgreSQL) or deleted (SQLite) at the end."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.admin: dict[str, Any] | None = None
        self.name = f"pondops_chaos_{os.getpid()}"
        if kind == "sqlite":
            self.url = f"sqlite:///{workdir / 'chaos.sqlite3'}"
            return
        import psycopg

        server = os.environ.get("DATABASE_URL", "")
        if not server.startswith("postgres"):
            server = "postgresql://root@127.0.0.1:5432/postgres"
        parts = urlsplit(server)
        self.admin = {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 5432,
            "user": parts.username or "root",
            "dbname": "postgres",
        }
        with psycopg.connect(**self.admin, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {self.name}")
        self.url = parts._replace(path=f"/{self.name}").geturl()

    def drop(self) -> None:
        if self.admin is None:
            return
        import psycopg
        from django.db import connections

        connections.close_all()
        with psycopg.connect(**self.admin, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def setup_django(database_url: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "pondops.settings"
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("PONDOPS_LOG_LEVEL", "WARNING")  # this process only
    os.environ.pop("REDIS_URL", None)  # this process reads the database; workers get Redis
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)


def row(outcome: Any, baseline: float | None) -> list[str]:
    from tests.chaos.scenarios import _s

    f = outcome.figures
    if f is None:
        return [outcome.scenario, "", "", "", "", "", "", "", "", "", "", f"ERROR: {outcome.error}"]
    audit = f"{f.audit_rows}"
    if f.in_flight_rows or f.no_response_rows:
        audit += f" ({f.in_flight_rows} in flight, {f.no_response_rows} no response)"
    return [
        outcome.scenario,
        str(f.devices),
        "" if baseline is None else f"{baseline:.1f}",
        _s(f.elapsed),
        recovery_cell(f),
        f"{f.final}/{f.devices} {f.status}",
        f"{f.duplicate_writes} (≤ {f.write_allowance})",
        str(f.duplicate_rev_services),
        str(f.calls),
        audit,
        str(f.rate_limited),
        "PASS" if outcome.passed else "FAIL: " + "; ".join(outcome.failures()),
    ]


def recovery_cell(f: Any) -> str:
    """Recovery (first progress after the fault's end) and the longest stall after the fault."""
    recovery = "" if f.recovery is None else f"{f.recovery:.1f}"
    if f.longest_stall is None:
        return recovery
    return f"{recovery or 'none'} (longest stall {f.longest_stall:.0f})"


def print_table(rows: list[list[str]]) -> None:
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for cells in rows:
        print("| " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(130))
    workdir = Path(tempfile.mkdtemp(prefix="pondops-chaos-"))
    database: Database | None = None
    try:
        database = Database(options.database, workdir)
        setup_django(database.url)
        from tests.bench.bench_pipeline import code_version
        from tests.chaos import scenarios
        from tests.chaos.harness import StackOptions

        config = scenarios.ChaosConfig(
            devices=options.devices,
            database_url=database.url,
            workdir=workdir,
            options=StackOptions(),
            redis_url=f"redis://127.0.0.1:6379/{options.redis_db}",
            run_timeout=options.run_timeout,
            report=lambda line: print(line, flush=True),
        )
        code = code_version()
        print(
            f"chaos: code {code}, {options.devices} devices, database {options.database}, "
            f"scenarios {','.join(options.scenarios)}; logs in {workdir}",
            flush=True,
        )
        rows: list[list[str]] = []
        outcomes: list[Any] = []
        redis_baseline: float | None = None
        for name in options.scenarios:
            if options.database == "sqlite" and scenarios.needs_postgresql(name):
                rows.append([name, "", "", "", "", "", "", "", "", "", "", "skipped (SQLite)"])
                continue
            redis = name in REDIS_SCENARIOS
            config.baseline = (
                redis_baseline if redis else db_baseline(outcomes) or options.baseline_seconds
            )
            print(f"chaos: {name} ...", flush=True)
            if redis:
                outcome = scenarios.redis_scenario(name, config)
            else:
                outcome = scenarios.SCENARIOS[name](config)
            outcomes.append(outcome)
            if name == "redis-baseline" and outcome.figures is not None:
                redis_baseline = outcome.figures.elapsed
            rows.append(row(outcome, config.baseline))
            print(outcome.explain().split("\n  figures:")[0], flush=True)
            if outcome.error:
                print(outcome.logs[-6000:], flush=True)
        print()
        print(
            f"Code {code}; {os.cpu_count()} cores (shared: other work may be running); "
            f"{options.database}; {options.devices} POND devices with a Rev.io service each; "
            "POND 50 req/s, Rev.io 70 req/s, max_concurrency 4, 2 workers a cluster, 20 ms "
            "simulator latency; production lease/retry settings; run_reaper --interval 2."
        )
        print()
        print_table(rows)
        print()
        print(
            "Criteria: every device final; no duplicate Rev.io service; duplicate carrier "
            "writes (per-ICCID write requests beyond one) <= devices in flight at the fault + "
            "writes the simulator faulted or refused with 429; carrier calls (simulator "
            "request counters) == audit rows (BulkChangeLog rows carrying a request); "
            f"kill-group/kill-master: progress within {scenarios.RECOVERY_AFTER_KILL:.0f}s of "
            f"the restart and finished within {scenarios.FINISH_MARGIN:.0f}s of the baseline; "
            f"kill-master: no process of its group alive {scenarios.ORPHAN_DEADLINE:.0f}s "
            f"after; sqs-down/kill-poller: a message sent after the fault consumed within "
            f"{scenarios.RECOVERY_AFTER_SQS:.0f}s, pollers alive; db-cut: progress within "
            f"{scenarios.RECOVERY_AFTER_DB_CUT:.0f}s of the restore. Recovery s = fault end "
            "(restart, queue back, database back, faults used up) to the first sample (0.5 s) "
            "with more devices final; for sqs-down/kill-poller the probe's consumption."
        )
        return 0 if all(o.passed for o in outcomes) else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        print(f"chaos script failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    finally:
        if database is not None:
            try:
                database.drop()
            except Exception as error:
                print(f"could not drop {database.name}: {error}", file=sys.stderr)
        if not options.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)


def db_baseline(outcomes: list[Any]) -> float | None:
    for outcome in outcomes:
        if outcome.scenario == "baseline" and outcome.figures is not None:
            return float(outcome.figures.elapsed) if outcome.figures.elapsed else None
    return None


if __name__ == "__main__":
    sys.exit(main())
