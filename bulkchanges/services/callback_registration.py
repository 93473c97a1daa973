"""Registering PondOps as a ThingSpace account's CarrierService callback listener
(docs/carriers/thingspace.md, "Inbound callback: CarrierService").

One listener per callback service per account: when ``CarrierService`` is registered to
another URL (another system uses the account) it is never replaced nor removed — the row is
marked ``NOT_OURS`` and its changes are confirmed by polling only. Registration needs
``CARRIER_CALLBACK_BASE_URL``. The management command ``register_carrier_callbacks`` and the
credentials admin's "Register ThingSpace callback" action call these functions.

These calls belong to no bulk change, and the audit log (BulkChangeLog) holds only bulk
changes' rows, so each call is logged at INFO instead: description, method, URL and status —
never a body (it carries the callback user name and password) nor a token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bulkchanges.errors import ApplicationError
from bulkchanges.models import (
    IntegrationAuthentication,
    callback_secret_generate,
    callback_username_generate,
)
from bulkchanges.ratelimit import throttle_for
from bulkchanges.tokens import token_store
from integrations.base import CallRecord, Credentials, Integration, IntegrationError
from integrations.thingspace import CALLBACK_SERVICE, ThingSpaceClient

logger = logging.getLogger(__name__)

Registration = IntegrationAuthentication.CallbackRegistration


@dataclass(frozen=True)
class CallbackRegistrationResult:
    """What happened to one credentials row: ``registration`` is the row's new state."""

    credentials_id: int
    registration: str
    message: str


def _log_call(call: CallRecord) -> None:
    logger.info(
        "%s: %s %s -> %s (%d ms)",
        call.description,
        call.method,
        call.url,
        call.response_status if call.response_status is not None else "no answer",
        call.elapsed_ms,
    )


def _client(credentials: Credentials) -> ThingSpaceClient:
    return ThingSpaceClient(
        credentials=credentials,
        token_store=token_store,
        throttle=throttle_for(credentials),
        on_call=_log_call,
    )


def _thingspace_row(credentials: IntegrationAuthentication) -> None:
    if credentials.integration != Integration.THINGSPACE:
        raise ApplicationError(
            f"credentials {credentials.pk} are {credentials.get_integration_display()}, not "
            "ThingSpace: only ThingSpace callbacks are registered",
            code="not_thingspace",
        )


def _carrier_service_url(client: ThingSpaceClient) -> str | None:
    """The URL the account's CarrierService listener is registered to (None: none is)."""
    for entry in client.callbacks():
        if entry.get("serviceName", "").lower() == CALLBACK_SERVICE.lower():
            return entry.get("url", "")
    return None


def _same_url(registered: str, ours: str) -> bool:
    return registered.rstrip("/") == ours.rstrip("/")


def _label(credentials: IntegrationAuthentication) -> str:
    return f"ThingSpace account {credentials.account} (credentials {credentials.pk})"


def carrier_callback_register(
    *, credentials: IntegrationAuthentication, rotate: bool = False
) -> CallbackRegistrationResult:
    """Register ``{CARRIER_CALLBACK_BASE_URL}/carriers/thingspace/callbacks/<id>/`` as the
    account's CarrierService listener with the row's callback user name and password (new
    generated ones when ``rotate``, stored only once ThingSpace accepted them). Idempotent:
    registering again re-sends the same values. A listener registered to another URL is left
    alone and the row marked NOT_OURS. Raises ApplicationError (no secret in it) when the
    setting is unset or ThingSpace refuses."""
    _thingspace_row(credentials)
    if not getattr(settings, "CARRIER_CALLBACK_BASE_URL", ""):
        raise ApplicationError(
            "CARRIER_CALLBACK_BASE_URL is not set: ThingSpace callbacks cannot be registered "
            "(changes are confirmed by polling only)",
            code="callback_base_url_unset",
        )
    username, password = credentials.callback_username, credentials.callback_password
    if rotate:
        username, password = callback_username_generate(), callback_secret_generate()
    plain = credentials.as_credentials()
    url = plain.callback_url
    client = _client(replace(plain, callback_username=username, callback_password=password))
    try:
        registered = _carrier_service_url(client)
        if registered is not None and not _same_url(registered, url):
            return _not_ours(
                credentials, "not replaced — this account's changes are confirmed by polling only"
            )
        client.register_callback(url=url, username=username, password=password)
    except IntegrationError as error:
        raise ApplicationError(
            f"{_label(credentials)}: registering the callback failed: {error.message}",
            code="callback_registration_failed",
        ) from error
    _record(
        credentials,
        registration=Registration.REGISTERED,
        registered_at=timezone.now(),
        username=username,
        password=password,
    )
    rotated = " with new callback credentials" if rotate else ""
    return CallbackRegistrationResult(
        credentials.pk,
        Registration.REGISTERED,
        f"{_label(credentials)}: CarrierService registered to {url}{rotated}",
    )


def carrier_callback_deregister(
    *, credentials: IntegrationAuthentication
) -> CallbackRegistrationResult:
    """Remove the account's CarrierService listener when it is ours and clear the row's
    registration; a listener registered to another URL is left alone (row NOT_OURS)."""
    _thingspace_row(credentials)
    plain = credentials.as_credentials()
    client = _client(plain)
    try:
        registered = _carrier_service_url(client)
        ours = plain.callback_url
        if registered is not None and not (ours and _same_url(registered, ours)):
            return _not_ours(credentials, "left in place")
        if registered is not None:
            client.deregister_callback()
    except IntegrationError as error:
        raise ApplicationError(
            f"{_label(credentials)}: deregistering the callback failed: {error.message}",
            code="callback_registration_failed",
        ) from error
    _record(credentials, registration=Registration.NONE, registered_at=None)
    verb = "deregistered" if registered is not None else "was not registered"
    return CallbackRegistrationResult(
        credentials.pk, Registration.NONE, f"{_label(credentials)}: CarrierService {verb}"
    )


def _not_ours(credentials: IntegrationAuthentication, outcome: str) -> CallbackRegistrationResult:
    """Another system's listener holds CarrierService: mark the row, touch nothing at Verizon."""
    _record(credentials, registration=Registration.NOT_OURS, registered_at=None)
    return CallbackRegistrationResult(
        credentials.pk,
        Registration.NOT_OURS,
        f"{_label(credentials)}: CarrierService is registered to another URL; {outcome}",
    )


def _record(
    credentials: IntegrationAuthentication,
    *,
    registration: str,
    registered_at: object,
    username: str | None = None,
    password: str | None = None,
) -> None:
    fields: dict[str, object] = {
        "callback_registration": registration,
        "callback_registered_at": registered_at,
    }
    if username is not None and password is not None:
        fields |= {"callback_username": username, "callback_password": password}
    with transaction.atomic():
        IntegrationAuthentication.objects.filter(pk=credentials.pk).update(**fields)
    for name, value in fields.items():
        setattr(credentials, name, value)
