"""ThingSpace's two-token login, as ``docs/carriers/thingspace.md`` describes it.

An account's client key and secret (HTTP Basic) buy an OAuth access token that lives the
account's ``token_seconds`` from its first issue — asking again within that time answers the
same token; that Bearer token plus the UWS username and password buy a session token that
expires after ``session_inactivity_seconds`` (20 minutes) without a call: every call made with
it extends it. An expired (or revoked) session is answered 400
``UnifiedWebService.REQUEST_FAILED.SessionToken.Expired``, an unknown one 400
``….SessionToken.Invalid``, a missing one 400 ``….SessionToken.Format``. Five consecutive wrong
passwords lock the UWS user until the account is added again. A test can revoke tokens now, or
after N more device calls.

:class:`ThingSpaceLogins` holds the accounts and every token issued to them; the simulator's
routes turn its answers (and its :class:`~.carrier.CarrierError` 401s) into HTTP.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

from .carrier import Account, CarrierError
from .messages import SimRequest

DEFAULT_TOKEN_SECONDS = 3600
SESSION_SECONDS = 20 * 60  # inactivity before a session expires (a knob: config)


class ErrorCode(IntEnum):
    """ThingSpace's namespaced ``errorCode`` strings, as ints riding on CarrierError's
    ``code`` (:data:`ERROR_CODES` spells them)."""

    SESSION_EXPIRED = 1
    SESSION_INVALID = 2
    SESSION_FORMAT = 3
    DEVICE_NOT_FOUND = 4
    DEVICE_ALREADY_ACTIVE = 5
    INPUT_INVALID = 6
    REQUEST_NOT_FOUND = 7


ERROR_CODES: Mapping[int, str] = {
    ErrorCode.SESSION_EXPIRED: "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired",
    ErrorCode.SESSION_INVALID: "UnifiedWebService.REQUEST_FAILED.SessionToken.Invalid",
    ErrorCode.SESSION_FORMAT: "UnifiedWebService.INPUT_INVALID.SessionToken.Format",
    ErrorCode.DEVICE_NOT_FOUND: "UnifiedWebService.REQUEST_FAILED.DeviceNotFound",
    ErrorCode.DEVICE_ALREADY_ACTIVE: "UnifiedWebService.REQUEST_FAILED.DeviceAlreadyActive",
    ErrorCode.INPUT_INVALID: "REQUEST_FAILED.BadRequest",  # as the core answers bad payloads
    ErrorCode.REQUEST_NOT_FOUND: "UnifiedWebService.REQUEST_FAILED.RequestNotFound",
}
LOCK_AFTER_FAILED_LOGINS = 5
TOKEN_KINDS = ("all", "access", "session")


@dataclass
class ThingSpaceAccount(Account):
    account_name: str = ""
    client_key: str = ""
    client_secret: str = ""
    username: str = ""
    password: str = ""
    token_seconds: int = DEFAULT_TOKEN_SECONDS
    failed_logins: int = 0

    @property
    def locked(self) -> bool:
        return self.failed_logins >= LOCK_AFTER_FAILED_LOGINS


@dataclass
class Token:
    account_name: str
    expires_at: float


class ThingSpaceLogins:
    """Accounts by name, and the access and session tokens issued to them.

    Not thread-safe on its own: the simulator calls it under its lock.
    """

    def __init__(self) -> None:
        self.accounts: dict[str, ThingSpaceAccount] = {}
        self._access_tokens: dict[str, Token] = {}
        self._sessions: dict[str, Token] = {}
        self._expired_sessions: set[str] = set()
        self.session_inactivity_seconds: float = SESSION_SECONDS
        self._revoke: tuple[str, int] | None = None  # (kind, device calls left before it)

    def account_by_key(self, client_key: str) -> ThingSpaceAccount | None:
        for account in self.accounts.values():
            if hmac.compare_digest(client_key.encode(), account.client_key.encode()):
                return account
        return None

    def client_account(self, request: SimRequest) -> ThingSpaceAccount:
        """The account whose client key and secret the request's Basic header carries."""
        credentials = request.basic_credentials()
        account = self.account_by_key(credentials[0]) if credentials else None
        if (
            credentials is None
            or account is None
            or not hmac.compare_digest(credentials[1].encode(), account.client_secret.encode())
        ):
            raise CarrierError(401, "Invalid client key or secret")
        return account

    def token_account(self, request: SimRequest, *, needs_session: bool) -> ThingSpaceAccount:
        """The account of the request's valid Bearer token and, when ``needs_session``, of its
        valid ``VZ-M2M-Token`` session too (both must belong to the same account)."""
        now = time.monotonic()
        access = _valid(self._access_tokens, _bearer_token(request), now)
        if access is None:
            raise CarrierError(401, "Invalid or expired access token")
        if needs_session:
            self._check_session(request.header("VZ-M2M-Token"), access.account_name, now)
        return self.accounts[access.account_name]

    def _check_session(self, value: str | None, account_name: str, now: float) -> None:
        """The session must be this account's and active; using it extends it (sliding)."""
        if not value:
            raise CarrierError(
                400, code=ErrorCode.SESSION_FORMAT, message="VZ-M2M-Token header is missing"
            )
        session = self._sessions.get(value)
        if session is not None and session.expires_at <= now:
            del self._sessions[value]
            self._expired_sessions.add(value)
            session = None
        if session is None:
            if value in self._expired_sessions:
                raise CarrierError(
                    400, code=ErrorCode.SESSION_EXPIRED, message="Session token expired"
                )
            raise CarrierError(
                400, code=ErrorCode.SESSION_INVALID, message="Session token is not valid"
            )
        if session.account_name != account_name:
            raise CarrierError(
                400, code=ErrorCode.SESSION_INVALID, message="Session token is not valid"
            )
        session.expires_at = now + self.session_inactivity_seconds

    def issue_access_token(self, account: ThingSpaceAccount) -> tuple[str, int]:
        """The account's access token and its remaining seconds: the one issued within its
        lifetime if there is one (ThingSpace answers the same token within the hour), else a
        new one."""
        now = time.monotonic()
        for value, token in self._access_tokens.items():
            if token.account_name == account.account_name and token.expires_at > now:
                return value, max(1, int(token.expires_at - now))
        value = f"ts-access-{uuid.uuid4().hex}"
        self._access_tokens[value] = Token(account.account_name, now + account.token_seconds)
        return value, account.token_seconds

    def open_session(self, account: ThingSpaceAccount, *, username: str, password: str) -> str:
        """A session token for the account's UWS user; a wrong username or password counts
        towards the lock, a right one resets the count."""
        if account.locked:
            raise CarrierError(401, f"UWS user {account.username} is locked; contact support")
        if not (
            hmac.compare_digest(username.encode(), account.username.encode())
            and hmac.compare_digest(password.encode(), account.password.encode())
        ):
            account.failed_logins += 1
            raise CarrierError(401, f"Invalid username or password for {username}")
        account.failed_logins = 0
        token = f"ts-session-{uuid.uuid4().hex}"
        self._sessions[token] = Token(
            account.account_name, time.monotonic() + self.session_inactivity_seconds
        )
        return token

    def revoke_now(self, kind: str) -> int:
        """Revoke ``kind`` tokens (all, access, session) and any revocation still to come;
        answers how many tokens went."""
        self._revoke = None
        revoked = 0
        if kind in ("all", "access"):
            revoked += len(self._access_tokens)
            self._access_tokens.clear()
        if kind in ("all", "session"):
            revoked += len(self._sessions)
            self._expired_sessions.update(self._sessions)  # answered as expired from now on
            self._sessions.clear()
        return revoked

    def revoke_after(self, kind: str, device_calls: int) -> None:
        """Revoke ``kind`` tokens once ``device_calls`` more device calls have been served."""
        self._revoke = (kind, device_calls)

    def count_down_revocation(self) -> None:
        """Called on each device call: revoke the tokens once the calls a test asked for have
        been served."""
        if self._revoke is None:
            return
        kind, calls_left = self._revoke
        if calls_left > 0:
            self._revoke = (kind, calls_left - 1)
            return
        self.revoke_now(kind)

    def client_account_name(self, request: SimRequest) -> str | None:
        """The account name the request's client key belongs to, if any."""
        credentials = request.basic_credentials()
        account = self.account_by_key(credentials[0]) if credentials else None
        return account.account_name if account is not None else None

    def bearer_account_name(self, request: SimRequest) -> str | None:
        """The account name of the request's access token, valid or not, if any."""
        token = self._access_tokens.get(_bearer_token(request) or "")
        return token.account_name if token is not None else None


def _bearer_token(request: SimRequest) -> str | None:
    scheme, _, token = (request.header("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _valid(tokens: dict[str, Token], value: str | None, now: float) -> Token | None:
    token = tokens.get(value or "")
    return token if token is not None and token.expires_at > now else None
