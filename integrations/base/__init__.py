"""The carrier processor protocol, its errors, the registry, and the one HTTP mechanism.

What every carrier module builds on, one module per seam (``docs/architecture.md``):

- :mod:`~integrations.base.protocol` — steps, progress, the processor base and the plain data
  it is handed (credentials, the device's context, the throttle and token store protocols);
- :mod:`~integrations.base.errors` — failures as types (permanent, transient with
  ``retry_after``, authentication), the one status classifier, ``Retry-After``;
- :mod:`~integrations.base.http` — :class:`CarrierHttp`, the one way a carrier is called, and
  :class:`CarrierClient`, the base of each carrier's client;
- :mod:`~integrations.base.egress` — the egress guard every session has: the address
  connected to is checked, no redirect is followed;
- :mod:`~integrations.base.origins` — each integration's known origins, which a
  credentials row's ``base_url`` must be one of;
- :mod:`~integrations.base.audit` — the audit record of every call and the one redaction
  function;
- :mod:`~integrations.base.registry` — the integrations and the processor of each.

Adding a carrier is one module (client + processor, decorated with nothing) plus one line in
the registry. This package re-exports what other code imports from ``integrations.base``.
"""

from integrations.base.audit import (
    REDACTED,
    CallRecord,
    CallRecorder,
    CallStart,
    CallStartRecorder,
    redact,
)
from integrations.base.egress import EgressPolicy, EgressRefused, address_problem
from integrations.base.errors import (
    AuthenticationError,
    CallbackRejected,
    CarrierPending,
    IntegrationError,
    PermanentError,
    TransientError,
    WriteRefused,
    is_transient_status,
    parse_retry_after,
)
from integrations.base.http import (
    CarrierClient,
    CarrierHttp,
    HttpOptions,
    HttpResponse,
    default_egress_policy,
    default_timeouts,
    http_session,
    readable_error,
    unexpected_response,
)
from integrations.base.origins import Origin, base_url_origin_problems, known
from integrations.base.protocol import (
    WRITE_STEPS,
    CallbackAuth,
    CallbackEvent,
    CallbackOutcome,
    Credentials,
    MemoryTokenStore,
    PreviewRead,
    Progress,
    StatusMapping,
    StatusUpdateProcessor,
    Step,
    StepResult,
    Throttle,
    TokenStore,
    UpdateContext,
    carrier_time_scale,
    confirm_budget_seconds,
    describe_duration,
    utc_now,
)
from integrations.base.registry import (
    Integration,
    base_url_problems,
    billing_processor_class,
    carrier_integrations,
    default_limits,
    integration_class,
    processor_class,
    secrets_to_reenter,
)

__all__ = [
    "REDACTED",
    "WRITE_STEPS",
    "AuthenticationError",
    "CallRecord",
    "CallRecorder",
    "CallStart",
    "CallStartRecorder",
    "CallbackAuth",
    "CallbackEvent",
    "CallbackOutcome",
    "CallbackRejected",
    "CarrierClient",
    "CarrierHttp",
    "CarrierPending",
    "Credentials",
    "EgressPolicy",
    "EgressRefused",
    "HttpOptions",
    "HttpResponse",
    "Integration",
    "IntegrationError",
    "MemoryTokenStore",
    "Origin",
    "PermanentError",
    "PreviewRead",
    "Progress",
    "StatusMapping",
    "StatusUpdateProcessor",
    "Step",
    "StepResult",
    "Throttle",
    "TokenStore",
    "TransientError",
    "UpdateContext",
    "WriteRefused",
    "address_problem",
    "base_url_origin_problems",
    "base_url_problems",
    "billing_processor_class",
    "carrier_integrations",
    "carrier_time_scale",
    "confirm_budget_seconds",
    "default_egress_policy",
    "default_limits",
    "default_timeouts",
    "describe_duration",
    "http_session",
    "integration_class",
    "is_transient_status",
    "known",
    "parse_retry_after",
    "processor_class",
    "readable_error",
    "redact",
    "secrets_to_reenter",
    "unexpected_response",
    "utc_now",
]
