from __future__ import annotations

from typing import Any

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


class PartnerApiConfig(AppConfig):
    """The partner API: no models of its own (they live in ``bulkchanges``, their admin pages
    in ``bulkchanges/admin/partners.py``); keeps the completion-webhook sweep scheduled."""

    name = "bulkchanges.api"
    label = "bulkchanges_api"
    verbose_name = "Partner API"

    def ready(self) -> None:
        # post_migrate is sent only for apps with models: hang on to the domain app's.
        post_migrate.connect(
            _ensure_webhook_sweep,
            sender=apps.get_app_config("bulkchanges"),
            dispatch_uid="bulkchanges-api-webhook-sweep",
        )


def _ensure_webhook_sweep(using: str = "default", **kwargs: Any) -> None:
    from django.db import connections
    from django_q.models import Schedule

    from bulkchanges.services.webhooks import webhook_sweep_schedule_ensure

    # A partial migrate (one app, or back to an old state) may run before django-q2's tables.
    if Schedule._meta.db_table in connections[using].introspection.table_names():
        webhook_sweep_schedule_ensure()
