"""``manage.py run_demo [--web-port N] [--sqs-port N] [--simulator-port N] [--admin-password P]
[--no-demo-bulk-change]`` — the whole system locally, in the foreground, until Ctrl-C.

Seeds demo credentials and SIMs for every carrier (POND, ThingSpace, Jasper, Telegence, Teal)
and queues one demo bulk change per carrier unless ``--no-demo-bulk-change``. What it starts
and in which order lives in :mod:`pondops.devstack`; this command only parses the flags.
``./dev up`` runs it; ``./dev prod`` runs it with ``--production``, the production layout
(gunicorn behind a TLS proxy, workers in production mode, PostgreSQL and Redis; see
:mod:`pondops.devstack`), where the admin's password is generated on every start unless given.
It refuses to run unless ``PONDOPS_ENVIRONMENT`` is ``local`` (the
default), before touching any database.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulkchanges.services.demo import DEMO_ADMIN_PASSWORD
from pondops.devstack import DevStack, DevStackError, DevStackOptions

ADMIN_LOGIN_VARIABLE = "PONDOPS_DEMO_PASSWORD"


class Command(BaseCommand):
    help = (
        "Run PondOps locally with demo data: SQS server, carrier simulators, web, qcluster and "
        "poll_sqs on 127.0.0.1, until Ctrl-C."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = DevStackOptions()
        parser.add_argument("--web-port", type=int, default=defaults.web_port)
        parser.add_argument("--sqs-port", type=int, default=defaults.sqs_port)
        parser.add_argument("--simulator-port", type=int, default=defaults.simulator_port)
        parser.add_argument(
            "--admin-password",
            help=f"the demo admin's password (default ${ADMIN_LOGIN_VARIABLE}, else "
            f"{DEMO_ADMIN_PASSWORD!r}); set on every start",
        )
        parser.add_argument(
            "--production",
            action="store_true",
            help="rehearse the production layout: gunicorn behind a TLS proxy, the workers in "
            "production mode, on DATABASE_URL (PostgreSQL) and REDIS_URL",
        )
        parser.add_argument("--proxy-port", type=int, default=defaults.proxy_port)
        parser.add_argument(
            "--no-demo-bulk-change",
            action="store_true",
            help="seed the demo data but queue none of the demo bulk changes (one per carrier)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Production refuses the published demo password: the rehearsal makes one per start.
        fallback = secrets.token_urlsafe(12) if options["production"] else DEMO_ADMIN_PASSWORD
        password = options["admin_password"] or os.environ.get(ADMIN_LOGIN_VARIABLE) or fallback
        stack = DevStack(
            DevStackOptions(
                web_port=options["web_port"],
                sqs_port=options["sqs_port"],
                simulator_port=options["simulator_port"],
                admin_password=password,
                demo_bulk_change=not options["no_demo_bulk_change"],
                production=options["production"],
                proxy_port=options["proxy_port"],
            ),
            say=self._say,
        )
        try:
            stack.run()
        except DevStackError as error:
            raise CommandError(str(error)) from None

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
