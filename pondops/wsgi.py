"""WSGI entry point (gunicorn pondops.wsgi). Outside PONDOPS_ENVIRONMENT=local the application
is not created while a user has the demo's password (pondops/startup.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pondops.settings")
application = get_wsgi_application()

from pondops.startup import production_preflight  # noqa: E402 — reads models: after setup

production_preflight()
