from __future__ import annotations

from django.apps import AppConfig


class PartnerApiConfig(AppConfig):
    """The partner API: no models of its own (they live in ``bulkchanges``, their admin pages
    in ``bulkchanges/admin/partners.py``); its webhook sweep runs in
    ``manage.py run_reaper``."""

    name = "bulkchanges.api"
    label = "bulkchanges_api"
    verbose_name = "Partner API"
