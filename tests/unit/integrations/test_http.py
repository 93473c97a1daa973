"""The one HTTP mechanism, tested once: CarrierHttp's answers, errors, Retry-After, the 429
penalty, the throttle and the audit record of every call; readable_error's messages; and the
headers CarrierClient._call assembles. Each carrier's own contract is test_clients.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import pytest
import requests
import responses

from integrations.base import (
    REDACTED,
    AuthenticationError,
    CallRecord,
    CarrierClient,
    CarrierHttp,
    Credentials,
    HttpResponse,
    IntegrationError,
    PermanentError,
    TransientError,
    readable_error,
)
from integrations.base.audit import MAX_AUDIT_BODY
from tests.unit.integrations.support import (
    RecordingThrottle,
    assert_fails_as,
    http_date,
    sent,
    sent_json,
)

SECRET = "acme-secret-Zx81q0"
PASSWORD = "acme-password-Lk27"
BASE_URL = "https://acme.example.test/api"
URL = f"{BASE_URL}/things/1"
CREDENTIALS = Credentials(
    integration_authentication_id=1,
    integration="ACME",
    base_url=BASE_URL,
    account="acct-7",
    secret=SECRET,
    secret_2=PASSWORD,
)
AUTH_FAILURE = "Acme rejected the key of account acct-7"
HTML_PAGE = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>Bad Gateway</h1><pre>Traceback (most recent call last)</pre></body></html>"
)


@pytest.fixture
def http(audit: list[CallRecord], throttle: RecordingThrottle) -> CarrierHttp:
    return CarrierHttp(
        carrier="Acme",
        credentials=CREDENTIALS,
        auth_failure=AUTH_FAILURE,
        on_call=audit.append,
        throttle=throttle,
        timeouts=(1, 2),
    )


def get(http: CarrierHttp, **kwargs: Any) -> HttpResponse:
    return http.request("GET", "things/1", description="Read Acme thing", **kwargs)


# --- Answers ---------------------------------------------------------------------------------


def test_a_2xx_answer_is_its_parsed_json_status_headers_and_call(
    http: CarrierHttp, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(URL, json={"id": 1}, headers={"X-Request-Id": "r-1"})

    response = get(http)

    assert (response.status, response.body, response.headers["X-Request-Id"]) == (
        200,
        {"id": 1},
        "r-1",
    )
    assert response.call is audit[0]
    assert sent(mocked, 0).req_kwargs["timeout"] == (1, 2)  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [204, 102])
def test_an_answer_without_a_body_has_none(
    http: CarrierHttp, mocked: responses.RequestsMock, status: int
) -> None:
    mocked.get(URL, status=status, body="")

    response = get(http)

    assert (response.status, response.body) == (status, None)


@pytest.mark.parametrize(
    ("base_url", "path"),
    [(BASE_URL, "things/1"), (BASE_URL + "/", "things/1"), (BASE_URL + "/", "/things/1")],
)
def test_the_path_joins_the_base_url_whatever_their_slashes(
    mocked: responses.RequestsMock, base_url: str, path: str
) -> None:
    credentials = Credentials(
        integration_authentication_id=1, integration="ACME", base_url=base_url
    )
    http = CarrierHttp(carrier="Acme", credentials=credentials, auth_failure="", timeouts=(1, 1))
    mocked.get(URL, json={})

    http.request("GET", path, description="Read Acme thing")

    assert sent(mocked, 0).url == URL


def test_a_json_body_is_sent_as_json_and_a_form_body_as_given(
    http: CarrierHttp, mocked: responses.RequestsMock
) -> None:
    mocked.post(URL, json={})
    mocked.post(URL, json={})

    http.request("POST", "things/1", description="Create", json_body={"name": "x"})
    http.request(
        "POST",
        "things/1",
        description="Create",
        data="a=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert sent(mocked, 0).headers["Content-Type"] == "application/json"
    assert sent_json(sent(mocked, 0)) == {"name": "x"}
    assert sent(mocked, 1).headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert sent(mocked, 1).body == b"a=1"


def test_default_timeouts_come_from_settings(settings: Any) -> None:
    settings.BULKCHANGE_HTTP_CONNECT_TIMEOUT = 3
    settings.BULKCHANGE_HTTP_READ_TIMEOUT = 12

    http = CarrierHttp(carrier="Acme", credentials=CREDENTIALS, auth_failure="")

    assert http.timeouts == (3.0, 12.0)


@pytest.mark.parametrize(
    ("reply", "content_type"),
    [
        pytest.param(
            {"status": 200, "body": "<html>maintenance</html>", "content_type": "text/html"},
            "text/html",
            id="200-html",
        ),
        pytest.param(
            {"status": 201, "body": "created", "content_type": "text/plain"},
            "text/plain",
            id="201-text",
        ),
    ],
)
def test_a_2xx_that_is_not_json_is_a_readable_permanent_error(
    http: CarrierHttp,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    reply: dict[str, Any],
    content_type: str,
) -> None:
    mocked.get(URL, **reply)

    with pytest.raises(PermanentError) as raised:
        get(http)

    assert type(raised.value) is PermanentError
    assert raised.value.message == (
        f"HTTP {reply['status']} from Acme: expected JSON, got {content_type}"
    )
    assert raised.value.call is audit[0]


# --- Errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error_type", "message"),
    [
        *[
            pytest.param(
                {"status": status, "json": {"message": "busy"}},
                TransientError,
                f"HTTP {status} from Acme: busy",
                id=f"{status}-transient",
            )
            for status in (408, 429, 500, 502, 503, 504)
        ],
        *[
            pytest.param(
                {"status": status, "json": {"message": "refused"}},
                PermanentError,
                f"HTTP {status} from Acme: refused",
                id=f"{status}-permanent",
            )
            for status in (400, 404, 409, 422, 501)
        ],
        pytest.param(
            {"status": 502, "body": HTML_PAGE, "content_type": "text/html"},
            TransientError,
            "HTTP 502 from Acme: 502 Bad Gateway",
            id="html-page-title",
        ),
        pytest.param(
            {"status": 422, "body": "<p>unprocessable</p>", "content_type": "text/html"},
            PermanentError,
            "HTTP 422 from Acme: unprocessable",
            id="html-without-title",
        ),
        pytest.param(
            {"status": 504, "body": "upstream timed out", "content_type": "text/plain"},
            TransientError,
            "HTTP 504 from Acme: upstream timed out",
            id="text",
        ),
        pytest.param(
            {"status": 500, "body": ""},
            TransientError,
            "HTTP 500 from Acme (empty body)",
            id="empty-body",
        ),
    ],
)
def test_error_answers_become_our_error_types_with_readable_messages(
    http: CarrierHttp,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    reply: dict[str, Any],
    error_type: type[IntegrationError],
    message: str,
) -> None:
    mocked.get(URL, **reply)

    assert_fails_as(
        lambda: get(http),
        error_type=error_type,
        message=message,
        audit=audit,
        status=reply["status"],
    )


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_are_an_authentication_error_naming_the_account(
    http: CarrierHttp, mocked: responses.RequestsMock, audit: list[CallRecord], status: int
) -> None:
    mocked.get(URL, status=status, json={"errorCode": "E401", "message": "Invalid key"})

    with pytest.raises(AuthenticationError) as raised:
        get(http)

    assert isinstance(raised.value, PermanentError)
    assert raised.value.message == (f"{AUTH_FAILURE} (HTTP {status} from Acme: Invalid key (E401))")
    assert raised.value.call is audit[0]


def test_a_request_may_name_what_a_401_rejected(
    http: CarrierHttp, mocked: responses.RequestsMock
) -> None:
    mocked.get(URL, status=401, body="")

    with pytest.raises(AuthenticationError) as raised:
        get(http, auth_failure="Acme rejected the login of user u")

    assert (
        raised.value.message
        == "Acme rejected the login of user u (HTTP 401 from Acme (empty body))"
    )


def test_secrets_echoed_in_an_error_answer_stay_out_of_the_error_and_the_audit(
    http: CarrierHttp, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(URL, status=401, json={"message": f"key {SECRET} or password {PASSWORD} revoked"})

    with pytest.raises(AuthenticationError) as raised:
        get(http)

    assert f"key {REDACTED} or password {REDACTED} revoked" in raised.value.message
    for text in (str(raised.value), audit[0].response_text):
        assert SECRET not in text
        assert PASSWORD not in text


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        pytest.param(
            requests.ConnectionError("connection refused"),
            "Acme connection failed: ConnectionError",
            id="connection",
        ),
        pytest.param(
            requests.ConnectTimeout("connect timed out"),
            "Acme timed out: ConnectTimeout",
            id="connect-timeout",
        ),
        pytest.param(
            requests.ReadTimeout("read timed out"), "Acme timed out: ReadTimeout", id="read"
        ),
    ],
)
def test_connection_errors_and_timeouts_are_transient_and_audited(
    http: CarrierHttp,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    throttle: RecordingThrottle,
    failure: Exception,
    message: str,
) -> None:
    mocked.get(URL, body=failure)

    with pytest.raises(TransientError) as raised:
        get(http)

    assert raised.value.message == message
    assert raised.value.retry_after is None
    assert raised.value.__cause__ is failure
    assert len(audit) == 1
    assert raised.value.call is audit[0]
    assert (audit[0].response_status, audit[0].response_text) == (None, str(failure))
    assert (throttle.acquired, throttle.holding) == (1, 0)  # released although it failed


# --- Retry-After and the 429 penalty ---------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize(
    ("retry_after", "low", "high"),
    [
        pytest.param(lambda: "7", 7, 7, id="delta-seconds"),
        pytest.param(lambda: http_date(120), 100, 121, id="http-date"),  # built when it runs
        pytest.param(lambda: "soon", None, None, id="garbage"),
        pytest.param(lambda: None, None, None, id="absent"),
    ],
)
def test_a_transient_answer_honours_retry_after_and_a_429_slows_the_throttle(
    http: CarrierHttp,
    mocked: responses.RequestsMock,
    throttle: RecordingThrottle,
    status: int,
    retry_after: Callable[[], str | None],
    low: float | None,
    high: float | None,
) -> None:
    header = retry_after()
    mocked.get(URL, status=status, body="", headers={"Retry-After": header} if header else {})

    with pytest.raises(TransientError) as raised:
        get(http)

    delay = raised.value.retry_after
    if low is None:
        assert delay is None
    else:
        assert delay is not None and low <= delay <= (high or 0)
    if status == 429:
        assert throttle.penalties == [delay or 1.0]  # every sender of the credentials slows
    else:
        assert throttle.penalties == []


# --- The throttle and the audit record -------------------------------------------------------


def test_the_throttle_is_held_for_the_request_only(
    http: CarrierHttp, mocked: responses.RequestsMock, throttle: RecordingThrottle
) -> None:
    held_during: list[int] = []

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        held_during.append(throttle.holding)
        return 200, {}, "{}"

    mocked.add_callback(responses.GET, URL, callback=answer)
    mocked.add_callback(responses.GET, URL, callback=answer)

    get(http)
    get(http)

    assert held_during == [1, 1]
    assert (throttle.acquired, throttle.holding, throttle.peak) == (2, 0, 1)


def test_every_call_gets_one_audit_record_in_order_failed_ones_too(
    http: CarrierHttp, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(URL, json={"ok": True})
    mocked.post(URL, status=404, json={"message": "no such thing"})
    mocked.put(URL, status=503, body="")
    mocked.delete(URL, body=requests.ConnectionError("refused"))

    get(http)
    for method, error in (("POST", PermanentError), ("PUT", TransientError)):
        with pytest.raises(error):
            http.request(method, "things/1", description=f"{method} Acme thing")
    with pytest.raises(TransientError):
        http.request("DELETE", "things/1", description="Delete Acme thing")

    assert [(call.description, call.method, call.response_status) for call in audit] == [
        ("Read Acme thing", "GET", 200),
        ("POST Acme thing", "POST", 404),
        ("PUT Acme thing", "PUT", 503),
        ("Delete Acme thing", "DELETE", None),
    ]
    assert [call.url for call in audit] == [URL] * 4
    assert audit[0].response_text == '{"ok": true}'
    assert "no such thing" in audit[1].response_text
    assert all(call.elapsed_ms >= 0 for call in audit)


def test_a_call_is_announced_before_the_throttle_and_the_request_with_the_id_of_its_record(
    mocked: responses.RequestsMock, throttle: RecordingThrottle
) -> None:
    events: list[tuple[str, Any]] = []
    http = CarrierHttp(
        carrier="Acme",
        credentials=CREDENTIALS,
        auth_failure=AUTH_FAILURE,
        on_call=lambda call: events.append(("answered", call)),
        on_call_start=lambda start: events.append(("started", (start, throttle.acquired))),
        throttle=throttle,
    )

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        events.append(("sent", request.method))
        return 200, {}, "{}"

    mocked.add_callback(responses.GET, f"{URL}?key={SECRET}", callback=answer)

    get(http, params={"key": SECRET})

    assert [kind for kind, _ in events] == ["started", "sent", "answered"]
    (start, throttle_taken), call = events[0][1], events[2][1]
    assert throttle_taken == 0  # the row exists before the call waits for a slot
    assert (start.description, start.method, start.call_id) == (
        "Read Acme thing",
        "GET",
        call.call_id,
    )
    assert start.request_text == call.request_text and SECRET not in start.request_text
    assert len(start.call_id) == 32 and start.url == call.url == URL


def test_a_call_whose_announcement_fails_is_never_sent(
    mocked: responses.RequestsMock, throttle: RecordingThrottle, audit: list[CallRecord]
) -> None:
    def refuse(start: Any) -> None:
        raise TransientError("the audit row could not be written")

    http = CarrierHttp(
        carrier="Acme",
        credentials=CREDENTIALS,
        auth_failure=AUTH_FAILURE,
        on_call=audit.append,
        on_call_start=refuse,
        throttle=throttle,
    )

    with pytest.raises(TransientError, match="audit row"):
        get(http)

    assert len(mocked.calls) == 0 and throttle.acquired == 0 and audit == []


def test_a_call_the_throttle_stopped_is_recorded_as_not_sent(
    mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    class BrokenThrottle(RecordingThrottle):
        @contextmanager
        def call(self) -> Iterator[None]:
            raise ConnectionError("redis went away")
            yield

    http = CarrierHttp(
        carrier="Acme",
        credentials=CREDENTIALS,
        auth_failure=AUTH_FAILURE,
        on_call=audit.append,
        throttle=BrokenThrottle(),
    )

    with pytest.raises(ConnectionError):
        get(http)

    [call] = audit
    assert call.response_status is None and len(mocked.calls) == 0
    assert call.response_text == (
        "not sent or no answer recorded: ConnectionError: redis went away"
    )


def test_the_audit_record_is_redacted_and_truncated(
    http: CarrierHttp, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.post(f"{URL}?key={SECRET}&page=2", status=500, body="z" * (MAX_AUDIT_BODY + 1) + SECRET)

    with pytest.raises(TransientError):
        http.request(
            "POST",
            f"things/1?key={SECRET}",
            description="Create Acme thing",
            json_body={"name": "x", "password": "pw", "echo": PASSWORD},
            headers={"x-api-key": SECRET, "Idempotency-Key": "pondops-1-submit"},
            params={"page": 2},
        )

    call = audit[0]
    assert call.url == f"{URL}?key={REDACTED}"
    assert call.request_text == (
        f"POST /api/things/1?key={REDACTED}&page=2\n"
        f"x-api-key: {REDACTED}\nIdempotency-Key: pondops-1-submit\n"
        "Content-Type: application/json\n\n"
        f'{{"name": "x", "password": "{REDACTED}", "echo": "{REDACTED}"}}'
    )
    assert call.response_text == (
        "z" * MAX_AUDIT_BODY + f"… [truncated, {MAX_AUDIT_BODY + 1 + len(REDACTED)} characters]"
    )


# --- readable_error --------------------------------------------------------------------------


def answer(status: int, text: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = text.encode()
    response.encoding = "utf-8"
    return response


@pytest.mark.parametrize(
    ("status", "text", "message"),
    [
        pytest.param(
            404,
            '{"errors": [{"code": "SUB_404", "description": "Subscriber not found"}]}',
            "HTTP 404 from Acme: Subscriber not found (SUB_404)",
            id="errors-list-with-code",
        ),
        pytest.param(
            400,
            '{"errors": [{"code": "A", "description": "first"}, "junk", '
            '{"message": "second"}, {"code": "C"}]}',
            "HTTP 400 from Acme: first (A); second; C",
            id="errors-list-several",
        ),
        pytest.param(
            400,
            '{"errorCode": "10000024", "errorMessage": "Invalid status change"}',
            "HTTP 400 from Acme: Invalid status change (10000024)",
            id="error-code-appended",
        ),
        pytest.param(
            400,
            '{"errorCode": "E7", "message": "E7: refused"}',
            "HTTP 400 from Acme: E7: refused",
            id="error-code-already-in-message",
        ),
        pytest.param(400, '{"errorCode": "E7"}', "HTTP 400 from Acme: E7", id="error-code-alone"),
        *[
            pytest.param(
                400,
                f'{{"{key}": "the reason"}}',
                "HTTP 400 from Acme: the reason",
                id=f"message-key-{key}",
            )
            for key in ("message", "errorMessage", "error_description", "detail", "error")
        ],
        pytest.param(
            400,
            '{"message": "first", "detail": "second"}',
            "HTTP 400 from Acme: first",
            id="first-message-key-wins",
        ),
        pytest.param(
            422,
            '{"detail": {"field": "number"}}',
            'HTTP 422 from Acme: {"field": "number"}',
            id="non-text-detail-as-json",
        ),
        pytest.param(
            502,
            "<html><head><TITLE> Bad &amp; Gone </TITLE></head><body>x</body></html>",
            "HTTP 502 from Acme: Bad & Gone",
            id="html-title",
        ),
        pytest.param(
            500,
            "<html><body><h1>Oops</h1>\n<p>try   again</p></body></html>",
            "HTTP 500 from Acme: Oops try again",
            id="stripped-html",
        ),
        pytest.param(
            504, "upstream timed out", "HTTP 504 from Acme: upstream timed out", id="text"
        ),
        pytest.param(
            400, '["not", "an object"]', 'HTTP 400 from Acme: ["not", "an object"]', id="list"
        ),
        pytest.param(500, "", "HTTP 500 from Acme (empty body)", id="empty-body"),
        pytest.param(500, "  \n ", "HTTP 500 from Acme (empty body)", id="blank-body"),
        pytest.param(500, "x" * 300, f"HTTP 500 from Acme: {'x' * 200}", id="long-text-cut"),
    ],
)
def test_readable_error_reads_the_carriers_own_message(
    status: int, text: str, message: str
) -> None:
    assert readable_error("Acme", answer(status, text)) == message


# --- CarrierClient._call ---------------------------------------------------------------------


class AcmeClient(CarrierClient):
    carrier: ClassVar[str] = "Acme"
    basic: tuple[str, str] | None = None

    @classmethod
    def auth_failure(cls, credentials: Credentials) -> str:
        return AUTH_FAILURE

    def auth_headers(self) -> dict[str, str]:
        return {"X-Key": self.credentials.secret}

    def basic_auth(self) -> tuple[str, str] | None:
        return self.basic

    def read(self, **kwargs: Any) -> HttpResponse:
        return self._call("GET", "things/1", "Read Acme thing", **kwargs)


def test_a_client_call_sends_its_auth_accept_its_own_headers_then_the_idempotency_key(
    mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(URL, json={})

    AcmeClient(credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1)).read(
        headers={"request_id": "req-1"}, idempotency_key="pondops-1-x"
    )

    assert audit[0].request_text == (
        f"GET /api/things/1\nX-Key: {SECRET}\nAccept: application/json\nrequest_id: req-1\n"
        "Idempotency-Key: pondops-1-x"
    ).replace(SECRET, REDACTED)
    assert sent(mocked, 0).headers["X-Key"] == SECRET


def test_a_client_call_may_bring_its_own_auth_headers_or_http_basic(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(URL, json={})
    mocked.get(URL, json={})
    client = AcmeClient(credentials=CREDENTIALS, timeouts=(1, 1))

    client.read(auth_headers={"Authorization": "Bearer t"})
    client.basic = ("user", "pw")
    client.read(auth_headers={})

    assert sent(mocked, 0).headers["Authorization"] == "Bearer t"
    assert "X-Key" not in sent(mocked, 0).headers
    assert sent(mocked, 1).headers["Authorization"] == "Basic dXNlcjpwdw=="


# --- Metrics ---------------------------------------------------------------------------------


def _sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_call_is_counted_by_integration_operation_and_code_429s_and_failures_too(
    http: CarrierHttp, mocked: responses.RequestsMock
) -> None:
    labels = {"carrier": "ACME", "operation": "Read Acme thing"}
    before = {
        code: _sample("pondops_carrier_requests_total", **labels, code=code)
        for code in ("200", "429", "error")
    }
    limited = _sample("pondops_carrier_rate_limited_total", carrier="ACME")
    timed = _sample("pondops_carrier_request_duration_seconds_count", carrier="ACME")
    mocked.get(URL, json={"id": 1})
    mocked.get(URL, status=429, json={"message": "slow down"})
    mocked.get(URL, body=requests.ConnectionError("refused"))

    get(http)
    with pytest.raises(TransientError):
        get(http)
    with pytest.raises(TransientError):
        get(http)

    for code in ("200", "429", "error"):
        counted = _sample("pondops_carrier_requests_total", **labels, code=code)
        assert counted == before[code] + 1, code
    assert _sample("pondops_carrier_rate_limited_total", carrier="ACME") == limited + 1
    assert _sample("pondops_carrier_request_duration_seconds_count", carrier="ACME") == timed + 3
