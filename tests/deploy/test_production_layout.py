"""The production process layout, end to end: ``gunicorn -c python:pondops.gunicorn_conf
pondops.wsgi`` behind a TLS-terminating proxy, ``qcluster``, ``poll_sqs`` and ``run_reaper``,
all with ``PONDOPS_ENVIRONMENT=production``, against PostgreSQL, Redis (a database number of
this run's own), moto's SQS server and the carrier simulators.

One test, because the layout is one thing: the release steps (``migrate``, ``collectstatic``)
and ``check --deploy`` pass in that environment; an operator logs in to the admin through the
proxy; plain http to gunicorn is sent to https (the health paths excepted); static files come
from gunicorn through whitenoise with long cache lifetimes; a partner's bulk change submitted
through the proxy is processed by the real workers."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.db import connection

from bulkchanges.models import BulkChange, DeviceChange
from tests.conftest import (
    LOOPBACK_ORIGINS,
    ROOT,
    PondWorld,
    Processes,
    free_port,
    iccids,
    seed_sims,
    wait_for,
)
from tests.fixtures.redisdb import redis_database_flush
from tests.fixtures.tls_proxy import RunningProxy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

# This test's own Redis database unless the run has one (CI's Redis pass): FLUSHDB'd first.
OWN_REDIS_URL = "redis://127.0.0.1:6379/14"
PRODUCTION_KEY = Fernet.generate_key().decode()
OPERATOR = "operator"
OPERATOR_PASSWORD = "a-fresh-operator-password-8c1e"
ONE_YEAR = 365 * 24 * 3600


@pytest.fixture
def production_world(settings: Any, request: pytest.FixtureRequest) -> PondWorld:
    """The POND world with its secrets encrypted under a production key: the production
    processes refuse the local development key, so this process writes with theirs."""
    if connection.vendor != "postgresql":
        pytest.skip("the production layout runs on PostgreSQL: set DATABASE_URL to one")
    settings.DJANGO_FERNETIX_KEYS = [PRODUCTION_KEY]
    world: PondWorld = request.getfixturevalue("pond_world")
    return world


def redis_url(settings: Any) -> str:
    url = settings.REDIS_URL or OWN_REDIS_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        pytest.skip(f"the production layout needs Redis at {url}: {error}")
    redis_database_flush(url)
    return url


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A one-off ``manage.py`` command (a release step) in the production environment."""
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_production_layout_serves_the_admin_over_tls_and_processes_a_partner_bulk_change(
    production_world: PondWorld,
    processes: Processes,
    tls_proxy: Callable[[int], RunningProxy],
    settings: Any,
    tmp_path: Path,
) -> None:
    web_port = free_port()
    proxy = tls_proxy(web_port)
    env = {
        **processes.env,
        "PONDOPS_ENVIRONMENT": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "PONDOPS_FERNET_KEYS": PRODUCTION_KEY,
        "REDIS_URL": redis_url(settings),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_CSRF_TRUSTED_ORIGINS": proxy.url,
        "PONDOPS_BEHIND_TLS_PROXY": "true",
        "PONDOPS_CARRIER_EXTRA_ORIGINS": ",".join(LOOPBACK_ORIGINS),
        "PONDOPS_VAR_DIR": str(tmp_path / "var"),
        "PONDOPS_WEB_BIND": f"127.0.0.1:{web_port}",
        "PONDOPS_WEB_WORKERS": "2",
        "PONDOPS_WEB_THREADS": "2",
        "PONDOPS_WEB_GRACEFUL_TIMEOUT_SECONDS": "10",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_DEBUG", None)
    processes.env = env
    get_user_model().objects.create_superuser(OPERATOR, "ops@example.com", OPERATOR_PASSWORD)

    # Release steps, then the deploy check, in the production environment.
    for step in (("migrate", "--noinput"), ("collectstatic", "--noinput")):
        result = manage(env, *step)
        assert result.returncode == 0, result.stdout + result.stderr
    check = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "System check identified no issues" in check.stdout, check.stdout + check.stderr
    assert "WARNING" not in check.stderr, check.stderr
    manifest = json.loads((tmp_path / "var" / "static" / "staticfiles.json").read_text())["paths"]

    gunicorn = ["-m", "gunicorn", "-c", "python:pondops.gunicorn_conf", "pondops.wsgi"]
    processes.start_command("gunicorn", gunicorn)
    processes.start("qcluster")
    processes.start("poll_sqs")
    processes.start("run_reaper")
    session = requests.Session()
    session.verify = proxy.certificate
    session.trust_env = False  # else REQUESTS_CA_BUNDLE in the environment overrides verify
    try:
        [login_page] = wait_for(
            lambda: _answer(session, f"{proxy.url}/admin/login/"),
            timeout=60,
            message="the admin login page through the proxy",
        )
        assert login_page.status_code == 200, login_page.text

        # An operator logs in through the TLS proxy: the session and CSRF cookies are Secure,
        # the origin is the trusted https one.
        token = session.cookies["csrftoken"]
        login = session.post(
            f"{proxy.url}/admin/login/?next=/admin/",
            data={
                "csrfmiddlewaretoken": token,
                "username": OPERATOR,
                "password": OPERATOR_PASSWORD,
                "next": "/admin/",
            },
            headers={"Referer": f"{proxy.url}/admin/login/", "Origin": proxy.url},
            allow_redirects=False,
            timeout=30,
        )
        assert login.status_code == 302, login.text
        assert login.headers["Location"] == "/admin/"
        assert all(cookie.secure for cookie in session.cookies)
        dashboard = session.get(f"{proxy.url}/admin/", allow_redirects=False, timeout=30)
        assert dashboard.status_code == 200
        assert "Strict-Transport-Security" in dashboard.headers

        # Plain http straight to gunicorn goes to https, but for the health probes.
        plain = f"http://127.0.0.1:{web_port}"
        redirect = requests.get(f"{plain}/admin/", allow_redirects=False, timeout=30)
        assert redirect.status_code == 301
        assert redirect.headers["Location"] == f"https://127.0.0.1:{web_port}/admin/"
        for probe in ("/healthz", "/livez", "/readyz"):
            answer = requests.get(f"{plain}{probe}", allow_redirects=False, timeout=30)
            assert answer.status_code != 301, probe
        # The proxy overwrites a client's own X-Forwarded-Proto: claiming http changes nothing.
        spoofed = session.get(
            f"{proxy.url}/admin/", headers={"X-Forwarded-Proto": "http"}, allow_redirects=False
        )
        assert spoofed.status_code == 200

        # Static files: gunicorn serves them through whitenoise, hashed names cached a year.
        admin_css = re.search(
            r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login_page.text
        )
        assert admin_css, login_page.text
        own_css = "/static/" + manifest["bulkchanges/pondops.css"]
        for path in (admin_css.group(1), own_css):
            static = session.get(f"{proxy.url}{path}", timeout=30)
            assert static.status_code == 200, path
            assert "text/css" in static.headers["Content-Type"]
            max_age = re.search(r"max-age=(\d+)", static.headers["Cache-Control"])
            assert max_age and int(max_age.group(1)) >= ONE_YEAR, static.headers
            assert "immutable" in static.headers["Cache-Control"]

        # A partner submits a bulk change through the proxy; the real workers process it.
        issued = manage(
            env,
            "create_partner_token",
            "--username",
            "acme-api",
            "--tenant",
            production_world.tenant.name,
            "--create-user",
        )
        assert issued.returncode == 0, issued.stdout + issued.stderr
        key = issued.stdout.strip().splitlines()[-1].removeprefix("key ")
        numbers = iccids(20)
        seed_sims(production_world, numbers)
        created = requests.post(
            f"{proxy.url}/api/v1/bulk-changes/",
            json={
                "integration": "POND",
                "target_status": "Suspended",
                "devices": [{"iccid": iccid} for iccid in numbers],
            },
            headers={"Authorization": f"Api-Key {key}"},
            verify=proxy.certificate,
            timeout=60,
        )
        assert created.status_code == 201, created.text
        bulk_change = BulkChange.objects.get(pk=created.json()["id"])

        def final() -> bool:
            bulk_change.refresh_from_db()
            return bulk_change.status in BulkChange.TERMINAL

        wait_for(final, timeout=180, interval=0.5, message=f"bulk change {bulk_change.pk}")
        assert bulk_change.status == BulkChange.Status.PROCESSED
        statuses = set(bulk_change.device_changes.values_list("status", flat=True))
        assert statuses == {DeviceChange.Status.PROCESSED}
        assert sorted(production_world.simulator.calls()["pond"]["set_sim_status"]) == numbers
    except BaseException:
        print(processes.logs())
        raise


def _answer(session: requests.Session, url: str) -> list[requests.Response]:
    """``[response]`` once gunicorn answers behind the proxy (502 until it listens); a list,
    because a Response is falsy when it is an error."""
    try:
        response = session.get(url, allow_redirects=False, timeout=10)
    except requests.RequestException:
        return []
    return [] if response.status_code == 502 else [response]
