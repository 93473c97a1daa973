"""``manage.py reap_once`` — one pass of the reaper, now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from bulkchanges import tasks


class Command(BaseCommand):
    help = "Run one reaper pass: expired leases, overdue retries, stalled bulk changes."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"reaper: {tasks.reap()}")
