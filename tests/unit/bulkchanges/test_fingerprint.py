"""The idempotency fingerprint is hashed as it is encoded; its digest must stay the one
``json.dumps`` of the same canonical request gave, or stored keys would stop matching."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace
from typing import Any

from bulkchanges.devicelists import ParsedDeviceList
from bulkchanges.services.partners import request_fingerprint
from bulkchanges.types import DeviceRef


def test_the_streamed_digest_is_the_digest_of_the_canonical_json() -> None:
    devices = ParsedDeviceList(
        devices=[DeviceRef(iccid=f"89{n:020d}", msisdn=f"1555{n:07d}") for n in range(3000)]
    )
    request = {"integration": "pond", "target_status": " Suspended", "options": {"b": "1"}}
    canonical: dict[str, Any] = {
        "tenant": 7,
        "integration": "POND",
        "target_status": "suspended",
        "credentials": None,
        "is_ignore_current_status": False,
        "post_update_status": "",
        "account_number": "",
        "options": {"b": "1"},
        "rev_service": None,
        "callback_url": "",
        "devices": [[d.iccid, d.msisdn, d.eid] for d in devices.devices],
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)

    digest = request_fingerprint(
        tenant=SimpleNamespace(pk=7),  # type: ignore[arg-type]
        request=request,
        devices=devices,
    )

    assert digest == hashlib.sha256(text.encode()).hexdigest()
