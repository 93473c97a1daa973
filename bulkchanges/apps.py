from __future__ import annotations

from importlib import import_module
from typing import Any

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.core import checks
from django.db.models.signals import post_migrate

# The names under which earlier releases scheduled the reaper and the webhook sweep.
LEGACY_RECOVERY_SCHEDULES = ("bulkchanges-reaper", "bulkchanges-webhook-sweep")


class BulkChangesConfig(AppConfig):
    name = "bulkchanges"
    verbose_name = "Operations"  # the breadcrumb above "Bulk changes", "Audit log", …
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_remove_recovery_schedules, sender=self)
        import_module("pondops.startup")  # registers check --deploy's demo-password check
        from bulkchanges.checks import timings_check

        checks.register(timings_check, "pondops")  # pondops.E010-E015: the timing settings


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


def _remove_recovery_schedules(**kwargs: Any) -> None:
    """Recovery runs in ``manage.py run_reaper`` now, not on the work queue (where a backlog
    held it back): remove the django-q2 schedules earlier releases kept for it."""
    from django.db import connection
    from django_q.models import Schedule

    if Schedule._meta.db_table not in connection.introspection.table_names():
        return  # a partial migrate: django-q2's tables do not exist yet
    Schedule.objects.filter(name__in=LEGACY_RECOVERY_SCHEDULES).delete()
