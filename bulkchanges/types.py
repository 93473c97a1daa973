"""Typed request objects passed inside PondOps (validated at the edge, never raw dicts)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from integrations.rev_request import RevServiceRequest

# Carrier options a StatusUpdateRequest may carry beyond the legacy core keys (ThingSpace
# activation needs a service plan and ZIP code; deactivation a reason code), by legacy key.
OPTION_KEYS: Mapping[str, str] = {
    "ServicePlan": "service_plan",
    "MdnZipCode": "mdn_zip_code",
    "ReasonCode": "reason_code",
    "EtfWaiver": "etf_waiver",
}


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"true", "1", "yes"}


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """One device named in a request (slots: a bulk change holds up to 100,000 of them)."""

    iccid: str
    msisdn: str = ""
    eid: str = ""


@dataclass(frozen=True)
class StatusUpdateRequest:
    """The legacy StatusUpdateRequest, stored in BulkChange.request and copied per device."""

    update_status: str
    integration_authentication_id: int
    is_ignore_current_status: bool = False
    post_update_status_id: int | None = None
    account_number: str = ""
    rev_service: RevServiceRequest | None = None
    options: Mapping[str, str] = field(default_factory=dict)

    def to_legacy(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "UpdateStatus": self.update_status,
            "IsIgnoreCurrentStatus": self.is_ignore_current_status,
            "PostUpdateStatusId": self.post_update_status_id,
            "AccountNumber": self.account_number,
            "IntegrationAuthenticationId": self.integration_authentication_id,
            "RevService": self.rev_service.to_legacy() if self.rev_service else None,
        }
        for legacy_key, name in OPTION_KEYS.items():
            if self.options.get(name):
                data[legacy_key] = self.options[name]
        return data

    @classmethod
    def from_legacy(cls, data: Mapping[str, Any]) -> StatusUpdateRequest:
        """Parse the legacy JSON (keys case-insensitive); ValueError with a clear message."""
        folded = {str(key).lower(): value for key, value in data.items()}

        def get(key: str) -> Any:
            return folded.get(key.lower())

        update_status = str(get("UpdateStatus") or "").strip()
        if not update_status:
            raise ValueError("UpdateStatus is required")
        try:
            credentials_id = int(get("IntegrationAuthenticationId"))
        except (TypeError, ValueError):
            raise ValueError("IntegrationAuthenticationId must be a number") from None
        post_update = get("PostUpdateStatusId")
        rev = get("RevService")
        return cls(
            update_status=update_status,
            integration_authentication_id=credentials_id,
            is_ignore_current_status=_bool(get("IsIgnoreCurrentStatus") or False),
            post_update_status_id=int(post_update) if post_update not in (None, "") else None,
            account_number=str(get("AccountNumber") or ""),
            rev_service=RevServiceRequest.from_legacy(rev) if rev else None,
            options={
                name: str(get(legacy_key))
                for legacy_key, name in OPTION_KEYS.items()
                if get(legacy_key) not in (None, "")
            },
        )
