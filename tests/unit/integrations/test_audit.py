"""The audit text of a call: the one redaction function, truncation and the request text."""

from __future__ import annotations

import pytest

from integrations.base.audit import (
    MAX_AUDIT_BODY,
    REDACTED,
    audit_text,
    redact,
    request_text,
    truncate,
)

R = REDACTED


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        pytest.param("key is abc123", ["abc123"], f"key is {R}", id="secret-value"),
        pytest.param(
            "abc123 then xyz789 then abc123",
            ["abc123", "xyz789"],
            f"{R} then {R} then {R}",
            id="every-secret-everywhere",
        ),
        pytest.param("https://x.test/?k=abc123", ["abc123"], f"https://x.test/?k={R}", id="url"),
        pytest.param("ab cd ab", ["ab"], "ab cd ab", id="short-secret-ignored"),
        pytest.param("nothing here", ["", "xy"], "nothing here", id="empty-and-short-ignored"),
        pytest.param(
            '{"password": "hunter2", "username": "bob"}',
            [],
            f'{{"password": "{R}", "username": "bob"}}',
            id="json-password",
        ),
        pytest.param(
            '{"client_secret": "s", "apiKey": "k", "api_key": "k", "sessionToken": "t"}',
            [],
            f'{{"client_secret": "{R}", "apiKey": "{R}", "api_key": "{R}", "sessionToken": "{R}"}}',
            id="json-secret-key-token-names",
        ),
        pytest.param(
            '{"Access_Token" : "a\\"b", "x": 1}',
            [],
            f'{{"Access_Token" : "{R}", "x": 1}}',
            id="json-any-case-escaped-quote",
        ),
        pytest.param('{"token_type": 3}', [], '{"token_type": 3}', id="json-non-string-kept"),
        pytest.param(
            "grant_type=client_credentials&client_secret=xyz&token=abc",
            [],
            f"grant_type=client_credentials&client_secret={R}&token={R}",
            id="form-fields",
        ),
        pytest.param(
            "password=hunter2 apikey=k1", [], f"password={R} apikey={R}", id="form-any-separator"
        ),
        pytest.param(
            '{"password": "pw-Lk27"} echo pw-Lk27',
            ["pw-Lk27"],
            f'{{"password": "{R}"}} echo {R}',
            id="value-and-field",
        ),
    ],
)
def test_redact_removes_secret_values_and_secret_named_fields(
    text: str, secrets: list[str], expected: str
) -> None:
    assert redact(text, secrets) == expected
    assert redact(expected, secrets) == expected  # safe to apply twice


def test_truncate_keeps_short_texts_and_cuts_long_ones_saying_how_long() -> None:
    exactly = "x" * MAX_AUDIT_BODY
    longer = "y" * (MAX_AUDIT_BODY + 5)

    assert truncate("short") == "short"
    assert truncate(exactly) == exactly
    assert (
        truncate(longer) == "y" * MAX_AUDIT_BODY + f"… [truncated, {MAX_AUDIT_BODY + 5} characters]"
    )


def test_audit_text_redacts_before_it_truncates() -> None:
    secret = "s3cret-value"
    text = "a" * (MAX_AUDIT_BODY - 4) + secret

    assert audit_text(text, [secret]) == "a" * (MAX_AUDIT_BODY - 4) + R[:4] + (
        f"… [truncated, {MAX_AUDIT_BODY - 4 + len(R)} characters]"
    )


@pytest.mark.parametrize(
    ("url", "params", "target"),
    [
        pytest.param("https://x.test/api/v1/things", None, "/api/v1/things", id="path"),
        pytest.param("https://x.test/a?b=1", None, "/a?b=1", id="query"),
        pytest.param("https://x.test/a", {"q": "x y", "n": 2}, "/a?q=x y&n=2", id="params"),
        pytest.param("https://x.test/a?b=1", {"n": 2}, "/a?b=1&n=2", id="query-and-params"),
    ],
)
def test_request_text_names_the_target_with_its_query(
    url: str, params: dict[str, object] | None, target: str
) -> None:
    text = request_text("GET", url, params=params, headers={}, body="", secrets=())

    assert text == f"GET {target}"


def test_request_text_lists_headers_hides_sensitive_ones_and_appends_the_body() -> None:
    headers = {
        "Authorization": "Bearer t0ken-1",
        "x-api-key": "k",
        "VZ-M2M-Token": "s",
        "app-secret": "a",
        "ApiSecret": "b",
        "Cookie": "c",
        "ApiKey": "public-key",
        "Idempotency-Key": "pondops-1-submit",
    }

    text = request_text(
        "POST",
        "https://x.test/login",
        params=None,
        headers=headers,
        body='{"username": "u", "password": "pw-Lk27"}',
        secrets=("pw-Lk27",),
    )

    assert text == (
        "POST /login\n"
        f"Authorization: {R}\nx-api-key: {R}\nVZ-M2M-Token: {R}\napp-secret: {R}\n"
        f"ApiSecret: {R}\nCookie: {R}\nApiKey: public-key\nIdempotency-Key: pondops-1-submit\n"
        "\n"
        f'{{"username": "u", "password": "{R}"}}'
    )
