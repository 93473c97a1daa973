"""ThingSpace's two-token login, as ``docs/carriers/thingspace.md`` describes it.

An account's client key and secret (HTTP Basic) buy an OAuth access token that lives the
account's ``token_seconds``; that Bearer token plus the UWS username and password buy a
session token that lives 20 minutes. Five consecutive wrong passwords lock the UWS user until
the account is added again. A test can revoke tokens now, or after N more device calls.

:class:`ThingSpaceLogins` holds the accounts and every token issued to them; the simulator's
routes turn its answers (and its :class:`~.carrier.CarrierError` 401s) into HTTP.
"""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import dataclass

from .carrier import Account, CarrierError
from .messages import SimRequest

DEFAULT_TOKEN_SECONDS = 3600
SESSION_SECONDS = 20 * 60
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
            session = _valid(self._sessions, request.header("VZ-M2M-Token"), now)
            if session is None or session.account_name != access.account_name:
                raise CarrierError(401, "Invalid or expired session token (VZ-M2M-Token)")
        return self.accounts[access.account_name]

    def issue_access_token(self, account: ThingSpaceAccount) -> str:
        token = f"ts-access-{uuid.uuid4().hex}"
        self._access_tokens[token] = Token(
            account.account_name, time.monotonic() + account.token_seconds
        )
        return token

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
        self._sessions[token] = Token(account.account_name, time.monotonic() + SESSION_SECONDS)
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
