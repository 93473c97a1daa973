"""Serializers of the partner API: inputs parse and shape-check (the services validate the
meaning), outputs render. Field names are the API's own (snake_case); the Rev service maps to
the legacy RevService keys that ``RevServiceRequest.from_legacy`` validates."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from bulkchanges.api.filters import MAX_ID
from bulkchanges.api.parsers import JSONTooDeep, loads_bounded
from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange, WebhookDelivery
from bulkchanges.selectors import DEVICE_CHANGE_OUTCOME, Progress, elapsed_seconds
from integrations.base import carrier_integrations, redact

# The integrations that can process status updates (Rev.io is billing, not a carrier).
CARRIER_CHOICES = [(name, name) for name in carrier_integrations()]

# --- Inputs ----------------------------------------------------------------------------------


class OptionsSerializer(serializers.Serializer):
    """Carrier options (ThingSpace: activation needs service_plan and mdn_zip_code)."""

    service_plan = serializers.CharField(required=False, allow_blank=True, max_length=100)
    mdn_zip_code = serializers.CharField(required=False, allow_blank=True, max_length=10)
    reason_code = serializers.CharField(required=False, allow_blank=True, max_length=50)
    etf_waiver = serializers.BooleanField(required=False)


class RevProductSerializer(serializers.Serializer):
    product_id = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    rate = serializers.DecimalField(max_digits=12, decimal_places=4, min_value=0)


class RevServiceSerializer(serializers.Serializer):
    """A Rev.io service to open per device after the carrier succeeds (the legacy RevService).
    With ``package_id`` the package brings its products; otherwise ``products`` are created."""

    customer_id = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    service_type_id = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    credentials = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        help_text="Rev.io credentials id; defaults to the tenant's only active Rev.io row.",
    )
    provider_id = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, allow_null=True
    )
    activated_date = serializers.DateField(required=False, allow_null=True)
    effective_date = serializers.DateField(required=False, allow_null=True)
    prorate = serializers.BooleanField(required=False, default=False)
    usage_plan_group_id = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, allow_null=True
    )
    package_id = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, allow_null=True
    )
    products = serializers.ListField(child=RevProductSerializer(), required=False, max_length=50)

    LEGACY_KEYS = {
        "customer_id": "RevCustomerId",
        "service_type_id": "ServiceTypeId",
        "credentials": "IntegrationAuthenticationId",
        "provider_id": "ProviderId",
        "activated_date": "ActivatedDate",
        "effective_date": "EffectiveDate",
        "prorate": "Prorate",
        "usage_plan_group_id": "UsagePlanGroupId",
        "package_id": "RevPackageId",
    }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The legacy RevService keys, for ``RevServiceRequest.from_legacy``."""
        legacy: dict[str, Any] = {
            legacy_key: attrs[name]
            for name, legacy_key in self.LEGACY_KEYS.items()
            if attrs.get(name) is not None
        }
        products = attrs.get("products") or []
        if products:
            legacy["RevProductIdList"] = [product["product_id"] for product in products]
            legacy["RateList"] = [str(product["rate"]) for product in products]
        return legacy


class JSONEncodedField(serializers.Field):
    """A nested object given as JSON (a JSON body) or as a JSON-encoded string (a multipart
    part, as OpenAPI encodes object properties of multipart bodies), decoded with the JSON
    body's depth bound: deeper is a 400 naming the field."""

    def __init__(self, serializer: type[serializers.Serializer], **kwargs: Any) -> None:
        self.serializer_class = serializer
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str | bytes):
            if not data.strip():
                return None
            try:
                data = loads_bounded(data)
            except JSONTooDeep as error:
                raise serializers.ValidationError(f"must be a JSON object {error}") from None
            except ValueError:
                raise serializers.ValidationError("must be a JSON object") from None
        if not isinstance(data, Mapping):
            raise serializers.ValidationError("must be a JSON object")
        inner = self.serializer_class(data=data)
        inner.is_valid(raise_exception=True)
        return inner.validated_data

    def to_representation(self, value: Any) -> Any:
        return value


@extend_schema_field(OptionsSerializer)
class OptionsField(JSONEncodedField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(OptionsSerializer, **kwargs)


@extend_schema_field(RevServiceSerializer)
class RevServiceField(JSONEncodedField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(RevServiceSerializer, **kwargs)


DEVICE_SCHEMA = {
    "type": "object",
    "description": "One device; identifiers are digits, whitespace ignored.",
    "properties": {
        "iccid": {
            "type": "string",
            "pattern": r"^\s*([0-9]\s*){18,22}$",
            "example": "89148000000000000001",
        },
        "msisdn": {"type": "string", "pattern": r"^\s*(([0-9]\s*){7,15})?$"},
        "eid": {"type": "string", "pattern": r"^\s*(([0-9]\s*){32})?$"},
    },
    "required": ["iccid"],
}


@extend_schema_field(
    {
        "type": "array",
        "items": DEVICE_SCHEMA,
        "minItems": 1,
        "description": "The devices, each ICCID once (BULKCHANGE_MAX_DEVICES_PER_REQUEST at most, "
        "else 413).",
    }
)
class DeviceRowsField(serializers.Field):
    """A list of device objects, handed as they are to the one device-list parser (fast for
    100,000 rows; a nested serializer per row is not)."""

    def to_internal_value(self, data: Any) -> list[Mapping[str, Any]]:
        if not isinstance(data, list):
            raise serializers.ValidationError("must be a list of device objects")
        for index, row in enumerate(data):
            if not isinstance(row, Mapping):
                raise serializers.ValidationError(f"item {index} must be an object with iccid")
            for key in ("iccid", "msisdn", "eid"):
                value = row.get(key)
                if value is not None and not isinstance(value, str):
                    raise serializers.ValidationError(f"item {index}: {key} must be a string")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 moment that names its UTC offset: a time without one is refused rather
    than guessed (a partner's local 09:00 is not ours)."""

    def to_internal_value(self, value: Any) -> datetime:
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:  # well-formed but impossible (month 13): DRF's own message
                parsed = None
            if parsed is not None and timezone.is_naive(parsed):
                raise serializers.ValidationError(
                    "add a UTC offset, for example 2026-12-02T18:00:00+00:00"
                )
        moment: datetime = super().to_internal_value(value)
        return moment


class _BulkChangeRequestSerializer(serializers.Serializer):
    tenant = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        help_text="Optional: your key's own tenant (any other is a 404). A key acts for one "
        "tenant only.",
    )
    integration = serializers.ChoiceField(choices=CARRIER_CHOICES)
    target_status = serializers.CharField(
        max_length=50, help_text="The carrier's status name (any case), e.g. Suspended."
    )
    credentials = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        allow_null=True,
        help_text="Carrier credentials id; defaults to the tenant's only active row.",
    )
    is_ignore_current_status = serializers.BooleanField(
        required=False,
        default=False,
        help_text="false: a device already in the target status is SKIPPED without a call.",
    )
    post_update_status = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=50,
        help_text="DeviceStatus code recorded after success (default: the target's).",
    )
    account_number = serializers.CharField(required=False, allow_blank=True, max_length=100)
    options = OptionsField(required=False, allow_null=True)
    rev_service = RevServiceField(required=False, allow_null=True)
    callback_url = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=500,
        help_text="https URL to POST the signed completion summary to.",
    )
    scheduled_for = AwareDateTimeField(
        required=False,
        allow_null=True,
        help_text="Optional: when to start (ISO 8601 with a UTC offset), at most "
        "BULKCHANGE_MAX_SCHEDULE_DAYS (180) days ahead; SCHEDULED until then. Omit to start "
        "at once.",
    )


class BulkChangeCreateSerializer(_BulkChangeRequestSerializer):
    devices = DeviceRowsField(help_text="The devices, [{iccid, msisdn?, eid?}].")


class BulkChangeUploadSerializer(_BulkChangeRequestSerializer):
    file = serializers.FileField(
        allow_empty_file=True,  # the device-list parser says why an empty list is refused
        help_text="CSV with a header naming iccid (msisdn, eid optional), or one ICCID a line; "
        "UTF-8 with or without BOM.",
    )


class RetrySerializer(serializers.Serializer):
    device_change_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        allow_empty=False,
        min_length=1,
        max_length=100_000,
        help_text="Device changes to retry (ERROR only); omit to retry every failed device.",
    )
    resubmit = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Submit again, as a new carrier request, the ERROR devices whose change the "
        "carrier accepted but never confirmed (check the carrier first). Without it a retry "
        "confirms the old request.",
    )


class WebhookSecretRequestSerializer(serializers.Serializer):
    tenant = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        help_text="Optional: your key's own tenant (any other is a 404).",
    )


# --- Outputs ---------------------------------------------------------------------------------


class ProgressSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    done = serializers.IntegerField(help_text="Devices in a final state.")
    succeeded = serializers.IntegerField(help_text="PROCESSED + SKIPPED.")
    failed = serializers.IntegerField(help_text="ERROR.")
    awaiting_carrier = serializers.IntegerField(
        help_text="AWAITING_CARRIER: the carrier accepted the change and is still working on "
        "it (not a failure; checked again on the waiting schedule)."
    )
    changed = serializers.IntegerField(
        help_text="PROCESSED: changed at the carrier (in a cancelled bulk change: before the "
        "cancel took effect)."
    )
    skipped = serializers.IntegerField(help_text="SKIPPED: already in the target status.")
    cancelled = serializers.IntegerField(
        help_text="CANCELLED: stopped by a cancel before sending anything to the carrier."
    )
    in_flight = serializers.IntegerField(
        help_text="Not finished yet (PENDING, PROCESSING, RETRY_SCHEDULED, AWAITING_CARRIER); "
        "in a CANCELLING bulk change, the devices that already sent their change and run to "
        "their end."
    )
    percent = serializers.FloatField(help_text="done / total, in percent.")
    counts = serializers.DictField(
        child=serializers.IntegerField(), help_text="Devices per status (every status listed)."
    )


class BulkChangeSerializer(serializers.ModelSerializer):
    """A bulk change with its progress (``progress`` comes from the view's context, computed
    in one grouped query per page)."""

    status = serializers.ChoiceField(choices=BulkChange.Status.choices)
    target_status = serializers.CharField()
    callback_url = serializers.CharField()
    elapsed_seconds = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = BulkChange
        fields: tuple[str, ...] = (
            "id",
            "tenant",
            "integration",
            "change_request_type",
            "target_status",
            "status",
            "created_by",
            "created_at",
            "queued_at",
            "processed_at",
            "first_processed_at",
            "elapsed_seconds",
            "idempotency_key",
            "callback_url",
            "request",
            "progress",
            "scheduled_for",
            "approval_reason",
        )
        read_only_fields = fields

    def get_elapsed_seconds(self, bulk_change: BulkChange) -> float:
        return elapsed_seconds(bulk_change)

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, bulk_change: BulkChange) -> dict[str, object]:
        progress: Progress = self.context["progress"][bulk_change.pk]
        return progress.as_dict()


class WebhookStateSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices)
    attempts = serializers.IntegerField()
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_response_status = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField(allow_blank=True)


class BulkChangeDetailSerializer(BulkChangeSerializer):
    """Detail adds the completion webhook's state (null without a callback_url or until the
    bulk change completes)."""

    webhook = serializers.SerializerMethodField()
    decision = serializers.ChoiceField(
        choices=BulkChange.Decision.choices,
        allow_blank=True,
        help_text="Four-eyes approval's decision; empty while none was needed or made.",
    )

    class Meta(BulkChangeSerializer.Meta):
        fields: tuple[str, ...] = (
            *BulkChangeSerializer.Meta.fields,
            "decision",
            "decided_by",
            "decided_at",
            "decision_note",
            "webhook",
        )
        read_only_fields = fields

    @extend_schema_field(WebhookStateSerializer(allow_null=True))
    def get_webhook(self, bulk_change: BulkChange) -> dict[str, object] | None:
        deliveries = list(
            WebhookDelivery.objects.filter(bulk_change=bulk_change).order_by(
                "-completed_at", "-attempt"
            )[:1]
        )
        if not deliveries:
            return None
        latest = deliveries[0]
        return {
            "status": latest.status,
            "attempts": latest.attempt,
            "last_attempt_at": latest.started_at or latest.finished_at,
            "next_attempt_at": (
                latest.next_attempt_at
                if latest.status == WebhookDelivery.Status.SCHEDULED
                else None
            ),
            "last_response_status": latest.response_status,
            "last_error": latest.error_text,
        }


class DeviceChangeSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=DeviceChange.Status.choices)

    class Meta:
        model = DeviceChange
        fields = (
            *DEVICE_CHANGE_OUTCOME,
            "next_attempt_at",
            "carrier_request_id",
            "carrier_submitted_at",
            "confirm_deadline_at",
            "rev_service_id",
            "updated_at",
        )
        read_only_fields = fields
        extra_kwargs = {
            "next_attempt_at": {
                "help_text": "RETRY_SCHEDULED or AWAITING_CARRIER: when the device is tried "
                "or checked again."
            },
            "confirm_deadline_at": {
                "help_text": "Asynchronous carriers: when the carrier must have settled the "
                "submitted request; past it the carrier's read decides."
            },
        }


class RedactedTextField(serializers.CharField):
    """A stored call text, redacted again as it is shown (it was redacted when written)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: Any) -> str:
        return redact(str(value))


class BulkChangeLogSerializer(serializers.ModelSerializer):
    """An audit row; texts are redacted when written and again when shown."""

    description = serializers.CharField(source="log_entry_description")
    request_text = RedactedTextField()
    response_text = RedactedTextField()
    error_text = RedactedTextField()

    class Meta:
        model = BulkChangeLog
        fields = (
            "id",
            "device_change",
            "description",
            "request_text",
            "response_text",
            "response_status",
            "in_flight",
            "has_errors",
            "error_text",
            "process_by",
            "request_id",
            "processed_at",
        )
        read_only_fields = fields


class ActionResultSerializer(serializers.Serializer):
    bulk_change = BulkChangeDetailSerializer()


class RetryResultSerializer(ActionResultSerializer):
    retried = serializers.IntegerField(help_text="Device changes re-queued.")
    device_change_ids = serializers.ListField(child=serializers.IntegerField())


class CancelResultSerializer(ActionResultSerializer):
    cancelled = serializers.IntegerField(
        help_text="Devices cancelled now: none of them had sent its change to the carrier."
    )
    finishing = serializers.IntegerField(
        help_text="Devices that had already sent their change to the carrier: they run to their "
        "end and finish PROCESSED or ERROR."
    )
    status = serializers.ChoiceField(
        choices=[BulkChange.Status.CANCELLING, BulkChange.Status.CANCELLED],
        help_text="CANCELLING while `finishing` devices run, else CANCELLED.",
    )
    detail = serializers.CharField(help_text="What the cancel did, in words.")


class WebhookSecretSerializer(serializers.Serializer):
    tenant = serializers.IntegerField()
    webhook_secret = serializers.CharField(
        help_text="Shown once; store it now. `whsec_` + base64 of the signing key (Standard "
        "Webhooks)."
    )
    signature_header = serializers.CharField()
    algorithm = serializers.CharField()
