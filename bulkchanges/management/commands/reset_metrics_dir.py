"""``manage.py reset_metrics_dir`` — empty the host's Prometheus multiprocess directory before
its processes start (docs/operations/observability.md)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from pondops.metrics import metrics_directory_reset


class Command(BaseCommand):
    help = (
        "Empty PROMETHEUS_MULTIPROC_DIR (or --dir), creating it if needed. Run it once per host "
        "before gunicorn, qcluster, poll_sqs and run_reaper start, never while they run: a "
        "running process's counters would vanish from /metrics."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dir", default="", help="default: PROMETHEUS_MULTIPROC_DIR")

    def handle(self, *args: Any, **options: Any) -> None:
        directory = options["dir"] or settings.PROMETHEUS_MULTIPROC_DIR
        if not directory:
            raise CommandError("PROMETHEUS_MULTIPROC_DIR is not set (or pass --dir)")
        removed = metrics_directory_reset(directory)
        self.stdout.write(f"{directory}: {removed} metrics files removed")
