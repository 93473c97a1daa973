"""What leaves for Sentry: the credentials headers, cookies and bodies removed, anything that
looks like a credential in any text filtered; no DSN, no Sentry at all."""

from __future__ import annotations

import json

import pytest

from pondops.sentry import FILTERED, event_scrub, sentry_configure, text_scrub


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-123", f"Authorization: Bearer {FILTERED}"),
        ("sent Api-Key k3y-v4lue to the API", f"sent Api-Key {FILTERED} to the API"),
        ("Basic dXNlcjpwYXNzd29yZA==", f"Basic {FILTERED}"),
        ("GET /cb/1/?token=s3cr3t&page=2", f"GET /cb/1/?token={FILTERED}&page=2"),
        ("callback_token=abc password=hunter2", f"callback_token={FILTERED} password={FILTERED}"),
        ("postgresql://pondops:pw@db:5432/x", f"postgresql://{FILTERED}@db:5432/x"),
        ("the token expired; basic auth failed", "the token expired; basic auth failed"),
    ],
)
def test_credentials_in_text_are_filtered_and_plain_words_are_not(text: str, expected: str) -> None:
    assert text_scrub(text) == expected


def test_an_event_loses_its_credentials_headers_cookies_and_body() -> None:
    event = {
        "request": {
            "url": "http://pondops.example/carriers/TEAL/callbacks/3/?token=t0k3n",
            "headers": {
                "Authorization": "Api-Key abc",
                "Api-Key": "def",
                "Cookie": "sessionid=ghi",
                "Ocp-Apim-Subscription-Key": "jkl",
                "User-Agent": "curl/8",
            },
            "cookies": {"sessionid": "ghi"},
            "data": {"secret": "mno"},
        },
        "exception": {"values": [{"type": "RuntimeError", "value": "Bearer pqr refused"}]},
        "breadcrumbs": {"values": [{"message": "POST https://x/?api_key=stu"}]},
    }

    scrubbed = json.dumps(event_scrub(event))

    for secret in ("abc", "def", "ghi", "jkl", "mno", "pqr", "stu", "t0k3n"):
        assert secret not in scrubbed
    assert "curl/8" in scrubbed and "RuntimeError" in scrubbed


def test_without_a_dsn_sentry_is_not_initialised() -> None:
    assert sentry_configure(dsn="", environment="production") is False
