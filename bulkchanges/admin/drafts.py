"""A previewed bulk change kept between "preview" and "confirm": the validated device list and
the request's inputs, in the staff user's session (stored server-side by the database session
backend, signed and compressed — 100,000 ICCIDs fit). One draft per session: a new preview
replaces the previous one. Confirming re-validates the request, so credentials deactivated in
between are caught."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.contrib.sessions.backends.base import SessionBase

from bulkchanges.types import DeviceRef
from integrations.rev_request import RevServiceRequest

SESSION_KEY = "bulkchanges:new-bulk-change"


@dataclass(frozen=True)
class Draft:
    token: str
    tenant_id: int
    integration: str
    # ``status_update_request_validate`` keyword arguments, JSON-safe (RevService as legacy).
    request: dict[str, Any]
    devices: str  # one "iccid,msisdn,eid" a line: compact, and nothing to escape (digits)
    device_count: int
    scheduled_for: str = ""  # ISO 8601 with offset; empty: start at once

    @property
    def scheduled_for_moment(self) -> datetime | None:
        return datetime.fromisoformat(self.scheduled_for) if self.scheduled_for else None

    @property
    def idempotency_key(self) -> str:
        """Confirming the same preview twice (a double click) creates one bulk change."""
        return f"admin-preview-{self.token}"

    def validate_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self.request)
        rev = kwargs.pop("rev_service", None)
        kwargs["rev_service"] = RevServiceRequest.from_legacy(rev) if rev else None
        return kwargs

    def device_refs(self) -> list[DeviceRef]:
        refs = []
        for line in self.devices.splitlines():
            iccid, msisdn, eid = line.split(",")
            refs.append(DeviceRef(iccid=iccid, msisdn=msisdn, eid=eid))
        return refs


def draft_save(
    session: SessionBase,
    *,
    tenant_id: int,
    integration: str,
    request: dict[str, Any],
    devices: Sequence[DeviceRef],
    scheduled_for: datetime | None = None,
) -> Draft:
    rev = request.get("rev_service")
    draft = Draft(
        token=secrets.token_urlsafe(16),
        tenant_id=tenant_id,
        integration=integration,
        request={**request, "rev_service": rev.to_legacy() if rev else None},
        devices="\n".join(f"{d.iccid},{d.msisdn},{d.eid}" for d in devices),
        device_count=len(devices),
        scheduled_for=scheduled_for.isoformat() if scheduled_for else "",
    )
    session[SESSION_KEY] = asdict(draft)
    return draft


def draft_load(session: SessionBase, token: str) -> Draft | None:
    stored = session.get(SESSION_KEY)
    if not isinstance(stored, dict) or not token or stored.get("token") != token:
        return None
    return Draft(**stored)


def draft_discard(session: SessionBase) -> None:
    session.pop(SESSION_KEY, None)
