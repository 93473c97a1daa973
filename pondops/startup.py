"""What a PondOps process checks before it starts serving outside the local environment.

:func:`production_preflight` runs once per process where work starts: the WSGI application
(``pondops/wsgi.py``, each gunicorn worker) and the long-running commands ``qcluster``,
``poll_sqs`` and ``run_reaper`` (:func:`command_preflight`). Outside
``PONDOPS_ENVIRONMENT=local`` it refuses to start while an active user with a usable password
has the demo's published password (``manage.py run_demo`` sets it): whoever read the README
could log in as that user. ``manage.py check --deploy`` reports the same (``pondops.E001``).

Cost: one password hash per active user with a usable password (PBKDF2-SHA256 with Django's
1,000,000 iterations: about 0.3-0.5 s each on one core), read-only (the hash is never
upgraded). Operators are few; partner API users have unusable passwords and are skipped.

Fails closed: a database that cannot be read stops the start as well (the process manager
restarts it), so an outage at start never lets a process skip the check.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX, check_password
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError
from django.db import DatabaseError

from bulkchanges.services.demo import DEMO_ADMIN_PASSWORD, DEMO_ENVIRONMENT

DEMO_USER_CHECK_ID = "pondops.E001"
DEMO_USER_UNCHECKED_ID = "pondops.E002"


class StartupRefused(ImproperlyConfigured):
    """This process must not start; the message names the cause and the fix."""


def demo_password_users() -> list[str]:
    """The usernames of active users whose password is the demo's, sorted. Reads only."""
    user_model = get_user_model()
    candidates = (
        user_model._default_manager.filter(is_active=True)
        .exclude(password__startswith=UNUSABLE_PASSWORD_PREFIX)
        .exclude(password="")
        .order_by(user_model.USERNAME_FIELD)
        .values_list(user_model.USERNAME_FIELD, "password")
    )
    return [
        str(username)
        for username, encoded in candidates
        if check_password(DEMO_ADMIN_PASSWORD, encoded)
    ]


def _refusal(users: list[str]) -> str:
    names = ", ".join(repr(name) for name in users)
    fixes = "; ".join(f"manage.py changepassword {name}" for name in users)
    return (
        f"refusing to start with PONDOPS_ENVIRONMENT={settings.ENVIRONMENT_NAME!r}: user(s) "
        f"{names} still have the demo's published password; give each a new password "
        f"({fixes}) or deactivate them, then start again"
    )


def production_preflight() -> None:
    """Outside the local environment, raise StartupRefused while a user has the demo's
    password, or when the users cannot be read; a no-op locally (the demo lives there)."""
    if settings.ENVIRONMENT_NAME == DEMO_ENVIRONMENT:
        return
    try:
        users = demo_password_users()
    except DatabaseError as error:
        raise StartupRefused(
            "refusing to start: cannot check the users for the demo's password "
            f"({type(error).__name__}: {error})"
        ) from error
    if users:
        raise StartupRefused(_refusal(users))


def command_preflight() -> None:
    """:func:`production_preflight` for a management command: a refusal is a CommandError,
    so the command exits 1 with the message on stderr."""
    try:
        production_preflight()
    except StartupRefused as error:
        raise CommandError(str(error)) from None


@checks.register(checks.Tags.security, deploy=True)
def demo_password_check(**kwargs: Any) -> list[checks.CheckMessage]:
    """``check --deploy``: no active user may have the demo's published password. Runs in any
    environment (a deploy check asks whether this database may be deployed)."""
    try:
        users = demo_password_users()
    except DatabaseError as error:
        return [
            checks.Error(
                f"cannot check the users for the demo's password ({type(error).__name__})",
                hint="run the check against the deployment's migrated database",
                id=DEMO_USER_UNCHECKED_ID,
            )
        ]
    if not users:
        return []
    return [
        checks.Error(
            "active users still have the demo's published password: " + ", ".join(users),
            hint="manage.py changepassword <username> for each (or deactivate them)",
            id=DEMO_USER_CHECK_ID,
        )
    ]
