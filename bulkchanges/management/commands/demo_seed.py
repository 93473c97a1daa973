"""``manage.py demo_seed --simulator-url URL [--admin-password P] [--no-demo-bulk-change]``.

The demo's data for a stack whose processes run apart — compose's ``demo`` profile, where the
simulators, the web and the workers are separate containers — while ``run_demo`` starts and
seeds everything in one process tree. Same data as ``run_demo`` (``demo_seed``: the ``admin``
superuser, the tenant, credentials for every carrier pointing at the simulators, devices),
then one demo bulk change per carrier unless ``--no-demo-bulk-change``.

Refuses outside ``PONDOPS_ENVIRONMENT=local`` before writing anything, and when the
simulators' origin is not in ``PONDOPS_CARRIER_EXTRA_ORIGINS``: the workers, which read the
same environment, could not reach them.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulkchanges.errors import ApplicationError
from bulkchanges.management.commands.run_demo import ADMIN_LOGIN_VARIABLE
from bulkchanges.services.demo import (
    DEMO_ADMIN_PASSWORD,
    demo_bulk_changes_create,
    demo_environment_check,
    demo_seed,
)
from integrations.base.origins import matching, origins_parse
from integrations.simulators.control import SimulatorControl


class Command(BaseCommand):
    help = "Seed the demo data against running simulators (compose's demo profile)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--simulator-url", required=True, help="where every process reaches the simulators"
        )
        parser.add_argument(
            "--admin-password",
            default="",
            help=f"else ${ADMIN_LOGIN_VARIABLE}, else {DEMO_ADMIN_PASSWORD!r}; set on every run",
        )
        parser.add_argument("--no-demo-bulk-change", action="store_false", dest="bulk_changes")

    def handle(self, *args: Any, **options: Any) -> None:
        simulator_url = options["simulator_url"].rstrip("/")
        try:
            demo_environment_check()
        except ApplicationError as error:
            raise CommandError(str(error)) from error
        extra_origins = origins_parse(settings.PONDOPS_CARRIER_EXTRA_ORIGINS)
        if matching(simulator_url, extra_origins) is None:
            parts = urlsplit(simulator_url)
            raise CommandError(
                f"set PONDOPS_CARRIER_EXTRA_ORIGINS={parts.scheme}://{parts.netloc} for every "
                "process (the workers call the simulators there; only carriers' known origins are "
                "allowed otherwise)"
            )
        password = (
            options["admin_password"] or os.environ.get(ADMIN_LOGIN_VARIABLE) or DEMO_ADMIN_PASSWORD
        )
        with SimulatorControl(simulator_url) as control:
            data = demo_seed(
                simulator=control, simulator_url=simulator_url, admin_password=password
            )
        devices = sum(len(rows) for rows in data.devices.values())
        self.stdout.write(
            f"demo data: tenant {data.tenant.name!r}, user {data.admin_username!r}, "
            f"{len(data.credentials)} credentials rows, {devices} devices"
        )
        if options["bulk_changes"]:
            for bulk_change in demo_bulk_changes_create(data=data):
                self.stdout.write(f"demo bulk change {bulk_change.pk} {bulk_change.integration}")
