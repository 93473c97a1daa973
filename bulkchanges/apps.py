from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class BulkChangesConfig(AppConfig):
    name = "bulkchanges"
    verbose_name = "Bulk changes"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_ensure_reaper_schedule, sender=self)


def _ensure_reaper_schedule(**kwargs: Any) -> None:
    """Keep the reaper's django-q2 schedule in step with BULKCHANGE_REAPER_INTERVAL_SECONDS
    (django-q2 schedules in whole minutes; shorter intervals round up to one minute — tests
    and operators use ``reap_once``)."""
    from django.conf import settings
    from django.db import connection
    from django_q.models import Schedule

    if Schedule._meta.db_table not in connection.introspection.table_names():
        return  # a partial migrate: django-q2's tables do not exist yet

    minutes = max(1, round(settings.BULKCHANGE_REAPER_INTERVAL_SECONDS / 60))
    Schedule.objects.update_or_create(
        name="bulkchanges-reaper",
        defaults={
            "func": "bulkchanges.tasks.reap",
            "schedule_type": Schedule.MINUTES,
            "minutes": minutes,
            "repeats": -1,
        },
    )
