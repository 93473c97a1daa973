"""Two requests with one Idempotency-Key at the same moment create one bulk change: both pass
the lookup, the unique (tenant, idempotency_key) constraint decides, the loser answers with
the winner's bulk change (or 409 when its body differs). Run on PostgreSQL in CI."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from bulkchanges.models import BulkChange, DeviceChange
from bulkchanges.services import partners
from tests.api.conftest import API, Partner, create_body, key_client
from tests.conftest import iccids

pytestmark = pytest.mark.django_db(transaction=True)


def race(
    partner: Partner, bodies: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> list[Any]:
    """POST each body from its own thread; both threads pass the idempotency lookup before
    either inserts, so the database constraint is what keeps one bulk change."""
    both_looked = threading.Barrier(len(bodies), timeout=20)
    lookup = partners.bulk_change_find_repeat

    def lookup_then_wait(**kwargs: Any) -> Any:
        found = lookup(**kwargs)
        both_looked.wait()
        return found

    monkeypatch.setattr(partners, "bulk_change_find_repeat", lookup_then_wait)
    responses: list[Any] = [None] * len(bodies)

    def post(index: int) -> None:
        try:
            client = key_client(partner.key)
            responses[index] = client.post(
                f"{API}/bulk-changes/", bodies[index], HTTP_IDEMPOTENCY_KEY="batch-2025-06-01"
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(n,)) for n in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return responses


def test_two_concurrent_identical_requests_create_one_bulk_change(
    partner: Partner, sent: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = create_body(iccids(50))
    responses = race(partner, [body, body], monkeypatch)

    assert sorted(r.status_code for r in responses) == [200, 201], [r.content for r in responses]
    assert responses[0].json()["id"] == responses[1].json()["id"]
    assert BulkChange.objects.count() == 1
    assert DeviceChange.objects.count() == 50
    assert len(sent) == 1


def test_two_concurrent_different_requests_with_one_key_create_one_and_409_the_other(
    partner: Partner, sent: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    responses = race(partner, [create_body(iccids(2)), create_body(iccids(3))], monkeypatch)

    assert sorted(r.status_code for r in responses) == [201, 409]
    assert BulkChange.objects.count() == 1
