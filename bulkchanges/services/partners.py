"""Partner-facing writes: API keys bound to one tenant with a role (stored hashed), bulk
changes created through the API (with an idempotency fingerprint), and the tenant's webhook
secret.

Creation validates exactly as the admin and ``create_bulk_change`` do: the one device-list
parser (``bulkchanges.devicelists``), ``status_update_request_validate`` and
``bulk_change_create``."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from bulkchanges.devicelists import (
    ByteStream,
    DeviceListError,
    ParsedDeviceList,
    TooManyDevices,
    parse_device_list,
    parse_device_rows,
)
from bulkchanges.errors import ApplicationError
from bulkchanges.models import (
    BulkChange,
    PartnerApiKey,
    PartnerProfile,
    Tenant,
    webhook_secret_generate,
)
from bulkchanges.services.bulk_changes import (
    ValidatedRequest,
    bulk_change_create,
    bulk_change_find_repeat,
    credentials_resolve,
    status_update_request_validate,
    too_many_devices_error,
)
from bulkchanges.services.webhooks import callback_url_validate
from integrations.base import Integration
from integrations.rev_request import RevServiceRequest

logger = logging.getLogger(__name__)

MAX_LINES_REPORTED = 20
IDEMPOTENCY_KEY_MAX = 200


# --- API keys --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedApiKey:
    """A key just issued: ``key`` is the only copy of the secret (shown once, then gone)."""

    api_key: PartnerApiKey
    key: str
    user_created: bool = False


def partner_api_key_check(
    *, user: Any, tenant: Tenant, role: str, name: str = "", expiry_date: datetime | None = None
) -> None:
    """Refuse (ApplicationError naming the field) a key that would not be sound: its tenant
    must be the tenant of its user's PartnerProfile (a key never reaches past its user's
    tenant), its role one of PartnerApiKey.Role, its name short enough, its expiry ahead."""
    profile = PartnerProfile.objects.filter(user=user).first()
    if profile is None or profile.tenant_id != tenant.pk:
        raise ApplicationError(
            f"user {user.get_username()!r} is not a partner of tenant {tenant.name!r}; "
            "an API key's tenant must be its user's",
            fields={"tenant": ["not the user's tenant"]},
        )
    if role not in PartnerApiKey.Role.values:
        raise ApplicationError(
            f"unknown role {role!r}; choose one of {', '.join(PartnerApiKey.Role.values)}",
            fields={"role": ["unknown role"]},
        )
    name_max = PartnerApiKey._meta.get_field("name").max_length or 0
    if len(name) > name_max:
        raise ApplicationError(
            f"the name is longer than {name_max} characters",
            fields={"name": [f"at most {name_max} characters"]},
        )
    if expiry_date is not None and expiry_date <= timezone.now():
        raise ApplicationError(
            "the expiry date is in the past", fields={"expiry_date": ["in the past"]}
        )


def partner_api_key_issue(*, api_key: PartnerApiKey, created_by: str) -> str:
    """Save the new (unsaved) ``api_key`` — its user, tenant, role, name and expiry set — with
    a freshly generated key, and return that key: the only copy (the row keeps its hash).
    Checked by :func:`partner_api_key_check` first."""
    partner_api_key_check(
        user=api_key.user,
        tenant=api_key.tenant,
        role=api_key.role,
        name=api_key.name or "",
        expiry_date=api_key.expiry_date,
    )
    api_key.name = api_key.name or f"{api_key.user.get_username()} ({api_key.role})"[:50]
    api_key.created_by = created_by
    key = PartnerApiKey.objects.assign_key(api_key)
    api_key.save()
    logger.info(
        "API key %s (%s) issued for %s (tenant %s) by %s",
        api_key.prefix,
        api_key.role,
        api_key.user.get_username(),
        api_key.tenant.name,
        created_by,
    )
    return key


def partner_token_issue(
    *,
    username: str,
    tenant: Tenant,
    created_by: str,
    role: str = PartnerApiKey.Role.SUBMIT,
    name: str = "",
    expires_in_days: int | None = None,
    create_user: bool = False,
    rotate: bool = False,
) -> IssuedApiKey:
    """A new API key for partner user ``username`` bound to ``tenant`` (the user and its
    profile created when ``create_user``; the user's other keys revoked when ``rotate``).
    A user bound to another tenant is refused: a partner belongs to exactly one."""
    if expires_in_days is not None and expires_in_days < 1:
        raise ApplicationError(
            "--expires-in-days must be at least 1", fields={"expires_in_days": ["at least 1"]}
        )
    user_model = get_user_model()
    with transaction.atomic():
        user = user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).first()
        created = False
        if user is None:
            if not create_user:
                raise ApplicationError(
                    f"user {username!r} does not exist (use --create-user to create it)",
                    code="not_found",
                    status=404,
                )
            user = user_model.objects.create_user(**{user_model.USERNAME_FIELD: username})
            user.set_unusable_password()
            user.save()
            created = True
        profile = PartnerProfile.objects.filter(user=user).first()
        if profile is None:
            PartnerProfile.objects.create(user=user, tenant=tenant)
        elif profile.tenant_id != tenant.pk:
            raise ApplicationError(
                f"user {username!r} already belongs to tenant {profile.tenant.name!r}; "
                "a partner user belongs to exactly one tenant",
                code="conflict",
                status=409,
            )
        if rotate:
            for old in PartnerApiKey.objects.filter(user=user, revoked=False):
                partner_api_key_revoke(api_key=old, actor=created_by)
        expiry_date = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        api_key = PartnerApiKey(
            user=user, tenant=tenant, role=role, name=name, expiry_date=expiry_date
        )
        key = partner_api_key_issue(api_key=api_key, created_by=created_by)
    return IssuedApiKey(api_key=api_key, key=key, user_created=created)


def partner_api_key_revoke(*, api_key: PartnerApiKey, actor: str) -> PartnerApiKey:
    """Revoke ``api_key`` for good (the library refuses to un-revoke). Idempotent."""
    if not api_key.revoked:
        api_key.revoked = True
        api_key.save(update_fields=["revoked"])
        logger.info("API key %s revoked by %s", api_key.prefix, actor)
    return api_key


def partner_token_revoke(*, prefix: str, actor: str) -> PartnerApiKey:
    """Revoke the key whose prefix is ``prefix`` (what ``--list`` and the admin show)."""
    api_key = PartnerApiKey.objects.select_related("tenant", "user").filter(prefix=prefix).first()
    if api_key is None:
        raise ApplicationError(
            f"no API key has the prefix {prefix!r}", code="not_found", status=404
        )
    return partner_api_key_revoke(api_key=api_key, actor=actor)


def tenant_webhook_secret_rotate(*, tenant: Tenant, actor: str) -> str:
    """Replace the tenant's webhook signing secret and return the new one (shown once).
    Webhooks already scheduled are signed with the new secret when they are sent."""
    secret = webhook_secret_generate()
    Tenant.objects.filter(pk=tenant.pk).update(webhook_secret=secret)
    tenant.webhook_secret = secret
    logger.info("webhook secret of tenant %s rotated by %s", tenant.name, actor)
    return secret


# --- Creating bulk changes -------------------------------------------------------------------


def _rejected(parsed: ParsedDeviceList) -> list[str]:
    lines = parsed.rejected
    messages = [f"line {line.line}: {line.reason}" for line in lines[:MAX_LINES_REPORTED]]
    if parsed.rejected_count > MAX_LINES_REPORTED:
        messages.append(f"and {parsed.rejected_count - MAX_LINES_REPORTED:,} more")
    return messages


def partner_device_list_parse(
    *,
    device_rows: Sequence[Mapping[str, Any]] | None = None,
    device_file: bytes | ByteStream | None = None,
) -> ParsedDeviceList:
    """The devices of a request, JSON rows or an uploaded CSV (read as a stream), through the
    one parser. Every malformed or duplicate line is refused (400, the first
    ``MAX_LINES_REPORTED`` listed by line, with the total): an API caller gets no preview
    step, so nothing is dropped silently. Too many devices is a 413, raised as soon as the
    parser passes the limit."""
    limit = settings.BULKCHANGE_MAX_DEVICES_PER_REQUEST
    field = "devices" if device_file is None else "file"
    try:
        if device_rows is not None:
            parsed = parse_device_rows(device_rows, max_devices=limit)
        elif device_file is not None:
            parsed = parse_device_list(device_file, max_devices=limit)
        else:
            raise ApplicationError(
                "give the devices as a JSON list or upload a CSV file",
                fields={"devices": ["required (or upload a file)"]},
            )
    except TooManyDevices:
        raise too_many_devices_error(field=field) from None
    except DeviceListError as error:
        raise ApplicationError(str(error), fields={field: [str(error)]}) from None
    rejected = _rejected(parsed)
    if rejected:
        raise ApplicationError(
            f"{parsed.malformed_count:,} malformed and {parsed.duplicate_count:,} duplicate "
            "device lines; fix them and send the request again",
            fields={field: rejected},
        )
    if not parsed.devices:
        raise ApplicationError(
            "a bulk change needs at least one device", fields={field: ["no device"]}
        )
    return parsed


def request_fingerprint(
    *, tenant: Tenant, request: Mapping[str, Any], devices: ParsedDeviceList
) -> str:
    """SHA-256 of the normalised request: the same request sent as JSON or as a CSV upload,
    with keys in any order, target status in any case, has the same fingerprint."""
    rev = request.get("rev_service")
    normalised = {
        "tenant": tenant.pk,
        "integration": str(request.get("integration") or "").upper(),
        "target_status": str(request.get("target_status") or "").strip().lower(),
        "credentials": request.get("credentials"),
        "is_ignore_current_status": bool(request.get("is_ignore_current_status")),
        "post_update_status": str(request.get("post_update_status") or "").strip().lower(),
        "account_number": str(request.get("account_number") or "").strip(),
        "options": {k: v for k, v in sorted((request.get("options") or {}).items()) if v},
        "rev_service": {str(k).lower(): v for k, v in rev.items()} if rev else None,
        "callback_url": str(request.get("callback_url") or "").strip(),
        "devices": [[d.iccid, d.msisdn, d.eid] for d in devices.devices],
    }
    if request.get("scheduled_for"):  # only when set: older fingerprints stay valid
        normalised["scheduled_for"] = request["scheduled_for"].astimezone(UTC).isoformat()
    # The canonical JSON, hashed as it is encoded: the same digest as hashing json.dumps's
    # string, without holding 100,000 devices' worth of text (and its pieces) at once.
    digest = hashlib.sha256()
    encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
    for piece in encoder.iterencode(normalised):
        digest.update(piece.encode())
    return digest.hexdigest()


def _rev_service(*, tenant: Tenant, data: Mapping[str, Any] | None) -> RevServiceRequest | None:
    """The legacy RevService object; its IntegrationAuthenticationId defaults to the tenant's
    only active Rev.io credentials."""
    if not data:
        return None
    fields = dict(data)
    if not any(str(key).lower() == "integrationauthenticationid" for key in fields):
        try:
            rev = credentials_resolve(
                tenant=tenant, integration=Integration.REV, credentials_id=None
            )
        except ApplicationError as error:
            raise ApplicationError(error.detail, fields={"rev_service": [error.detail]}) from None
        fields["IntegrationAuthenticationId"] = rev.pk
    try:
        return RevServiceRequest.from_legacy(fields)
    except ValueError as error:
        raise ApplicationError(
            f"rev_service is invalid: {error}", fields={"rev_service": [str(error)]}
        ) from None


def partner_request_validate(*, tenant: Tenant, request: Mapping[str, Any]) -> ValidatedRequest:
    """The API's request fields (integration, target_status, credentials,
    is_ignore_current_status, post_update_status, account_number, options, rev_service)
    validated as every entry point validates them; a bulk change's create and a preview's
    share it."""
    return status_update_request_validate(
        tenant=tenant,
        integration=str(request["integration"]).upper(),
        update_status=str(request["target_status"]),
        credentials_id=request.get("credentials"),
        is_ignore_current_status=bool(request.get("is_ignore_current_status")),
        post_update_status=request.get("post_update_status") or None,
        account_number=str(request.get("account_number") or ""),
        options={
            k: str(v) for k, v in (request.get("options") or {}).items() if v not in ("", None)
        },
        rev_service=_rev_service(tenant=tenant, data=request.get("rev_service")),
    )


def partner_bulk_change_create(
    *,
    tenant: Tenant,
    actor: str,
    request: Mapping[str, Any],
    device_rows: Sequence[Mapping[str, Any]] | None = None,
    device_file: bytes | ByteStream | None = None,
    idempotency_key: str = "",
) -> tuple[BulkChange, bool]:
    """Create (and queue) a bulk change from an API request. With an ``idempotency_key`` a
    repeat of the same request returns the original (created=False) — even if the request
    would no longer validate — and a different request with the same key is a 409.

    ``request`` holds the validated JSON/form fields: integration, target_status, credentials,
    is_ignore_current_status, post_update_status, account_number, options, rev_service,
    callback_url, scheduled_for."""
    idempotency_key = idempotency_key.strip()
    if len(idempotency_key) > IDEMPOTENCY_KEY_MAX:
        raise ApplicationError(
            f"Idempotency-Key is longer than {IDEMPOTENCY_KEY_MAX} characters",
            fields={"Idempotency-Key": [f"at most {IDEMPOTENCY_KEY_MAX} characters"]},
        )
    devices = partner_device_list_parse(device_rows=device_rows, device_file=device_file)
    fingerprint = request_fingerprint(tenant=tenant, request=request, devices=devices)
    if idempotency_key:
        existing = bulk_change_find_repeat(
            tenant=tenant, idempotency_key=idempotency_key, request_fingerprint=fingerprint
        )
        if existing is not None:
            return existing, False
    callback_url = callback_url_validate(str(request.get("callback_url") or ""))
    validated = partner_request_validate(tenant=tenant, request=request)
    return bulk_change_create(
        tenant=tenant,
        created_by=actor,
        validated=validated,
        devices=devices.devices,
        idempotency_key=idempotency_key or None,
        callback_url=callback_url,
        request_fingerprint=fingerprint,
        scheduled_for=request.get("scheduled_for"),
    )
