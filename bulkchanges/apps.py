from __future__ import annotations

from importlib import import_module
from typing import Any

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


class BulkChangesConfig(AppConfig):
    name = "bulkchanges"
    verbose_name = "Bulk changes"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_ensure_reaper_schedule, sender=self)


class PondOpsAdminConfig(admin_apps.AdminConfig):
    """Django's admin with PondOps' site (``bulkchanges/admin/site.py``) as the default site;
    INSTALLED_APPS lists it in place of ``django.contrib.admin``."""

    default = False  # for the "bulkchanges" entry Django picks BulkChangesConfig
    default_site = "bulkchanges.admin.site.PondOpsAdminSite"

    def ready(self) -> None:
        # Importing bulkchanges.admin registers its model admins on the default site, whose
        # class lives in that package. Import it before autodiscovery first touches the
        # default site: the first registration then builds the site once. The other way
        # round, building the site imports the package, whose registrations build it a
        # second time — on an instance the first build then replaces.
        import_module("bulkchanges.admin")
        super().ready()


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
