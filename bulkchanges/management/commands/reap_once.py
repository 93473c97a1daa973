"""``manage.py reap_once`` — one recovery pass (reaper and webhook sweep), now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from bulkchanges.services.recovery import recovery_pass


class Command(BaseCommand):
    help = "Run one recovery pass: expired leases, overdue retries, stalled bulk changes, webhooks."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(str(recovery_pass()))
