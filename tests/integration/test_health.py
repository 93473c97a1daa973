"""The health probes (bulkchanges/health.py, docs/operations/health.md).

``/livez``: the process is up, nothing read. ``/readyz``: the database answers, within a
deadline — what a load balancer routes on, blind to SQS, Redis and the workers. ``/healthz``:
each check's state in ``checks`` (503 when any is an error) and its figures in ``details`` —
the heartbeats' ages, the dead-letter queue's depth and oldest age; dead letters are a warning
for staff, never a 503. All three answer whatever the Host header and over plain http in a
deployed environment: load balancers probe by address."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection
from django.utils import timezone

from bulkchanges import heartbeats, sqs
from tests.conftest import Processes, Queue, database_url, free_port, wait_for
from tests.fixtures.fresh_settings import django_setup_fresh
from tests.security.test_guards import production_env

pytestmark = pytest.mark.django_db


def test_a_fresh_poller_heartbeat_is_ok_with_its_age(client: Any, sqs_queue: Queue) -> None:
    heartbeats.heartbeat_beat(
        kind=heartbeats.POLLER, detail="receiving", now=timezone.now() - timedelta(seconds=3)
    )
    heartbeats.heartbeat_beat(kind=heartbeats.REAPER, detail="reaper: expired leases 0")

    response = client.get("/healthz")
    body = response.json()

    assert body["checks"]["poller"] == "ok"
    assert 3 <= body["details"]["poller"]["age_seconds"] < 60
    assert body["details"]["poller"]["processes"] == 1
    assert body["details"]["poller"]["detail"] == "receiving"
    assert body["checks"]["dead_letter_queue"] == "ok"
    assert body["details"]["dead_letter_queue"] == {"depth": 0, "oldest_age_seconds": None}
    assert body["details"]["queue"]["depth"]["ApproximateNumberOfMessages"] == 0
    # No qcluster runs in this test: the cluster is the only error, and it alone is the 503.
    errors = {name for name, value in body["checks"].items() if value.startswith("error")}
    assert errors == {"cluster"} and response.status_code == 503
    assert body["details"]["cluster"] == {"age_seconds": None}


def test_a_stale_or_missing_poller_heartbeat_is_an_error(client: Any, sqs_queue: Queue) -> None:
    assert client.get("/healthz").json()["checks"]["poller"] == (
        "error: no poll_sqs heartbeat in 60 s"
    )
    heartbeats.heartbeat_beat(kind=heartbeats.POLLER, now=timezone.now() - timedelta(seconds=90))
    body = client.get("/healthz").json()
    assert body["checks"]["poller"].startswith("error")
    assert body["details"]["poller"]["age_seconds"] >= 90


def test_the_reaper_heartbeat_is_stale_after_four_missed_passes(
    client: Any, sqs_queue: Queue, settings: Any
) -> None:
    settings.BULKCHANGE_REAPER_INTERVAL_SECONDS = 30
    assert client.get("/healthz").json()["checks"]["reaper"] == (
        "error: no run_reaper heartbeat in 120 s"
    )
    heartbeats.heartbeat_beat(
        kind=heartbeats.REAPER, detail="reaper: …", now=timezone.now() - timedelta(seconds=100)
    )
    body = client.get("/healthz").json()
    assert body["checks"]["reaper"] == "ok"
    assert body["details"]["reaper"]["processes"] == 1
    assert body["details"]["reaper"]["detail"] == "reaper: …"
    heartbeats.heartbeat_beat(kind=heartbeats.REAPER, now=timezone.now() - timedelta(seconds=130))
    assert client.get("/healthz").json()["checks"]["reaper"].startswith("error")


def test_dead_letters_are_a_warning_with_depth_and_age_not_an_outage(
    client: Any, sqs_queue: Queue
) -> None:
    for _ in range(2):
        sqs_queue.client.send_message(QueueUrl=sqs_queue.dlq_url, MessageBody="x")

    body = client.get("/healthz").json()

    assert body["checks"]["dead_letter_queue"].startswith("warning: 2 messages, oldest ")
    assert body["details"]["dead_letter_queue"]["depth"] == 2
    assert body["details"]["dead_letter_queue"]["oldest_age_seconds"] >= 0
    assert body["warnings"] == ["dead_letter_queue"]
    errors = {name for name, value in body["checks"].items() if value.startswith("error")}
    assert "dead_letter_queue" not in errors


@pytest.fixture
def sqs_down(settings: Any) -> Iterator[None]:
    """SQS really down: the endpoint is a closed loopback port (nothing listens there)."""
    sqs.sqs_client.cache_clear()
    settings.AWS_ENDPOINT_URL_SQS = f"http://127.0.0.1:{free_port()}"
    settings.PONDOPS_SQS_QUEUE_URL = settings.AWS_ENDPOINT_URL_SQS + "/000000000000/gone"
    settings.PONDOPS_SQS_DLQ_URL = settings.AWS_ENDPOINT_URL_SQS + "/000000000000/gone-dlq"
    yield
    sqs.sqs_client.cache_clear()


@pytest.mark.usefixtures("sqs_down")
def test_an_unreachable_sqs_is_a_queue_error_and_an_unknown_dead_letter_queue(
    client: Any,
) -> None:
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["queue"].startswith("error: get_queue_attributes: unreachable")
    assert body["checks"]["dead_letter_queue"] == "unknown: SQS unreachable"


# --- /readyz and /livez: what a load balancer and an orchestrator use -------------------------


@pytest.mark.usefixtures("sqs_down")
def test_readyz_stays_200_while_sqs_is_down_and_healthz_says_503(client: Any) -> None:
    ready = client.get("/readyz")
    health = client.get("/healthz")

    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"database": "ok"}}
    assert health.status_code == 503
    assert health.json()["checks"]["queue"].startswith("error: get_queue_attributes: unreachable")


def test_readyz_ignores_redis_heartbeats_and_dead_letters(
    client: Any, sqs_queue: Queue, settings: Any
) -> None:
    """No worker runs, Redis is a closed port, two messages wait in the DLQ: /healthz reports
    each, /readyz none of them."""
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/13"
    for _ in range(2):
        sqs_queue.client.send_message(QueueUrl=sqs_queue.dlq_url, MessageBody="x")

    health = client.get("/healthz").json()
    ready = client.get("/readyz")

    assert health["checks"]["redis"] == "error: ConnectionError"
    assert health["checks"]["cluster"].startswith("error")
    assert health["checks"]["poller"].startswith("error")
    assert health["checks"]["dead_letter_queue"].startswith("warning: 2 messages")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}


def test_healthz_pings_redis_when_it_is_configured(
    client: Any, sqs_queue: Queue, settings: Any
) -> None:
    assert client.get("/healthz").json()["checks"]["redis"] == (
        "unknown: REDIS_URL not set (the database is the broker, cache and limiter)"
    )
    settings.REDIS_URL = "redis://127.0.0.1:6379/13"  # PING only: nothing written
    assert client.get("/healthz").json()["checks"]["redis"] == "ok"


def test_livez_reads_nothing(client: Any, django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        response = client.get("/livez")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz"])
def test_probes_answer_get_and_head_only_and_are_never_cached(
    client: Any, sqs_queue: Queue, path: str
) -> None:
    get = client.get(path)
    head = client.head(path)
    post = client.post(path)

    assert get["Cache-Control"] == "no-store"
    assert head.status_code == get.status_code and head.content == b""
    assert head["Content-Type"] == "application/json"
    assert head["Cache-Control"] == "no-store"
    assert post.status_code == 405 and post["Allow"] == "GET, HEAD"
    assert "Set-Cookie" not in get and "ETag" not in get and "Expires" not in get


# --- The database unreachable or hung: a fresh process on a DATABASE_URL of its own ----------

PROBE = """
from django.test import Client
client = Client(HTTP_HOST="10.0.3.7:8000")
import json
print(json.dumps({path: [r.status_code, r.json()] for path in ("/livez", "/readyz")
                  for r in [client.get(path)]}))
"""


def probe_in_fresh_process(**environment: str) -> dict[str, Any]:
    result = django_setup_fresh(environment, code=PROBE)
    assert result.returncode == 0, result.stderr
    answers: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answers


def test_readyz_is_503_and_livez_200_when_the_database_is_unreachable() -> None:
    closed = free_port()
    answers = probe_in_fresh_process(DATABASE_URL=f"postgresql://root@127.0.0.1:{closed}/pondops")

    assert answers["/livez"] == [200, {"status": "ok"}]
    assert answers["/readyz"] == [
        503,
        {"status": "unavailable", "checks": {"database": "error: OperationalError"}},
    ]


def test_readyz_gives_up_on_a_database_that_accepts_and_never_answers() -> None:
    """A listener that takes the connection and says nothing (a hung server): the probe's
    deadline ends the wait, below libpq's 2 s minimum connect_timeout."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        port = hung.getsockname()[1]
        answers = probe_in_fresh_process(
            DATABASE_URL=f"postgresql://root@127.0.0.1:{port}/pondops",
            PONDOPS_HEALTH_TIMEOUT_SECONDS="0.5",
        )

    assert answers["/livez"] == [200, {"status": "ok"}]
    assert answers["/readyz"] == [
        503,
        {"status": "unavailable", "checks": {"database": "error: no answer within 0.5 s"}},
    ]


# --- Deployed: any Host header, plain http ----------------------------------------------------


def deployed_environments() -> list[Any]:
    return [
        "staging",
        pytest.param(
            "production",
            marks=pytest.mark.skipif(
                "postgresql" not in (connection.settings_dict.get("ENGINE") or ""),
                reason="production requires PostgreSQL: run with DATABASE_URL=postgresql://…",
            ),
        ),
    ]


@pytest.fixture
def served(request: Any, tmp_path: Path) -> Iterator[str]:
    """``manage.py runserver`` (the WSGI application, its start-up preflight included) in a
    deployed environment, on a free loopback port; yields its base URL."""
    port = free_port()
    env = production_env(
        PONDOPS_ENVIRONMENT=request.param,
        DATABASE_URL=database_url(),
        REDIS_URL="redis://127.0.0.1:6379/13",  # production requires it; the probes used here
        # do not touch it
    )
    running = Processes(env, tmp_path)
    process = running.start("runserver", "--noreload", f"127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(running.logs())
        try:
            return requests.get(url + "/livez", timeout=2).ok
        except requests.ConnectionError:
            return False

    try:
        wait_for(up, timeout=60, message="runserver")
        yield url
    finally:
        running.stop_all()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("served", deployed_environments(), indirect=True)
def test_deployed_probes_answer_any_host_over_plain_http(served: str) -> None:
    for host in ("10.0.3.7:8000", "pondops-web.internal", "pondops.example.com"):
        for path in ("/livez", "/readyz"):
            response = requests.get(
                served + path, headers={"Host": host}, allow_redirects=False, timeout=10
            )
            assert (response.status_code, path, host) == (200, path, host)
        health = requests.get(
            served + "/healthz", headers={"Host": host}, allow_redirects=False, timeout=10
        )
        assert health.status_code in (200, 503)  # no cluster here; never a 301 or a 400
        assert "checks" in health.json()

    # Everything else keeps both guards: a foreign Host is a 400, plain http a redirect.
    foreign = requests.get(
        served + "/admin/login/", headers={"Host": "10.0.3.7:8000"}, allow_redirects=False
    )
    assert foreign.status_code == 400
    own = requests.get(
        served + "/admin/login/", headers={"Host": "pondops.example.com"}, allow_redirects=False
    )
    assert own.status_code == 301
    assert own.headers["Location"] == "https://pondops.example.com/admin/login/"
