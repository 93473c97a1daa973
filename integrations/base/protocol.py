"""The carrier processor protocol: steps, progress, the processor base, and what it is handed.

A status update is a sequence of *steps* (POND: SIM status, then package status; async carriers:
submit, then confirm; then, for every carrier, the Rev.io service and its products). The
``bulkchanges`` layer runs the steps in order, skipping those already recorded in the device
change's :class:`Progress`, and records each step's result before it starts the next one —
so a retry or a crash-recovery resumes after the last completed step. A processor only
performs one step when asked; it knows nothing of Django models, claims or retries
(``docs/architecture.md``).

A processor is handed plain data — :class:`Credentials`, an :class:`UpdateContext` — and the
shared machinery of its calls: a :class:`Throttle` (the credentials' limits across every worker)
and, for token carriers, a :class:`TokenStore`.
"""

from __future__ import annotations

import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, Unpack

from integrations.base.errors import (
    CallbackRejected,
    CarrierPending,
    PermanentError,
    TransientError,
)

if TYPE_CHECKING:
    from integrations.base.http import CarrierClient, HttpOptions
    from integrations.base.origins import Origin
    from integrations.base.registry import Integration


@dataclass(frozen=True)
class Credentials:
    """Plain copy of an IntegrationAuthentication row. Secrets never appear in ``repr``."""

    integration_authentication_id: int
    integration: str
    base_url: str
    account: str = ""
    username: str = ""
    client_id: str = ""
    secret: str = field(default="", repr=False)
    secret_2: str = field(default="", repr=False)
    rate_limit: float = 10.0
    max_concurrency: int = 4
    # Inbound callbacks: the URL the carrier is told to call (it may hold the token, so it is
    # kept out of repr too; "" = polling only) and the secrets PondOps generated for them.
    callback_url: str = field(default="", repr=False)
    callback_username: str = ""
    callback_password: str = field(default="", repr=False)
    callback_token: str = field(default="", repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every value the redaction function must remove from audit text."""
        values = (self.secret, self.secret_2, self.callback_password, self.callback_token)
        return tuple(value for value in values if value)


# --- What a processor's calls share ----------------------------------------------------------


class Throttle(Protocol):
    """The limits of one set of credentials, shared by every worker on every host: a request
    rate and a number of concurrent calls (the contracts' "a small number of concurrent
    calls"). A slot is held for one HTTP request only — never across a step's other work or
    an asynchronous carrier's wait between confirm polls."""

    def call(self) -> AbstractContextManager[None]:
        """Block until one request may be sent — a free concurrency slot, then the next rate
        slot — and hold the concurrency slot until the block (the request) ends."""

    def penalise(self, seconds: float) -> None:
        """The carrier answered 429: slow every sender of these credentials down."""


class NoThrottle:
    @contextmanager
    def call(self) -> Iterator[None]:
        yield

    def penalise(self, seconds: float) -> None:
        return None


class TokenStore(Protocol):
    """Shared state for token carriers (ThingSpace): every worker on every host sees the same
    tokens, so N workers authenticate once. ``lock`` serialises the authentication itself."""

    def get(self, key: str) -> Any: ...

    def set(self, key: str, value: Any, *, ttl: float) -> None: ...

    def delete(self, key: str) -> None: ...

    def lock(self, key: str, *, timeout: float = 30) -> AbstractContextManager[None]: ...


class MemoryTokenStore:
    """A per-process TokenStore for tests and tools (workers use the shared cache)."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[float, Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: str) -> Any:
        with self._guard:
            expires, value = self._values.get(key, (0.0, None))
            return value if expires > time.monotonic() else None

    def set(self, key: str, value: Any, *, ttl: float) -> None:
        with self._guard:
            self._values[key] = (time.monotonic() + ttl, value)

    def delete(self, key: str) -> None:
        with self._guard:
            self._values.pop(key, None)

    @contextmanager
    def lock(self, key: str, *, timeout: float = 30) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        if not lock.acquire(timeout=timeout):
            raise TransientError(f"timed out waiting for the {key} lock")
        try:
            yield
        finally:
            lock.release()


def confirm_budget_seconds() -> float:
    """How long one CONFIRM attempt of an asynchronous carrier polls before the device waits
    (BULKCHANGE_CONFIRM_SECONDS); the next attempt confirms the stored request again."""
    from django.conf import settings

    return float(getattr(settings, "BULKCHANGE_CONFIRM_SECONDS", 30))


def carrier_time_scale() -> float:
    """BULKCHANGE_CARRIER_TIME_SCALE: the factor applied to carrier-side durations — the
    waiting schedule and confirm deadlines. 1 in production; tests compress hours into seconds
    with it (the simulators take the same factor)."""
    from django.conf import settings

    return float(getattr(settings, "BULKCHANGE_CARRIER_TIME_SCALE", 1.0))


def describe_duration(duration: timedelta) -> str:
    """ "2 hours", "30 minutes", "90 seconds": how messages name a confirm deadline."""
    seconds = round(duration.total_seconds())
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def utc_now() -> datetime:
    """The time recorded in step results (timezone-aware UTC)."""
    return datetime.now(UTC)


# --- Steps and progress ----------------------------------------------------------------------


class Step(StrEnum):
    """Resumable units of a status update. Which apply depends on the carrier."""

    PREPARE = "prepare"  # async carriers that name requests themselves (Teal): id stored first
    CARRIER_STATUS = "carrier_status"  # the carrier's (SIM/device) status — sync carriers
    SERVICE_STATUS = "service_status"  # POND: the SIM's packages
    SUBMIT = "submit"  # async carriers: the request is accepted, its id stored
    CONFIRM = "confirm"  # async carriers: the request has completed
    REV_SERVICE = "rev_service"
    REV_PRODUCTS = "rev_products"


# Steps that change something at the carrier: ``write_started_at`` is recorded before the first.
WRITE_STEPS = frozenset({Step.CARRIER_STATUS, Step.SERVICE_STATUS, Step.SUBMIT})


@dataclass(frozen=True)
class Progress:
    """What a device change has completed; mirrored field by field on DeviceChange."""

    carrier_status_at: datetime | None = None
    service_status_at: datetime | None = None
    carrier_request_id: str = ""
    carrier_submitted_at: datetime | None = None
    confirm_deadline_at: datetime | None = None
    write_started_at: datetime | None = None
    rev_service_id: int | None = None
    rev_product_ids: Mapping[str, int] = field(default_factory=dict)

    def is_done(self, step: Step) -> bool:
        return {
            Step.PREPARE: bool(self.carrier_request_id),
            Step.CARRIER_STATUS: self.carrier_status_at is not None,
            Step.SERVICE_STATUS: self.service_status_at is not None,
            Step.SUBMIT: self.carrier_submitted_at is not None,
            Step.CONFIRM: self.carrier_status_at is not None,
            Step.REV_SERVICE: self.rev_service_id is not None,
            Step.REV_PRODUCTS: False,  # per product; the Rev module checks each one
        }[step]

    @property
    def write_may_have_reached_carrier(self) -> bool:
        """A carrier write was started before and its step is not recorded: its answer may
        have been lost after the carrier acted. The contracts' "repeat safety" paragraphs say
        what to read before writing again."""
        return self.write_started_at is not None and self.carrier_submitted_at is None


PROGRESS_FIELDS = frozenset(Progress.__dataclass_fields__)


@dataclass(frozen=True)
class StepResult:
    """A completed step: ``updates`` are Progress field values to record before the next step."""

    step: Step
    updates: Mapping[str, Any]
    note: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.updates) - PROGRESS_FIELDS
        if unknown:
            raise ValueError(f"unknown progress fields: {sorted(unknown)}")


class CallbackOutcome(StrEnum):
    """What an inbound callback says (mirrored by CarrierCallback.Outcome)."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SIGNAL = "SIGNAL"  # a wake-up only (Teal): the result must still be read


class CallbackAuth(StrEnum):
    """How a carrier authenticates the callbacks it sends us (docs/carriers/README.md)."""

    NONE = "none"  # the carrier sends no callbacks we receive
    BODY_CREDENTIALS = "body-credentials"  # ThingSpace: our user name and password echoed
    URL_TOKEN = "url-token"  # noqa: S105  # Teal: the per-row token in the callback URL we sent


@dataclass(frozen=True)
class CallbackEvent:
    """One inbound callback, parsed: which request (and device) it is about and what it says.
    ``device_id`` is the identifier as the carrier named it ("" when none), ``device_kind`` its
    kind in lower case (``iccid``, ``eid``…); ``reason`` the carrier's failure text."""

    request_id: str
    outcome: CallbackOutcome
    device_id: str = ""
    device_kind: str = ""
    reason: str = ""
    received_at: datetime | None = None


@dataclass(frozen=True)
class UpdateContext:
    """Everything a processor needs for one device — plain data, no models."""

    device_change_id: int
    bulk_change_id: int
    iccid: str
    target_status: str  # canonical name from the processor's status table
    progress: Progress = field(default_factory=Progress)
    msisdn: str = ""
    eid: str = ""
    account_number: str = ""
    request_id: str = ""
    options: Mapping[str, str] = field(default_factory=dict)  # e.g. service_plan, reason_code
    today: date | None = None
    imei: str = ""  # ThingSpace activations pair the IMEI with the ICCID
    # CONFIRM: the stored callbacks for this device change's carrier request, oldest first.
    callbacks: tuple[CallbackEvent, ...] = ()

    def idempotency_key(self, step: Step | str) -> str:
        """Stable per device change and step, so a carrier that honours it drops a repeat."""
        return f"pondops-{self.device_change_id}-{step}"


@dataclass(frozen=True)
class StatusMapping:
    """One row of a carrier's status table: our target → the carrier's value(s) → inventory."""

    target: str  # canonical name, as docs/carriers/README.md lists it
    carrier_value: str  # what the carrier API is sent (or its action)
    post_update_status: str  # DeviceStatus code recorded after success
    # A target that cannot be undone from PondOps (the line is gone or retired): a bulk change
    # to it waits for a second person's approval (four-eyes, docs/operator-features.md).
    destructive: bool = False


@dataclass(frozen=True)
class PreviewRead:
    """What a preview learns of one device by reading it: its status as a canonical target
    name (None when it matches none) and, where the carrier would refuse the change for an
    identifier only the read reveals is missing (ThingSpace's IMEI for an activation), why."""

    status: str | None
    missing: str = ""


# --- The processor base ----------------------------------------------------------------------

ClientT = TypeVar("ClientT", bound="CarrierClient")
PollT = TypeVar("PollT")


class StatusUpdateProcessor(ABC, Generic[ClientT]):
    """One carrier's status-update steps. Subclasses set the class attributes and implement
    :meth:`perform` (and :meth:`read_status` where the carrier has a read call).

    Every processor takes the same arguments — credentials, the options of its calls
    (:class:`~integrations.base.http.HttpOptions`) and a token store — and builds its carrier's
    client (:attr:`client_class`) from them once, on first use (:attr:`client`).
    """

    integration: ClassVar[Integration]
    display_name: ClassVar[str]
    statuses: ClassVar[Mapping[str, StatusMapping]]
    steps: ClassVar[tuple[Step, ...]]
    descriptions: ClassVar[Mapping[Step, str]]  # fixed log_entry_description per step
    # Carriers that cap provisioning actions per line per day (ThingSpace): PondOps counts
    # each device's actions from its own history and refuses, at creation, what would exceed
    # the credentials' daily_action_budget.
    limits_daily_actions: ClassVar[bool] = False
    # The contract's limits, given to a new credentials row of this carrier (an operator may
    # lower or raise them per row).
    default_rate_limit: ClassVar[float] = 10.0
    default_max_concurrency: ClassVar[int] = 4
    # Where base_url may point (the contract's production and sandbox origins) and what it
    # carries after the origin (POND's prefix); see integrations.base.origins.
    known_origins: ClassVar[tuple[Origin, ...]] = ()
    base_path: ClassVar[str] = ""
    # The secrets every call sends: re-entered whenever base_url changes.
    secret_fields: ClassVar[tuple[str, ...]] = ("secret",)
    # Inbound callbacks: how the carrier authenticates them, and the HTTP methods it uses.
    callback_auth: ClassVar[CallbackAuth] = CallbackAuth.NONE
    callback_methods: ClassVar[frozenset[str]] = frozenset({"POST"})
    # The status table's refused moves (docs/carriers/README.md): a current status (canonical
    # target name) → the targets the carrier refuses from it. Previews report them, reverts
    # leave such devices out; the run itself still meets the carrier's refusal.
    refused_transitions: ClassVar[Mapping[str, frozenset[str]]] = {}
    # The carrier's client. Not a ClassVar: a ClassVar cannot name the type parameter, and the
    # parameter is what gives ``self.client`` the carrier client's own methods.
    client_class: type[ClientT]

    def __init__(
        self,
        *,
        credentials: Credentials,
        token_store: TokenStore | None = None,
        **options: Unpack[HttpOptions],
    ) -> None:
        self.credentials = credentials
        self.options = options
        self.token_store: TokenStore = token_store or MemoryTokenStore()

    @cached_property
    def client(self) -> ClientT:
        """This processor's client, built from its constructor arguments (the one signature)."""
        return self.client_class(
            credentials=self.credentials, **self.options, **self.client_arguments()
        )

    def client_arguments(self) -> Mapping[str, Any]:
        """What this carrier's client takes beyond credentials and options (ThingSpace's: the
        token store); nothing by default."""
        return {}

    @classmethod
    def canonical_status(cls, value: str) -> str:
        """The canonical target name for ``value`` (case-insensitive); ValueError listing the
        allowed values when the carrier cannot set it."""
        wanted = value.strip().lower()
        for name in cls.statuses:
            if name.lower() == wanted:
                return name
        allowed = ", ".join(cls.statuses)
        raise ValueError(f"{cls.display_name} cannot set status {value!r}; allowed: {allowed}")

    # The carrier options (``bulkchanges.types.OPTION_KEYS`` names) this carrier's steps read;
    # any other option given is refused at creation, never silently ignored.
    option_names: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check_options(cls, *, target_status: str, options: Mapping[str, str]) -> list[str]:
        """Every problem with a request's carrier options, found at creation: an option this
        carrier does not take, then the carrier's own rules (:meth:`validate_options`)."""
        foreign = [
            f"{cls.display_name} takes no {name}; leave it empty"
            for name, value in sorted(options.items())
            if value and name not in cls.option_names
        ]
        return foreign + cls.validate_options(target_status=target_status, options=options)

    @classmethod
    def validate_options(cls, *, target_status: str, options: Mapping[str, str]) -> list[str]:
        """Problems with the values of the options this carrier takes (``option_names``)."""
        return []

    @classmethod
    def validate_base_url(cls, base_url: str) -> list[str]:
        """Problems with a credentials row's ``base_url`` for this carrier (for example Rev.io's
        doubled ``/v1``), found when the row is saved; none by default."""
        return []

    @classmethod
    def parse_callback(
        cls, *, credentials: Credentials, method: str, query: Mapping[str, str], body: bytes
    ) -> list[CallbackEvent]:
        """Authenticate and parse one inbound callback (docs/carriers/README.md). Raises
        :class:`CallbackRejected` — 401 for wrong credentials or token, 400 for a body that
        cannot be parsed. Carriers that send no callbacks refuse every one."""
        raise CallbackRejected(404, f"{cls.display_name} sends no callbacks")

    @classmethod
    def account_label(cls, credentials: Credentials) -> str:
        """How messages name the account ("POND distributor 1234"), never with a secret."""
        return f"{cls.display_name} account {credentials.account or credentials.username}"

    @classmethod
    def credentials_changed(cls, *, credentials: Credentials, token_store: TokenStore) -> None:
        """An operator changed these credentials: forget whatever state the carrier keeps for
        the old ones (ThingSpace: cached tokens and the login-failure lockout)."""
        return None

    def check_identifiers(self, context: UpdateContext) -> None:
        """Raise PermanentError before any call when the device lacks what the carrier needs
        (Telegence: an MSISDN; Teal: an EID)."""
        return None

    def read_status(self, context: UpdateContext) -> str | None:
        """The device's current status as a canonical target name, or None when the carrier has
        no read call or the status matches no target."""
        return None

    def preview_read(self, context: UpdateContext) -> PreviewRead:
        """A preview's read of one device: :meth:`read_status`, and nothing missing unless the
        carrier says otherwise. Only reads (a preview's client refuses writes)."""
        return PreviewRead(self.read_status(context))

    @classmethod
    def transition_refusal(cls, *, current: str, target: str) -> str:
        """Why the carrier's rules refuse moving a device from ``current`` to ``target``
        (canonical names, any case), or "" when they allow it."""
        for source, refused in cls.refused_transitions.items():
            if source.lower() == current.lower() and target.lower() in {
                name.lower() for name in refused
            }:
                return f"{cls.display_name} refuses a change from {source} to {target}"
        return ""

    @abstractmethod
    def perform(self, step: Step, context: UpdateContext) -> StepResult:
        """Perform one carrier step; raise PermanentError/TransientError on failure, and
        :class:`CarrierPending` from CONFIRM while the carrier is still working."""

    # Asynchronous carriers: SUBMIT, then CONFIRM (docs/carriers/README.md) -------------------

    def confirm_deadline(self, context: UpdateContext) -> timedelta:
        """How long after SUBMIT the carrier has to settle the request (the contract's figure,
        per action where it differs); past it, :meth:`reconcile` decides."""
        return timedelta(hours=1)

    def deadline_passed(self, context: UpdateContext) -> bool:
        deadline = context.progress.confirm_deadline_at
        return deadline is not None and utc_now() >= deadline

    def reconcile(self, context: UpdateContext, *, detail: str = "") -> StepResult:
        """Past the confirm deadline: the read decides. The device in the target state →
        CONFIRM is done ("reconciled by read"); otherwise a permanent error telling the
        operator to check the carrier before retrying."""
        target = self._target(context)
        current = self.read_status(context)
        if current is not None and current.lower() in {
            target.lower(),
            self.statuses[target].post_update_status.lower(),
        }:
            return StepResult(
                Step.CONFIRM, {"carrier_status_at": utc_now()}, note="reconciled by read"
            )
        deadline = self.confirm_deadline(context)
        request_id = context.progress.carrier_request_id
        what = f"request {request_id}" if request_id else f"the change of ICCID {context.iccid}"
        message = (
            f"{self.display_name} did not confirm {what} within {describe_duration(deadline)}; "
            "check the carrier before retrying"
        )
        raise PermanentError(f"{message}: {detail}" if detail else message)

    @staticmethod
    def sleep(seconds: float) -> None:
        """Wait between CONFIRM polls (a seam: tests replace it to run the back-off fast)."""
        time.sleep(seconds)

    @staticmethod
    def clock() -> float:
        """The CONFIRM budget's clock (a seam, like :meth:`sleep`)."""
        return time.monotonic()

    def poll(self, check: Callable[[], PollT | None]) -> PollT | None:
        """Call ``check`` at once, then after 0.2 to 0.25 s doubling to 2 s, until it returns a
        value or the confirm budget (BULKCHANGE_CONFIRM_SECONDS) is spent; None means still
        pending (the caller raises :class:`CarrierPending`)."""
        deadline = self.clock() + confirm_budget_seconds()
        delay = 0.2 + random.random() * 0.05
        while True:
            value = check()
            if value is not None:
                return value
            remaining = deadline - self.clock()
            if remaining <= 0:
                return None
            self.sleep(min(delay, remaining))
            delay = min(delay * 2, 2.0)

    def pending(self, context: UpdateContext, state: str, *, call: Any = None) -> CarrierPending:
        """The CarrierPending for a request still at ``state`` after this attempt's budget."""
        request_id = context.progress.carrier_request_id or "(no id)"
        return CarrierPending(
            f"waiting for {self.display_name}: request {request_id} {state}", call=call
        )

    def _target(self, context: UpdateContext) -> str:
        """The context's target as a canonical name; PermanentError (before any call) for a
        status this carrier cannot set."""
        try:
            return self.canonical_status(context.target_status)
        except ValueError as exc:
            raise PermanentError(str(exc)) from exc

    def _unknown_step(self, step: Step) -> PermanentError:
        """The error for a step this carrier does not have."""
        return PermanentError(f"{self.display_name} has no step {step!r}")
