"""Replays of issue 13's findings 4 (the demo's password reaching production), 5 (admin half:
no brute-force protection) and 6 (signature half: replayable webhooks), each refused with a clear
message, and ``manage.py check --deploy`` clean under production settings.

Settings are read at import: whatever depends on PONDOPS_ENVIRONMENT runs in a subprocess
against the test database (``database_url()``)."""

from __future__ import annotations

import base64
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.utils import timezone
from standardwebhooks import WebhookVerificationError

from bulkchanges.models import Tenant
from bulkchanges.services.demo import DEMO_ADMIN, DEMO_ADMIN_PASSWORD, DemoRefused, demo_seed
from integrations.simulators.control import SimulatorControl
from pondops.startup import StartupRefused, demo_password_users, production_preflight
from tests.api import conftest as api
from tests.api import test_webhooks
from tests.conftest import ROOT, database_url, free_port

# The API tests' fixtures, shared here.
partner = api.partner
receiver = api.receiver
loopback_ok = test_webhooks.loopback_ok

OPERATOR_PASSWORD = "a-long-operator-passphrase-41"


def production_env(**extra: str) -> dict[str, str]:
    """The environment of a deployed process on this machine's test database: ``staging``, a
    deployed name that gets every guard tested here whatever the test database is
    (``production`` also requires PostgreSQL and Redis: tests/unit/pondops/test_environment.py
    and tests/deploy)."""
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_DEBUG"}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "pondops.settings",
            "PONDOPS_ENVIRONMENT": "staging",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "pondops.example.com",
            # Required outside local once secrets are encrypted at rest (issue 13, item 3).
            "PONDOPS_FERNET_KEYS": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            **extra,
        }
    )
    return env


def run(args: list[str], env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return run([str(ROOT / "manage.py"), *args], env)


def user_create(username: str, password: str | None, **fields: Any) -> AbstractBaseUser:
    return get_user_model().objects.create_user(username=username, password=password, **fields)


# --- Finding 4: the demo's known password reaches a production database ---------------------

DEMO_REFUSAL = "the demo refuses to run with PONDOPS_ENVIRONMENT='staging'"


@pytest.mark.parametrize(
    "database_url",
    [
        "postgresql://pondops@%2Fvar%2Frun%2Fpostgresql/pondops",  # a Unix socket
        "postgresql://pondops@localhost/pondops",
        "postgresql://pondops@127.0.0.1:6432/pondops",  # pgbouncer, a Cloud SQL proxy
    ],
    ids=["unix-socket", "localhost", "local-proxy-6432"],
)
def test_finding_4_the_demo_refuses_production_whatever_local_looking_database_it_is_given(
    database_url: str, tmp_path: Path
) -> None:
    env = production_env(DATABASE_URL=database_url, PONDOPS_VAR_DIR=str(tmp_path))
    ports = [str(free_port()) for _ in range(3)]
    result = manage(
        "run_demo", "--web-port", ports[0], "--sqs-port", ports[1], "--simulator-port", ports[2],
        env=env,
    )  # fmt: skip

    assert result.returncode == 1, result.stdout + result.stderr
    assert DEMO_REFUSAL in result.stderr
    assert "runs only with PONDOPS_ENVIRONMENT=local (the default)" in result.stderr
    # Refused before anything connected (no driver error) or started (no logs).
    assert "Error" not in result.stderr.replace("CommandError", "")
    assert not (tmp_path / "logs").exists()


def test_finding_4_the_demo_refusal_comes_before_any_database_write(tmp_path: Path) -> None:
    database = tmp_path / "production.sqlite3"
    env = production_env(DATABASE_URL=f"sqlite:///{database}", PONDOPS_VAR_DIR=str(tmp_path))

    result = manage("run_demo", "--web-port", str(free_port()), env=env)

    assert result.returncode == 1 and DEMO_REFUSAL in result.stderr
    assert not database.exists()  # SQLite creates the file on the first connection


@pytest.mark.django_db
def test_finding_4_demo_seed_itself_refuses_outside_local(settings: Any) -> None:
    settings.ENVIRONMENT_NAME = "staging"
    unused = SimulatorControl("http://127.0.0.1:9")  # never called: the refusal comes first

    with pytest.raises(DemoRefused) as refused:
        demo_seed(simulator=unused, simulator_url=unused.base_url, admin_password="x" * 12)

    assert "the demo refuses to run with PONDOPS_ENVIRONMENT='staging'" in str(refused.value)
    assert not get_user_model().objects.filter(username=DEMO_ADMIN).exists()
    assert not Tenant.objects.exists()


START_REFUSAL = (
    "refusing to start with PONDOPS_ENVIRONMENT='staging': user(s) 'admin' still have the "
    "demo's published password"
)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "command",
    [
        ["-c", "import pondops.wsgi"],
        [str(ROOT / "manage.py"), "qcluster"],
        [str(ROOT / "manage.py"), "poll_sqs", "--once"],
        [str(ROOT / "manage.py"), "run_reaper", "--once"],
    ],
    ids=["wsgi", "qcluster", "poll_sqs", "run_reaper"],
)
def test_finding_4_production_refuses_to_start_while_a_user_has_the_demo_password(
    command: list[str],
) -> None:
    user_create(DEMO_ADMIN, DEMO_ADMIN_PASSWORD, is_staff=True, is_superuser=True)
    user_create("alice", OPERATOR_PASSWORD, is_staff=True)

    result = run(command, production_env(DATABASE_URL=database_url()), timeout=60)

    assert result.returncode != 0, result.stdout + result.stderr
    assert START_REFUSAL in result.stderr
    assert "manage.py changepassword admin" in result.stderr
    assert "alice" not in result.stderr


@pytest.mark.django_db(transaction=True)
def test_production_starts_once_the_demo_password_is_changed() -> None:
    admin = user_create(DEMO_ADMIN, DEMO_ADMIN_PASSWORD, is_staff=True, is_superuser=True)
    admin.set_password(OPERATOR_PASSWORD)  # what manage.py changepassword admin does
    admin.save()

    result = run(["-c", "import pondops.wsgi"], production_env(DATABASE_URL=database_url()))

    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_the_preflight_checks_only_active_users_with_a_usable_password(settings: Any) -> None:
    settings.ENVIRONMENT_NAME = "production"
    user_create("zed-demo", DEMO_ADMIN_PASSWORD)
    user_create("gone", DEMO_ADMIN_PASSWORD, is_active=False)
    user_create("acme-api", None)  # partner API users have unusable passwords
    user_create("alice", OPERATOR_PASSWORD)

    assert demo_password_users() == ["zed-demo"]
    with pytest.raises(StartupRefused, match="user\\(s\\) 'zed-demo' still have"):
        production_preflight()
    settings.ENVIRONMENT_NAME = "local"
    production_preflight()  # the demo's own environment: no check


# --- Production settings and check --deploy --------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_check_deploy_is_clean_under_production_settings() -> None:
    user_create("alice", OPERATOR_PASSWORD, is_staff=True)

    env = production_env(DATABASE_URL=database_url())
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    # The one silenced check: security.W021, HSTS preload, opt-in (pondops/settings.py).
    assert "System check identified no issues (1 silenced)." in result.stdout


@pytest.mark.django_db(transaction=True)
def test_check_deploy_fails_while_a_user_has_the_demo_password() -> None:
    user_create(DEMO_ADMIN, DEMO_ADMIN_PASSWORD, is_superuser=True, is_staff=True)

    result = manage("check", "--deploy", env=production_env(DATABASE_URL=database_url()))

    assert result.returncode == 1
    assert "(pondops.E001) active users still have the demo's published password: admin" in (
        result.stderr
    )
    assert "manage.py changepassword <username>" in result.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"DJANGO_SECRET_KEY": ""},
            "DJANGO_SECRET_KEY must be set with PONDOPS_ENVIRONMENT='staging' (the built-in "
            "key is public)",
        ),
        (
            {"DJANGO_DEBUG": "true"},
            "DJANGO_DEBUG must be off with PONDOPS_ENVIRONMENT='staging'",
        ),
    ],
    ids=["no-secret-key", "debug-on"],
)
def test_production_settings_refuse_the_public_secret_key_and_debug(
    change: dict[str, str], message: str
) -> None:
    result = manage("check", env=production_env(**change))

    assert result.returncode == 1
    assert f"django.core.exceptions.ImproperlyConfigured: {message}" in result.stderr


SHOW_SETTINGS = """
from django.conf import settings as s
print(s.SECURE_PROXY_SSL_HEADER, s.CSRF_TRUSTED_ORIGINS, s.SECURE_HSTS_SECONDS,
      s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, s.SECURE_SSL_REDIRECT,
      s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, sep="|")
"""


def test_production_settings_behind_a_tls_proxy() -> None:
    env = production_env(
        PONDOPS_BEHIND_TLS_PROXY="true",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://pondops.example.com, https://ops.example.com",
    )

    result = manage("shell", "--no-imports", "-c", SHOW_SETTINGS, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split("|") == [
        "('HTTP_X_FORWARDED_PROTO', 'https')",
        "['https://pondops.example.com', 'https://ops.example.com']",
        "31536000",
        "True",
        "False",
        "True",
        "True",
        "True",
    ]


@pytest.mark.django_db
def test_the_tls_redirect_spares_the_health_probes(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True  # production's value (SECURE_REDIRECT_EXEMPT as set)
    client = Client()

    assert client.get("/admin/login/").headers["Location"] == "https://testserver/admin/login/"
    for path in ("/healthz", "/livez", "/readyz"):
        assert client.get(path).status_code != 301, path


# --- Finding 5 (admin half): no brute-force protection ---------------------------------------

LOGIN = "/admin/login/?next=/admin/"
LOCKED = "Login locked: too many failed attempts for this username from your address."
ADDRESS = "198.51.100.7"


def login(client: Client, username: str, password: str, address: str = ADDRESS, **meta: Any) -> Any:
    """POST the admin login form from ``address`` (``meta``: more request.META, e.g. headers)."""
    return client.post(
        LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address, **meta
    )


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def fast_hashing(settings: Any) -> None:
    """The lockout does not depend on the password hasher; a fast one keeps 60 attempts quick."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.mark.django_db
@pytest.mark.usefixtures("fast_hashing")
def test_finding_5_sixty_wrong_admin_passwords_then_the_right_one_is_refused(
    client: Client,
) -> None:
    user_create("ops", OPERATOR_PASSWORD, is_staff=True)

    statuses = [login(client, "ops", f"guess-{number}").status_code for number in range(60)]
    answer = login(client, "ops", OPERATOR_PASSWORD)

    assert statuses[:4] == [200] * 4  # the login form again, with its error
    assert set(statuses[4:]) == {429}  # the fifth failure locks
    assert answer.status_code == 429 and not logged_in(client)
    page = answer.content.decode()
    assert LOCKED in page
    assert "refused for 15 minutes, even with the right password" in page
    assert "manage.py axes_reset_ip_username ADDRESS USERNAME" in page
    assert client.get("/admin/").status_code == 302  # still the login page


@pytest.mark.django_db
@pytest.mark.usefixtures("fast_hashing")
def test_the_lockout_ends_after_15_minutes(client: Client) -> None:
    user_create("ops", OPERATOR_PASSWORD, is_staff=True)
    for number in range(5):
        login(client, "ops", f"guess-{number}")
    assert login(client, "ops", OPERATOR_PASSWORD).status_code == 429

    with time_machine.travel(timezone.now() + timedelta(minutes=16), tick=False):
        assert login(client, "ops", OPERATOR_PASSWORD).status_code == 302
    assert logged_in(client)


@pytest.mark.django_db
@pytest.mark.usefixtures("fast_hashing")
def test_a_successful_login_resets_the_failure_count(client: Client) -> None:
    user_create("ops", OPERATOR_PASSWORD, is_staff=True)
    for _ in range(2):
        for number in range(4):
            assert login(client, "ops", f"guess-{number}").status_code == 200
        assert login(client, "ops", OPERATOR_PASSWORD).status_code == 302
        client.logout()


@pytest.mark.django_db
@pytest.mark.usefixtures("fast_hashing")
def test_the_lockout_holds_one_username_from_one_address(client: Client) -> None:
    user_create("ops", OPERATOR_PASSWORD, is_staff=True)
    user_create("eve", OPERATOR_PASSWORD, is_staff=True)
    for number in range(5):
        login(client, "ops", f"guess-{number}")

    assert login(Client(), "ops", OPERATOR_PASSWORD, address="198.51.100.8").status_code == 302
    assert login(Client(), "eve", OPERATOR_PASSWORD).status_code == 302
    assert login(Client(), "ops", OPERATOR_PASSWORD).status_code == 429


@pytest.mark.django_db
@pytest.mark.usefixtures("fast_hashing")
def test_a_forged_x_forwarded_for_does_not_dodge_the_lockout(client: Client) -> None:
    user_create("ops", OPERATOR_PASSWORD, is_staff=True)
    for number in range(5):
        login(client, "ops", f"guess-{number}", HTTP_X_FORWARDED_FOR=f"203.0.113.{number}")

    forged = login(client, "ops", OPERATOR_PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.99")

    assert forged.status_code == 429 and LOCKED in forged.content.decode()


@pytest.mark.django_db
@pytest.mark.usefixtures("fast_hashing")
def test_behind_trusted_proxies_the_forwarded_client_address_counts(
    client: Client, settings: Any
) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}  # the API's rule
    user_create("ops", OPERATOR_PASSWORD, is_staff=True)
    proxy = "10.0.0.2"
    for number in range(5):
        login(client, "ops", f"guess-{number}", proxy, HTTP_X_FORWARDED_FOR="203.0.113.5")

    other_client = login(
        Client(), "ops", OPERATOR_PASSWORD, proxy, HTTP_X_FORWARDED_FOR="203.0.113.6"
    )
    locked = login(Client(), "ops", OPERATOR_PASSWORD, proxy, HTTP_X_FORWARDED_FOR="203.0.113.5")

    assert other_client.status_code == 302
    assert locked.status_code == 429


@pytest.mark.django_db
@pytest.mark.usefixtures("fast_hashing")
def test_failed_logins_store_no_password_or_csrf_token(client: Client) -> None:
    user_create("ops", OPERATOR_PASSWORD, is_staff=True)
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.get(LOGIN)
    token = csrf_client.cookies["csrftoken"].value
    csrf_client.post(
        LOGIN,
        {"username": "ops", "password": "guess-secret-1", "csrfmiddlewaretoken": token},
        REMOTE_ADDR=ADDRESS,
    )

    attempt = AccessAttempt.objects.get(username="ops")
    assert attempt.failures_since_start == 1
    assert "guess-secret-1" not in attempt.post_data and token not in attempt.post_data


@pytest.mark.usefixtures("fast_hashing")
def test_api_key_authentication_is_untouched_by_the_lockout(partner: api.Partner) -> None:
    for number in range(6):
        login(Client(), "acme-api", f"guess-{number}", address="127.0.0.1")
    assert AccessAttempt.objects.get(username="acme-api").failures_since_start >= 5

    assert partner.client.get(f"{api.API}/bulk-changes/").status_code == 200


# --- Finding 6 (signature half): webhooks can be replayed ------------------------------------


def readme_verification() -> Callable[[str, bytes, dict[str, str]], Any]:
    """The README's receiver snippet, run exactly as printed there."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(
        r"<!-- webhook-verification:[^>]*-->\n```python\n(?P<code>.*?)```", readme, re.DOTALL
    )
    assert block, "README lost its webhook verification snippet"
    namespace: dict[str, Any] = {}
    exec(compile(block["code"], "README.md", "exec"), namespace)  # noqa: S102 — our own README
    verify: Callable[[str, bytes, dict[str, str]], Any] = namespace["pondops_webhook"]
    return verify


@pytest.mark.django_db(transaction=True)  # the webhook is scheduled on commit
def test_finding_6_a_webhook_replayed_later_or_tampered_with_is_refused_by_the_receiver(
    partner: api.Partner, receiver: api.Receiver, inline_workers: None, loopback_ok: None
) -> None:
    shown = partner.client.post(f"{api.API}/webhook-secret/").json()["webhook_secret"]
    test_webhooks.complete(partner, callback_url=receiver.url)
    (received,) = receiver.wait(1)
    verify = readme_verification()

    payload = verify(shown, received.body, received.headers)
    assert payload["event"] == "bulk_change.completed"
    assert payload["event_id"] == received.headers["webhook-id"]
    assert "X-PondOps-Signature" not in received.headers  # the body-only scheme is gone

    later = timezone.now() + timedelta(minutes=6)
    with time_machine.travel(later, tick=False):
        with pytest.raises(WebhookVerificationError, match=r"^Message timestamp too old$"):
            verify(shown, received.body, received.headers)
        restamped = {**received.headers, "webhook-timestamp": str(int(later.timestamp()))}
        with pytest.raises(WebhookVerificationError, match=r"^No matching signature found$"):
            verify(shown, received.body, restamped)

    tampered = received.body.replace(b'"PROCESSED"', b'"ERROR"')
    assert tampered != received.body
    with pytest.raises(WebhookVerificationError, match=r"^No matching signature found$"):
        verify(shown, tampered, received.headers)
