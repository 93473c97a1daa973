"""Sentry: a real web process with SENTRY_DSN pointed at a loopback listener reports a view's
error — the envelope arrives with the environment and release, and no credential from the
request's headers, cookies, query string or body, nor from the error's message. Unset, the
SDK is not even imported."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, free_port, wait_for
from tests.fixtures.callback_listener import CallbackListener
from tests.fixtures.fresh_settings import django_setup_fresh

API_KEY = "partner-api-key-3c9d7e"
SESSION = "session-cookie-8a1f2b"
TOKEN = "callback-token-6e4d0a"
BODY_SECRET = "body-secret-5b7c9d"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "tests.fixtures.sentry_site",
        "PONDOPS_VAR_DIR": str(tmp_path),  # the default SQLite file, never the checkout's
        "PONDOPS_ENVIRONMENT": "local",
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def _envelope_items(body: bytes, encoding: str) -> list[dict[str, object]]:
    """An envelope's JSON lines: its header, then each item's header and payload."""
    if encoding == "gzip":
        body = gzip.decompress(body)
    elif encoding == "br":
        import brotli  # sentry-sdk compresses with brotli when it is installed

        body = brotli.decompress(body)
    return [json.loads(line) for line in body.splitlines() if line.strip()]


@pytest.mark.e2e
def test_a_views_error_reaches_sentry_without_any_credential(
    callback_listener: CallbackListener, tmp_path: Path
) -> None:
    port = free_port()
    dsn = f"http://publickey@127.0.0.1:{callback_listener.origin.rsplit(':', 1)[1]}/1"
    web = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload"],
        env=_env(tmp_path, SENTRY_DSN=dsn, PONDOPS_RELEASE="pondops@test-1"),
        stdout=(tmp_path / "web.log").open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        url = f"http://127.0.0.1:{port}/fail?token={TOKEN}"

        def answered() -> list[requests.Response]:  # a list: a 500 Response is falsy
            try:
                return [
                    requests.post(
                        url,
                        data={"secret": BODY_SECRET},
                        headers={"Authorization": f"Api-Key {API_KEY}", "Api-Key": API_KEY},
                        cookies={"sessionid": SESSION},
                        timeout=5,
                    )
                ]
            except requests.ConnectionError:
                return []

        (response,) = wait_for(answered, timeout=60, message="the web process answering")
        assert response.status_code == 500
        wait_for(
            lambda: any("/envelope/" in path for _, path, _ in callback_listener.requests()),
            timeout=30,
            message="Sentry's envelope",
        )
    finally:
        web.terminate()
        web.wait(timeout=30)

    envelopes = [
        entry for entry in callback_listener.received if entry.path.startswith("/api/1/envelope/")
    ]
    items = [
        item
        for entry in envelopes
        for item in _envelope_items(entry.body, entry.headers.get("Content-Encoding", ""))
    ]
    events = [item for item in items if isinstance(item.get("exception"), dict)]
    assert events, items
    event = events[0]
    assert event["environment"] == "local"
    assert event["release"] == "pondops@test-1"
    exception = event["exception"]["values"][-1]  # type: ignore[index]
    assert exception["type"] == "RuntimeError"
    assert exception["value"] == "carrier refused Api-Key [Filtered]"
    request = event["request"]
    assert request["url"].endswith("/fail")  # type: ignore[index]
    assert request["headers"]["Authorization"] == "[Filtered]"  # type: ignore[index]
    assert "data" not in request and "cookies" not in request  # type: ignore[operator]
    sent = json.dumps(items)
    for secret in (API_KEY, SESSION, TOKEN, BODY_SECRET):
        assert secret not in sent, secret
    assert "publickey" not in json.dumps(event)


@pytest.mark.parametrize(
    ("dsn", "loaded", "active"),
    [("", "False", "False"), ("http://k@127.0.0.1:9/1", "True", "True")],
)
def test_sentry_is_initialised_only_when_a_dsn_is_set(dsn: str, loaded: str, active: str) -> None:
    probe = (
        "import sys; loaded = 'sentry_sdk' in sys.modules; "
        "print(loaded, loaded and sys.modules['sentry_sdk'].get_client().is_active())"
    )

    out = django_setup_fresh({"SENTRY_DSN": dsn}, code=probe)

    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [loaded, active]
