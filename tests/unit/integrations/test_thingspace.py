"""ThingSpace client and processor against docs/carriers/thingspace.md: the two tokens (cached,
shared, refreshed once after a 401, never audited), the login lockout, ThingSpace's error bodies
and answers, and the two resumable steps (submit, then confirm by polling). The exact requests
are test_clients.py; the HTTP mechanism (timeouts, Retry-After, …) is test_http.py."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import responses

from integrations.base import (
    REDACTED,
    AuthenticationError,
    CallRecord,
    Credentials,
    MemoryTokenStore,
    PermanentError,
    Progress,
    Step,
    TransientError,
    UpdateContext,
)
from integrations.thingspace import ThingSpaceClient, ThingSpaceProcessor, iccid_id
from integrations.thingspace_tokens import Tokens, reset_login_failures
from tests.unit.integrations.support import RecordingThrottle, sent, sent_json

ACCOUNT = "0000123456-00001"
CLIENT_KEY = "ts-client-key-4412"
CLIENT_SECRET = "ts-client-secret-Qw93"
UWS_USER = "pondops-uws"
UWS_PASSWORD = "uws-password-Lk27"
BASE_URL = "https://thingspace.example.test"
ICCID = "89148000000000000001"
REQUEST_ID = "595f5c44-c31c-4552-8670-020a1545a84d"
TOKEN_URL = f"{BASE_URL}/api/ts/v1/oauth2/token"
LOGIN_URL = f"{BASE_URL}/api/m2m/v1/session/login"
LIST_URL = f"{BASE_URL}/api/m2m/v1/devices/actions/list"
STATUS_URL = f"{BASE_URL}/api/m2m/v1/accounts/{ACCOUNT}/requests/{REQUEST_ID}/status"
CREDENTIALS = Credentials(
    integration_authentication_id=9,
    integration="THINGSPACE",
    base_url=BASE_URL,
    account=ACCOUNT,
    client_id=CLIENT_KEY,
    secret=CLIENT_SECRET,
    username=UWS_USER,
    secret_2=UWS_PASSWORD,
)
SECRETS = (CLIENT_SECRET, UWS_PASSWORD)
LOCKOUT = f"ThingSpace login failing for {ACCOUNT}; check the credentials"
FAILURES_KEY = "thingspace:9:login_failures"
ACCESS_KEY = "thingspace:9:access_token"
SESSION_KEY = "thingspace:9:session_token"


def action_url(action: str) -> str:
    return f"{BASE_URL}/api/m2m/v1/devices/actions/{action}"


def ts_error(message: str, code: str = "REQUEST_FAILED.UnexpectedError") -> dict[str, str]:
    """ThingSpace's error body."""
    return {"errorCode": code, "errorMessage": message}


def device_list(state: str | None) -> dict[str, Any]:
    devices = (
        []
        if state is None
        else [
            {
                "deviceIds": [{"kind": "iccid", "id": ICCID}],
                "carrierInformations": [{"state": state, "servicePlan": "M2M-5GB"}],
            }
        ]
    )
    return {"devices": devices, "hasMoreData": False}


def request_status(status: str) -> dict[str, Any]:
    return {"requestId": REQUEST_ID, "status": status}


def read_state(client: ThingSpaceClient) -> str:
    """The device's state as read ("" when the account has no such device)."""
    device = client.read_device(iccid=ICCID)
    return device.state if device is not None else ""


class RecordingStore(MemoryTokenStore):
    """A MemoryTokenStore that remembers the ttl of every value set."""

    def __init__(self) -> None:
        super().__init__()
        self.ttls: dict[str, float] = {}

    def set(self, key: str, value: Any, *, ttl: float) -> None:
        self.ttls[key] = ttl
        super().set(key, value, ttl=ttl)


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
def client(
    audit: list[CallRecord], store: RecordingStore, throttle: RecordingThrottle
) -> ThingSpaceClient:
    return ThingSpaceClient(
        credentials=CREDENTIALS,
        on_call=audit.append,
        throttle=throttle,
        timeouts=(1, 1),
        token_store=store,
    )


@pytest.fixture
def processor(audit: list[CallRecord], store: RecordingStore) -> ThingSpaceProcessor:
    return ThingSpaceProcessor(
        credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1), token_store=store
    )


def context(target: str, **overrides: Any) -> UpdateContext:
    values: dict[str, Any] = {
        "device_change_id": 77,
        "bulk_change_id": 5,
        "iccid": ICCID,
        "target_status": target,
    }
    values.update(overrides)
    return UpdateContext(**values)


def submitted(request_id: str = REQUEST_ID) -> Progress:
    return Progress(carrier_request_id=request_id, carrier_submitted_at=datetime.now(UTC))


def expect_login(
    mocked: responses.RequestsMock, *, number: int = 1, expires_in: int | None = 3600
) -> None:
    """The two authentication calls, answering ``access-<n>`` and ``session-<n>``."""
    token: dict[str, Any] = {"access_token": f"access-{number}", "token_type": "bearer"}
    if expires_in is not None:
        token["expires_in"] = expires_in
    mocked.post(TOKEN_URL, json=token)
    mocked.post(LOGIN_URL, json={"sessionToken": f"session-{number}"})


def seed_tokens(store: MemoryTokenStore, number: int = 0) -> None:
    store.set(ACCESS_KEY, f"access-{number}", ttl=600)
    store.set(SESSION_KEY, f"session-{number}", ttl=600)


def sent_urls(mocked: responses.RequestsMock) -> list[str]:
    return [str(call.request.url) for call in mocked.calls]


def assert_data_headers(request: requests.PreparedRequest, number: int) -> None:
    assert request.headers["Authorization"] == f"Bearer access-{number}"
    assert request.headers["VZ-M2M-Token"] == f"session-{number}"
    assert request.headers["Accept"] == "application/json"


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


# --- Authentication: the shared tokens ------------------------------------------------------


@pytest.mark.parametrize(
    ("expires_in", "access_ttl"),
    [
        pytest.param(3600, 3540, id="hour-minus-a-minute"),
        pytest.param(30, 27, id="short-minus-ten-percent"),
        pytest.param(None, 3540, id="absent-means-an-hour"),
    ],
)
def test_both_tokens_are_cached_until_shortly_before_they_expire(
    client: ThingSpaceClient,
    mocked: responses.RequestsMock,
    store: RecordingStore,
    expires_in: int | None,
    access_ttl: float,
) -> None:
    expect_login(mocked, expires_in=expires_in)
    mocked.post(LIST_URL, json=device_list("active"))
    mocked.post(LIST_URL, json=device_list("active"))

    read_state(client)
    read_state(client)

    assert len(mocked.calls) == 4  # one login for both calls
    assert store.get(ACCESS_KEY) == "access-1"
    assert store.get(SESSION_KEY) == "session-1"
    assert store.ttls[ACCESS_KEY] == access_ttl
    assert store.ttls[SESSION_KEY] == 20 * 60 - 60


def test_clients_sharing_a_token_store_log_in_once(
    mocked: responses.RequestsMock, store: RecordingStore
) -> None:
    expect_login(mocked)
    mocked.post(LIST_URL, json=device_list("active"))
    mocked.post(LIST_URL, json=device_list("active"))
    workers = [
        ThingSpaceClient(credentials=CREDENTIALS, timeouts=(1, 1), token_store=store)
        for _ in range(2)
    ]

    for worker in workers:
        read_state(worker)

    assert sent_urls(mocked) == [TOKEN_URL, LOGIN_URL, LIST_URL, LIST_URL]


def test_concurrent_clients_wait_for_one_login_under_the_lock(
    mocked: responses.RequestsMock, store: RecordingStore
) -> None:
    def slow_login(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        time.sleep(0.2)  # every other worker reaches the lock meanwhile
        return 200, {}, json.dumps({"sessionToken": "session-1"})

    mocked.post(TOKEN_URL, json={"access_token": "access-1", "expires_in": 3600})
    mocked.add_callback(responses.POST, LOGIN_URL, callback=slow_login)
    mocked.post(LIST_URL, json=device_list("active"))
    errors: list[BaseException] = []

    def work() -> None:
        try:
            ThingSpaceClient(
                credentials=CREDENTIALS, timeouts=(1, 1), token_store=store
            ).read_device(iccid=ICCID)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert errors == []
    urls = sent_urls(mocked)
    assert (urls.count(TOKEN_URL), urls.count(LOGIN_URL), urls.count(LIST_URL)) == (1, 1, 6)


def test_when_only_the_session_expired_the_cached_access_token_opens_a_new_one(
    client: ThingSpaceClient, mocked: responses.RequestsMock, store: RecordingStore
) -> None:
    store.set(ACCESS_KEY, "access-0", ttl=600)
    mocked.post(LOGIN_URL, json={"sessionToken": "session-2"})
    mocked.post(LIST_URL, json=device_list("active"))

    read_state(client)

    assert sent_urls(mocked) == [LOGIN_URL, LIST_URL]
    assert sent(mocked, 0).headers["Authorization"] == "Bearer access-0"
    assert sent(mocked, 1).headers["VZ-M2M-Token"] == "session-2"


def test_a_cached_access_token_refused_at_login_is_replaced_without_counting_a_failure(
    client: ThingSpaceClient, mocked: responses.RequestsMock, store: RecordingStore
) -> None:
    store.set(ACCESS_KEY, "access-0", ttl=600)
    mocked.post(LOGIN_URL, status=401, json=ts_error("Invalid or expired access token"))
    expect_login(mocked, number=2)
    mocked.post(LIST_URL, json=device_list("active"))

    read_state(client)

    assert sent_urls(mocked) == [LOGIN_URL, TOKEN_URL, LOGIN_URL, LIST_URL]
    assert_data_headers(sent(mocked, 3), 2)
    assert store.get(FAILURES_KEY) is None


# --- Authentication: a 401 on a later call ---------------------------------------------------


def test_a_401_drops_both_tokens_logs_in_again_and_repeats_the_call_once(
    client: ThingSpaceClient,
    mocked: responses.RequestsMock,
    store: RecordingStore,
    audit: list[CallRecord],
) -> None:
    seed_tokens(store)
    mocked.post(LIST_URL, status=401, json=ts_error("Session expired", "UnauthorizedAccess"))
    expect_login(mocked, number=2)
    mocked.post(LIST_URL, json=device_list("suspended"))

    assert read_state(client) == "suspended"

    assert sent_urls(mocked) == [LIST_URL, TOKEN_URL, LOGIN_URL, LIST_URL]
    assert_data_headers(sent(mocked, 0), 0)
    assert_data_headers(sent(mocked, 3), 2)
    assert store.get(ACCESS_KEY) == "access-2"
    assert store.get(SESSION_KEY) == "session-2"
    assert [call.response_status for call in audit] == [401, 200, 200, 200]


def test_a_second_401_is_permanent_and_names_the_account(
    client: ThingSpaceClient, mocked: responses.RequestsMock, store: RecordingStore
) -> None:
    seed_tokens(store)
    mocked.post(LIST_URL, status=401, json=ts_error("Session expired"))
    expect_login(mocked, number=2)
    mocked.post(LIST_URL, status=401, json=ts_error("Session expired"))

    with pytest.raises(AuthenticationError) as raised:
        read_state(client)

    assert raised.value.message == (
        f"ThingSpace rejected the session for ThingSpace account {ACCOUNT} "
        "(HTTP 401 from ThingSpace: Session expired (REQUEST_FAILED.UnexpectedError))"
    )
    assert sent_urls(mocked).count(TOKEN_URL) == 1
    assert raised.value.call is not None and raised.value.call.response_status == 401


def test_a_403_on_a_device_call_is_permanent_without_logging_in_again(
    client: ThingSpaceClient, mocked: responses.RequestsMock, store: RecordingStore
) -> None:
    seed_tokens(store)
    mocked.post(LIST_URL, status=403, json=ts_error("Not authorized for this account"))

    with pytest.raises(AuthenticationError, match=f"ThingSpace account {ACCOUNT}"):
        read_state(client)

    assert sent_urls(mocked) == [LIST_URL]


def test_after_a_401_tokens_another_worker_already_replaced_are_used_as_they_are(
    client: ThingSpaceClient, mocked: responses.RequestsMock, store: RecordingStore
) -> None:
    seed_tokens(store, 0)

    def refused_while_another_worker_logs_in(
        request: requests.PreparedRequest,
    ) -> tuple[int, dict[str, str], str]:
        seed_tokens(store, 5)  # the other worker's fresh login lands meanwhile
        return 401, {}, json.dumps(ts_error("Session expired"))

    mocked.add_callback(responses.POST, LIST_URL, callback=refused_while_another_worker_logs_in)
    mocked.post(LIST_URL, json=device_list("active"))

    read_state(client)

    assert sent_urls(mocked) == [LIST_URL, LIST_URL]  # no login of our own
    assert_data_headers(sent(mocked, 1), 5)


# --- Authentication: rejected credentials and the lockout ------------------------------------


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        pytest.param(
            TOKEN_URL,
            401,
            "ThingSpace rejected the OAuth client key and secret for ThingSpace account "
            f"{ACCOUNT} (HTTP 401 from ThingSpace: Invalid client key or secret"
            " (REQUEST_FAILED.UnexpectedError))",
            id="oauth-401",
        ),
        pytest.param(
            TOKEN_URL,
            400,
            "ThingSpace rejected the OAuth client key and secret for ThingSpace account "
            f"{ACCOUNT} (HTTP 400 from ThingSpace: Invalid client key or secret"
            " (REQUEST_FAILED.UnexpectedError))",
            id="oauth-400",
        ),
        pytest.param(
            LOGIN_URL,
            401,
            f"ThingSpace rejected the UWS user {UWS_USER} for ThingSpace account {ACCOUNT} "
            "(HTTP 401 from ThingSpace: Invalid client key or secret"
            " (REQUEST_FAILED.UnexpectedError))",
            id="login-401",
        ),
    ],
)
def test_rejected_credentials_are_an_authentication_error_naming_the_account(
    client: ThingSpaceClient,
    mocked: responses.RequestsMock,
    store: RecordingStore,
    audit: list[CallRecord],
    url: str,
    status: int,
    message: str,
) -> None:
    if url == LOGIN_URL:
        mocked.post(TOKEN_URL, json={"access_token": "access-1", "expires_in": 3600})
    mocked.post(url, status=status, json=ts_error("Invalid client key or secret"))

    with pytest.raises(AuthenticationError) as raised:
        read_state(client)

    assert raised.value.message == message
    assert store.get(FAILURES_KEY) == 1
    assert store.ttls[FAILURES_KEY] == 24 * 3600
    assert store.get(ACCESS_KEY) is None  # a rejected login keeps no token


def test_secrets_echoed_in_a_login_error_stay_out_of_the_message_and_audit(
    client: ThingSpaceClient, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.post(TOKEN_URL, json={"access_token": "access-1", "expires_in": 3600})
    echo = f"Invalid password {UWS_PASSWORD} (client secret {CLIENT_SECRET})"
    mocked.post(LOGIN_URL, status=401, json=ts_error(echo))

    with pytest.raises(AuthenticationError) as raised:
        read_state(client)

    assert f"ThingSpace account {ACCOUNT}" in raised.value.message
    assert f"Invalid password {REDACTED}" in raised.value.message
    assert_no_secret(raised.value.message, *(c.request_text + c.response_text for c in audit))


def test_after_two_consecutive_login_failures_no_login_call_is_made(
    client: ThingSpaceClient, mocked: responses.RequestsMock, store: RecordingStore
) -> None:
    for _ in range(2):
        mocked.post(TOKEN_URL, json={"access_token": "access-1", "expires_in": 3600})
        mocked.post(LOGIN_URL, status=401, json=ts_error("Invalid username or password"))

    for _ in range(2):
        with pytest.raises(AuthenticationError, match="rejected the UWS user"):
            read_state(client)
    for _ in range(3):
        with pytest.raises(AuthenticationError) as raised:
            read_state(client)
        assert raised.value.message == LOCKOUT
        assert raised.value.call is None

    assert sent_urls(mocked) == [TOKEN_URL, LOGIN_URL, TOKEN_URL, LOGIN_URL]
    assert store.get(FAILURES_KEY) == 2


def test_a_successful_login_resets_the_failure_count(
    client: ThingSpaceClient, mocked: responses.RequestsMock, store: RecordingStore
) -> None:
    mocked.post(TOKEN_URL, status=401, json=ts_error("Invalid client key or secret"))
    expect_login(mocked)
    mocked.post(LIST_URL, json=device_list("active"))

    with pytest.raises(AuthenticationError):
        read_state(client)
    assert store.get(FAILURES_KEY) == 1
    read_state(client)

    assert store.get(FAILURES_KEY) is None


def test_reset_login_failures_lets_a_locked_out_account_log_in_again(
    client: ThingSpaceClient, mocked: responses.RequestsMock, store: RecordingStore
) -> None:
    store.set(FAILURES_KEY, 2, ttl=3600)
    with pytest.raises(AuthenticationError, match=LOCKOUT):
        read_state(client)
    assert len(mocked.calls) == 0

    reset_login_failures(store, CREDENTIALS)
    expect_login(mocked)
    mocked.post(LIST_URL, json=device_list("active"))

    assert read_state(client) == "active"


def test_reset_login_failures_also_forgets_tokens_of_the_old_credentials(
    store: RecordingStore,
) -> None:
    seed_tokens(store)
    store.set(FAILURES_KEY, 1, ttl=3600)

    reset_login_failures(store, CREDENTIALS)

    assert [store.get(key) for key in (FAILURES_KEY, ACCESS_KEY, SESSION_KEY)] == [None] * 3


@pytest.mark.parametrize(
    ("url", "status"),
    [(TOKEN_URL, 503), (TOKEN_URL, 429), (LOGIN_URL, 500), (LOGIN_URL, 502)],
)
def test_a_login_call_failing_transiently_is_no_login_failure(
    client: ThingSpaceClient,
    mocked: responses.RequestsMock,
    store: RecordingStore,
    url: str,
    status: int,
) -> None:
    if url == LOGIN_URL:
        mocked.post(TOKEN_URL, json={"access_token": "access-1", "expires_in": 3600})
    mocked.post(url, status=status, json=ts_error("Try again later"))

    with pytest.raises(TransientError):
        read_state(client)

    assert store.get(FAILURES_KEY) is None


@pytest.mark.parametrize(
    ("url", "body", "expected"),
    [
        pytest.param(TOKEN_URL, {"token_type": "bearer"}, "an access_token", id="no-token"),
        pytest.param(LOGIN_URL, {"token": "x"}, "a sessionToken", id="no-session"),
    ],
)
def test_a_login_answer_without_its_token_is_a_permanent_error(
    client: ThingSpaceClient,
    mocked: responses.RequestsMock,
    store: RecordingStore,
    url: str,
    body: dict[str, str],
    expected: str,
) -> None:
    if url == LOGIN_URL:
        mocked.post(TOKEN_URL, json={"access_token": "access-1", "expires_in": 3600})
    mocked.post(url, json=body)

    with pytest.raises(PermanentError) as raised:
        read_state(client)

    assert raised.value.message == (
        f"HTTP 200 from ThingSpace: expected {expected}, got something else"
    )
    assert store.get(FAILURES_KEY) is None


# --- Device calls ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "fields"),
    [
        ("suspend", {}),
        ("restore", {}),
        ("deactivate", {"reasonCode": "FF", "etfWaiver": True}),
        ("activate", {"servicePlan": "M2M-5GB", "mdnZipCode": "10001"}),
    ],
)
def test_submit_action_posts_each_action_with_its_fields(
    client: ThingSpaceClient,
    mocked: responses.RequestsMock,
    store: RecordingStore,
    action: str,
    fields: dict[str, Any],
) -> None:
    seed_tokens(store, 3)
    mocked.post(action_url(action), status=202, json={"requestId": REQUEST_ID})

    request_id = client.submit_action(
        action=action,
        device_ids=[iccid_id(ICCID)],
        idempotency_key="pondops-1-submit",
        fields=fields,
    )

    assert request_id == REQUEST_ID
    assert sent(mocked, 0).url == action_url(action)
    assert sent_json(sent(mocked, 0)) == {
        "accountName": ACCOUNT,
        "devices": [{"deviceIds": [{"kind": "iccid", "id": ICCID}]}],
        **fields,
    }


def test_an_unknown_action_is_refused_without_a_call(
    client: ThingSpaceClient, mocked: responses.RequestsMock
) -> None:
    with pytest.raises(PermanentError, match="ThingSpace has no action 'delete'"):
        client.submit_action(action="delete", device_ids=[iccid_id(ICCID)], idempotency_key="k")

    assert len(mocked.calls) == 0


def test_request_status_reads_a_pending_request(
    client: ThingSpaceClient, mocked: responses.RequestsMock, store: RecordingStore
) -> None:
    seed_tokens(store)
    mocked.get(STATUS_URL, json=request_status("Pending"))

    status = client.request_status(request_id=REQUEST_ID)

    assert (status.status, status.succeeded, status.failed) == ("Pending", False, False)


# --- Device calls: error shapes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kwargs", "error_type", "message"),
    [
        pytest.param(
            400,
            {"json": ts_error("Invalid servicePlan")},
            PermanentError,
            "HTTP 400 from ThingSpace: Invalid servicePlan (REQUEST_FAILED.UnexpectedError)",
            id="json-400",
        ),
        pytest.param(
            404,
            {"json": ts_error(f"Device {ICCID} not found")},
            PermanentError,
            f"HTTP 404 from ThingSpace: Device {ICCID} not found (REQUEST_FAILED.UnexpectedError)",
            id="unknown-device-404",
        ),
        pytest.param(
            500,
            {"json": ts_error("Unexpected error")},
            TransientError,
            "HTTP 500 from ThingSpace: Unexpected error (REQUEST_FAILED.UnexpectedError)",
            id="json-500",
        ),
    ],
)
def test_error_responses_become_our_error_types_with_readable_messages(
    client: ThingSpaceClient,
    mocked: responses.RequestsMock,
    store: RecordingStore,
    status: int,
    kwargs: dict[str, Any],
    error_type: type[Exception],
    message: str,
) -> None:
    seed_tokens(store)
    mocked.post(action_url("suspend"), status=status, **kwargs)

    with pytest.raises(error_type) as raised:
        client.submit_action(action="suspend", device_ids=[iccid_id(ICCID)], idempotency_key="k")

    assert isinstance(raised.value, PermanentError | TransientError)
    assert raised.value.message == message
    assert type(raised.value) is error_type


@pytest.mark.parametrize(
    ("url", "method", "body", "expected"),
    [
        pytest.param(LIST_URL, "POST", {"devices": "none"}, "a device list", id="list-shape"),
        pytest.param(
            LIST_URL,
            "POST",
            {"devices": [{"carrierInformations": {"state": "active"}}]},
            "devices with carrierInformations",
            id="informations-shape",
        ),
        pytest.param(action_url("suspend"), "POST", {"id": "x"}, "a requestId", id="no-id"),
        pytest.param(STATUS_URL, "GET", {"requestId": REQUEST_ID}, "a request status", id="no-st"),
    ],
)
def test_answers_of_the_wrong_shape_are_permanent_errors(
    client: ThingSpaceClient,
    mocked: responses.RequestsMock,
    store: RecordingStore,
    url: str,
    method: str,
    body: dict[str, Any],
    expected: str,
) -> None:
    seed_tokens(store)
    mocked.add(method, url, json=body)

    with pytest.raises(PermanentError) as raised:
        if url == LIST_URL:
            read_state(client)
        elif url == STATUS_URL:
            client.request_status(request_id=REQUEST_ID)
        else:
            client.submit_action(
                action="suspend", device_ids=[iccid_id(ICCID)], idempotency_key="k"
            )

    assert raised.value.message == (
        f"HTTP 200 from ThingSpace: expected {expected}, got something else"
    )


# --- Audit records ---------------------------------------------------------------------------


def test_tokens_and_secrets_never_reach_the_audit_records(
    client: ThingSpaceClient, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.post(TOKEN_URL, json={"access_token": "access-Zq1", "expires_in": 3600})
    mocked.post(LOGIN_URL, json={"sessionToken": "session-Zq1"})
    mocked.post(LIST_URL, json=device_list("active"))
    mocked.post(action_url("suspend"), status=202, json={"requestId": REQUEST_ID})
    mocked.get(STATUS_URL, json=request_status("Success"))

    read_state(client)
    client.submit_action(
        action="suspend", device_ids=[iccid_id(ICCID)], idempotency_key="pondops-77-submit"
    )
    client.request_status(request_id=REQUEST_ID)

    assert len(audit) == 5
    basic = base64.b64encode(f"{CLIENT_KEY}:{CLIENT_SECRET}".encode()).decode()
    for call in audit:
        for text in (call.url, call.request_text, call.response_text):
            assert_no_secret(text)
            assert basic not in text
            assert "access-Zq1" not in text
            assert "session-Zq1" not in text


# --- Processor: declarations and creation-time checks ----------------------------------------


def test_processor_declares_its_steps_statuses_and_descriptions() -> None:
    assert ThingSpaceProcessor.steps == (Step.SUBMIT, Step.CONFIRM)
    assert ThingSpaceProcessor.descriptions == {
        Step.SUBMIT: "Submit ThingSpace status change",
        Step.CONFIRM: "Check ThingSpace request status",
    }
    assert {
        name: (m.target, m.carrier_value, m.post_update_status)
        for name, m in ThingSpaceProcessor.statuses.items()
    } == {
        "active": ("active", "activate", "active"),
        "suspended": ("suspended", "suspend", "suspended"),
        "deactivated": ("deactivated", "deactivate", "deactivated"),
    }
    assert ThingSpaceProcessor.account_label(CREDENTIALS) == f"ThingSpace account {ACCOUNT}"


@pytest.mark.parametrize(
    ("value", "canonical"),
    [("active", "active"), ("Suspended", "suspended"), (" DEACTIVATED ", "deactivated")],
)
def test_canonical_status_is_case_insensitive(value: str, canonical: str) -> None:
    assert ThingSpaceProcessor.canonical_status(value) == canonical


@pytest.mark.parametrize("value", ["restore", "activate", "preactive", "TERMINATED", ""])
def test_statuses_thingspace_cannot_set_are_refused_listing_the_allowed_ones(value: str) -> None:
    with pytest.raises(ValueError) as raised:
        ThingSpaceProcessor.canonical_status(value)

    assert str(raised.value) == (
        f"ThingSpace cannot set status {value!r}; allowed: active, suspended, deactivated"
    )


@pytest.mark.parametrize(
    ("target", "options", "problems"),
    [
        pytest.param("suspended", {}, [], id="suspend-needs-nothing"),
        pytest.param("deactivated", {}, [], id="deactivate-defaults"),
        pytest.param(
            "deactivated", {"reason_code": "FF", "etf_waiver": "false"}, [], id="deactivate-set"
        ),
        pytest.param(
            "deactivated",
            {"etf_waiver": "maybe"},
            ["etf_waiver must be true or false, not 'maybe'"],
            id="bad-etf-waiver",
        ),
        pytest.param(
            "active", {"service_plan": "M2M-5GB", "mdn_zip_code": "10001"}, [], id="active-ok"
        ),
        pytest.param(
            "active",
            {},
            [
                "service_plan is required to activate ThingSpace lines",
                "mdn_zip_code is required to activate ThingSpace lines",
            ],
            id="active-needs-both",
        ),
        pytest.param(
            "active",
            {"service_plan": " ", "mdn_zip_code": "1000"},
            [
                "service_plan is required to activate ThingSpace lines",
                "mdn_zip_code must be a 5-digit ZIP code, not '1000'",
            ],
            id="active-blank-plan-bad-zip",
        ),
    ],
)
def test_validate_options_names_each_problem(
    target: str, options: dict[str, str], problems: list[str]
) -> None:
    assert ThingSpaceProcessor.validate_options(target_status=target, options=options) == problems


def test_check_identifiers_needs_only_an_iccid(
    processor: ThingSpaceProcessor, mocked: responses.RequestsMock
) -> None:
    processor.check_identifiers(context("suspended"))  # no MSISDN or EID needed

    with pytest.raises(PermanentError, match="ThingSpace identifies devices by ICCID"):
        processor.check_identifiers(context("suspended", iccid=""))
    assert len(mocked.calls) == 0


# --- Processor: read_status ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("active", "active"),
        ("Active", "active"),
        ("suspended", "suspended"),
        ("suspend", "suspended"),
        ("deactivated", "deactivated"),
        ("deactive", "deactivated"),
        ("pre-active", None),
        ("pending activation", None),
        ("", None),
    ],
)
def test_read_status_maps_the_device_state_to_a_target(
    processor: ThingSpaceProcessor,
    mocked: responses.RequestsMock,
    store: RecordingStore,
    audit: list[CallRecord],
    state: str | None,
    expected: str | None,
) -> None:
    seed_tokens(store)
    mocked.post(LIST_URL, json=device_list(state))

    assert processor.read_status(context("active")) == expected
    assert [call.description for call in audit] == ["Read ThingSpace device"]


def test_read_status_of_a_device_not_on_the_account_is_a_permanent_error(
    processor: ThingSpaceProcessor, mocked: responses.RequestsMock, store: RecordingStore
) -> None:
    seed_tokens(store)
    mocked.post(LIST_URL, json=device_list(None))  # an empty devices list

    with pytest.raises(PermanentError) as raised:
        processor.read_status(context("active"))

    assert raised.value.message == (
        f"ThingSpace has no device with ICCID {ICCID} on account {ACCOUNT}"
    )


def test_tokens_send_bearer_and_session_headers() -> None:
    assert Tokens("a", "s").headers() == {"Authorization": "Bearer a", "VZ-M2M-Token": "s"}
