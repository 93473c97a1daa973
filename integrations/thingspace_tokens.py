"""Verizon ThingSpace's two tokens: the login that gets them, the store that shares them, the
lockout that protects the account, and the client base whose calls send them.

Wire contract: ``docs/carriers/thingspace.md``. A login is two calls — an OAuth token (client
key/secret), then a UWS session (username/password) — whose tokens every later call sends. Both
live in the shared :class:`~integrations.base.TokenStore` (per credentials row, until shortly
before they expire) and are fetched under the store's lock, re-checked inside it, so N workers
log in once. A 401 on a later call drops both and logs in again, once; a 400 naming the session
token (``…SessionToken.Expired|Format|Invalid``) drops the session only and opens a new one with
the cached access token, once; the same answer after that is permanent. The session expires
after 20 minutes of inactivity, so every successful call renews its cache entry. Two
consecutive failed logins for a credentials row stop all login attempts for it (Verizon locks
the UWS user after five) until :func:`reset_login_failures` is called.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Unpack

from integrations.base.audit import CallRecord
from integrations.base.errors import (
    AuthenticationError,
    IntegrationError,
    PermanentError,
    TransientError,
)
from integrations.base.http import CarrierClient, HttpOptions, HttpResponse, unexpected_response
from integrations.base.protocol import Credentials, MemoryTokenStore, TokenStore

CARRIER = "ThingSpace"

OAUTH_PATH = "api/ts/v1/oauth2/token"
LOGIN_PATH = "api/m2m/v1/session/login"

REQUEST_OAUTH = "Get ThingSpace OAuth token"
START_SESSION = "Start ThingSpace session"

DEFAULT_TOKEN_SECONDS = 3600.0  # when the token response has no expires_in
SESSION_SECONDS = 20 * 60.0  # a session expires after 20 minutes of inactivity (sliding)
SESSION_TOKEN_CODES = ("SessionToken.Expired", "SessionToken.Format", "SessionToken.Invalid")
SAFETY_MARGIN_SECONDS = 60.0  # tokens are dropped this long (at most 10 %) before they expire
MAX_LOGIN_FAILURES = 2  # consecutive failed logins before we stop trying (Verizon locks at 5)
LOGIN_FAILURES_TTL = 24 * 3600.0


def account_label(credentials: Credentials) -> str:
    """How messages name a ThingSpace account ("ThingSpace account 0000123456-00001")."""
    return f"ThingSpace account {credentials.account}"


def lockout_message(credentials: Credentials) -> str:
    """The error every device of an account gets while its logins are stopped."""
    return f"ThingSpace login failing for {credentials.account}; check the credentials"


def _key(credentials: Credentials, name: str) -> str:
    return f"thingspace:{credentials.integration_authentication_id}:{name}"


def reset_login_failures(token_store: TokenStore, credentials: Credentials) -> None:
    """Allow logins again for a credentials row after its credentials were fixed.

    Forgets the consecutive-failure count (and any tokens cached under the old credentials);
    call it whenever an operator changes the row's key, secret, user or password. Idempotent.
    """
    for name in ("login_failures", "access_token", "session_token"):
        token_store.delete(_key(credentials, name))


def error_code(call: CallRecord | None) -> str:
    """The ``errorCode`` of a ThingSpace error answer (``""`` when the body has none): Verizon
    keeps its codes stable, not its messages, so answers are classified by code."""
    if call is None:
        return ""
    try:
        body = json.loads(call.response_text)
    except ValueError:
        return ""
    code = body.get("errorCode") if isinstance(body, dict) else None
    return code.strip() if isinstance(code, str) else ""


def is_session_token_error(error: IntegrationError) -> bool:
    """A 400 whose ``errorCode`` names the session token (``UnifiedWebService.REQUEST_FAILED.
    SessionToken.Expired``, ``….Format``, ``….Invalid``): open a new session and repeat once."""
    status = error.call.response_status if error.call is not None else None
    return status == 400 and error_code(error.call).endswith(SESSION_TOKEN_CODES)


def _token_ttl(seconds: float) -> float:
    """How long to keep a token valid for ``seconds``: a safety margin less."""
    return max(1.0, seconds - min(SAFETY_MARGIN_SECONDS, seconds / 10))


@dataclass(frozen=True)
class Tokens:
    """The two tokens every data call sends."""

    access_token: str
    session_token: str

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.access_token}",
            "VZ-M2M-Token": self.session_token,
        }


class ThingSpaceTokenClient(CarrierClient):
    """The authenticated half of ThingSpace's client: data calls (:meth:`_data_call`) send both
    tokens, from the shared ``token_store`` or by logging in on demand, and are repeated once
    after a 401. A 401/403 on a login call names what was rejected (client key, UWS user); on a
    data call, the session."""

    carrier = CARRIER

    def __init__(
        self,
        *,
        credentials: Credentials,
        token_store: TokenStore | None = None,
        **options: Unpack[HttpOptions],
    ) -> None:
        super().__init__(credentials=credentials, **options)
        self.token_store: TokenStore = token_store or MemoryTokenStore()

    @classmethod
    def auth_failure(cls, credentials: Credentials) -> str:
        return f"ThingSpace rejected the session for {account_label(credentials)}"

    def _data_call(
        self,
        method: str,
        path: str,
        description: str,
        *,
        json_body: Any = None,
        idempotency_key: str = "",
    ) -> HttpResponse:
        """One data call with both tokens. After a 401, log in again (both tokens) and repeat
        once; after a 400 naming the session token, open a new session (the access token kept)
        and repeat once; the same answer again is permanent. A successful call renews the
        session's cache entry (its 20 minutes of inactivity start again); 5xx is transient."""

        def send(tokens: Tokens) -> HttpResponse:
            try:
                response = self._call(
                    method,
                    path,
                    description,
                    auth_headers=tokens.headers(),
                    headers={"Content-Type": "application/json"},
                    json_body=json_body,
                    idempotency_key=idempotency_key,
                )
            except PermanentError as exc:
                status = exc.call.response_status if exc.call is not None else None
                if status is not None and status >= 500:  # every 5xx is transient here
                    raise TransientError(exc.message, call=exc.call) from exc
                raise
            self._renew_session(tokens)
            return response

        tokens = self.tokens()
        try:
            return send(tokens)
        except AuthenticationError as exc:
            if exc.call is None or exc.call.response_status != 401:
                raise  # 403: this account may not do this; logging in again will not help
            tokens = self._log_in_again(stale=tokens)
        except PermanentError as exc:
            if not is_session_token_error(exc):
                raise
            tokens = self._new_session(stale=tokens)
        try:
            return send(tokens)
        except PermanentError as exc:
            if is_session_token_error(exc):
                raise AuthenticationError(
                    f"{self.auth_failure(self.credentials)} ({exc.message})", call=exc.call
                ) from exc
            raise

    def tokens(self) -> Tokens:
        """Both tokens: from the shared store, or by logging in (once, under the lock)."""
        cached = self._cached_tokens()
        if cached is not None:
            return cached
        with self._login_lock():
            cached = self._cached_tokens()  # another worker may have logged in meanwhile
            if cached is not None:
                return cached
            return self._log_in()

    def _log_in_again(self, *, stale: Tokens) -> Tokens:
        """After a 401: drop the tokens that were refused and log in again (both) — unless
        another worker already replaced them, in which case use theirs."""
        with self._login_lock():
            cached = self._cached_tokens()
            if cached is not None and cached != stale:
                return cached
            self.token_store.delete(_key(self.credentials, "access_token"))
            self.token_store.delete(_key(self.credentials, "session_token"))
            return self._log_in()

    def _new_session(self, *, stale: Tokens) -> Tokens:
        """After a session-token error: drop the session only and open a new one with the
        cached access token (a full login if that is refused) — unless another worker already
        replaced it, in which case use theirs."""
        with self._login_lock():
            cached = self._cached_tokens()
            if cached is not None and cached != stale:
                return cached
            self.token_store.delete(_key(self.credentials, "session_token"))
            return self._log_in()

    def _renew_session(self, tokens: Tokens) -> None:
        """A call succeeded with this session: ThingSpace extends it by 20 minutes from now, so
        the cache does too — unless another worker has replaced it meanwhile."""
        key = _key(self.credentials, "session_token")
        if self.token_store.get(key) in (None, tokens.session_token):
            self.token_store.set(key, tokens.session_token, ttl=_token_ttl(SESSION_SECONDS))

    def _cached_tokens(self) -> Tokens | None:
        access_token = self.token_store.get(_key(self.credentials, "access_token"))
        session_token = self.token_store.get(_key(self.credentials, "session_token"))
        if access_token and session_token:
            return Tokens(access_token, session_token)
        return None

    def _login_lock(self) -> AbstractContextManager[None]:
        # Long enough for both login calls at their worst, so a holder never loses it mid-way.
        return self.token_store.lock(
            _key(self.credentials, "login"), timeout=2 * sum(self.http.timeouts) + 5
        )

    def _log_in(self) -> Tokens:
        """Log in under the login lock; count consecutive rejected logins and refuse, without a
        call, once there were MAX_LOGIN_FAILURES of them.

        A login is both calls; the access token is kept only once the session is open, so a
        rejected login leaves nothing behind. When only the session expired, a new one is
        first asked for with the cached access token; if that is refused (the token may have
        been revoked), a full login decides — only a full login's rejection counts."""
        failures_key = _key(self.credentials, "login_failures")
        failures = int(self.token_store.get(failures_key) or 0)
        if failures >= MAX_LOGIN_FAILURES:
            raise AuthenticationError(lockout_message(self.credentials))
        access_key = _key(self.credentials, "access_token")
        cached_access_token = self.token_store.get(access_key)
        if cached_access_token:
            try:
                session_token = self._start_session(cached_access_token)
            except AuthenticationError:
                self.token_store.delete(access_key)
            else:
                self.token_store.delete(failures_key)
                return Tokens(cached_access_token, session_token)
        try:
            access_token, seconds = self._fetch_access_token()
            session_token = self._start_session(access_token)
        except AuthenticationError:
            self.token_store.set(failures_key, failures + 1, ttl=LOGIN_FAILURES_TTL)
            raise
        self.token_store.set(access_key, access_token, ttl=_token_ttl(seconds))
        self.token_store.delete(failures_key)
        return Tokens(access_token, session_token)

    def _fetch_access_token(self) -> tuple[str, float]:
        """A new OAuth access token and the seconds it is valid for."""
        key_and_secret = f"{self.credentials.client_id}:{self.credentials.secret}"
        response = self._login_call(
            OAUTH_PATH,
            REQUEST_OAUTH,
            rejected="the OAuth client key and secret",
            authorization="Basic " + base64.b64encode(key_and_secret.encode()).decode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            data="grant_type=client_credentials",
        )
        body = response.body if isinstance(response.body, dict) else {}
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise unexpected_response("ThingSpace", "an access_token", response.call)
        expires_in = body.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            return access_token, float(expires_in)
        return access_token, DEFAULT_TOKEN_SECONDS

    def _start_session(self, access_token: str) -> str:
        """A new UWS session token (cached for its 20 minutes of inactivity, less the safety
        margin; each successful call renews it)."""
        response = self._login_call(
            LOGIN_PATH,
            START_SESSION,
            rejected=f"the UWS user {self.credentials.username}",
            authorization=f"Bearer {access_token}",
            json_body={
                "username": self.credentials.username,
                "password": self.credentials.secret_2,
            },
        )
        body = response.body if isinstance(response.body, dict) else {}
        session_token = body.get("sessionToken")
        if not isinstance(session_token, str) or not session_token:
            raise unexpected_response("ThingSpace", "a sessionToken", response.call)
        self.token_store.set(
            _key(self.credentials, "session_token"),
            session_token,
            ttl=_token_ttl(SESSION_SECONDS),
        )
        return session_token

    def _login_call(
        self,
        path: str,
        description: str,
        *,
        rejected: str,
        authorization: str,
        headers: Mapping[str, str] | None = None,
        data: str | None = None,
        json_body: Any = None,
    ) -> HttpResponse:
        """One login call (POST). 401/403 and 400 are rejected credentials — a login failure,
        an AuthenticationError saying what was ``rejected``; 429/5xx/timeouts stay
        transient."""
        auth_failure = f"ThingSpace rejected {rejected} for {account_label(self.credentials)}"
        try:
            return self._call(
                "POST",
                path,
                description,
                auth_headers={"Authorization": authorization},
                headers=headers,
                auth_failure=auth_failure,
                data=data,
                json_body=json_body,
            )
        except AuthenticationError:
            raise
        except PermanentError as exc:
            if exc.call is not None and exc.call.response_status == 400:
                raise AuthenticationError(f"{auth_failure} ({exc.message})", call=exc.call) from exc
            raise
