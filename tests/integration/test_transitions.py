"""The state machine, walked from its table: every legal transition succeeds from each of its
source statuses, every other (source, target) pair is refused, and docs/architecture.md shows
the same table."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import models
from django.db.models import Q
from django.utils import timezone

from bulkchanges import transitions
from bulkchanges.models import (
    BulkChange,
    DeviceChange,
    IntegrationAuthentication,
    Preview,
    Tenant,
    WebhookDelivery,
)
from bulkchanges.transitions import IllegalTransition, Transition

pytestmark = pytest.mark.django_db

TOKEN = uuid.UUID(int=7)
ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def _bulk_change(status: str = BulkChange.Status.QUEUED) -> BulkChange:
    tenant, _ = Tenant.objects.get_or_create(name="Transitions")
    credentials, _ = IntegrationAuthentication.objects.get_or_create(
        tenant=tenant, integration="POND", account="1", defaults={"base_url": "https://pond.test"}
    )
    return BulkChange.objects.create(
        tenant=tenant,
        integration="POND",
        integration_authentication=credentials,
        created_by="test",
        status=status,
        scheduled_for=timezone.now() - timedelta(minutes=5),  # due, where that matters
    )


def _approve(pk: int, target: str) -> bool:
    """Approve: a bulk change whose time is ahead is to become SCHEDULED, else QUEUED."""
    if target == BulkChange.Status.SCHEDULED:
        BulkChange.objects.filter(pk=pk).update(scheduled_for=timezone.now() + timedelta(hours=1))
    return transitions.bulk_change_approve(bulk_change_id=pk, now=now(), by="admin:two") == target


def _row(model: type[models.Model], status: str) -> models.Model:
    """A row of ``model`` in ``status`` whose other guards (due times, expired lease, claim
    token, a running bulk change) all pass, so only the status decides."""
    past = timezone.now() - timedelta(minutes=5)
    if model is BulkChange:
        return _bulk_change(status)
    if model is DeviceChange:
        return DeviceChange.objects.create(
            bulk_change=_bulk_change(),
            iccid="8900000000000000001",
            status=status,
            is_processed=status in DeviceChange.TERMINAL,
            claim_token=TOKEN,
            claimed_until=past,
            next_attempt_at=past,
        )
    if model is Preview:
        bulk_change = _bulk_change()
        return Preview.objects.create(
            tenant=bulk_change.tenant,
            integration="POND",
            integration_authentication=bulk_change.integration_authentication,
            created_by="test",
            status=status,
        )
    return WebhookDelivery.objects.create(
        bulk_change=_bulk_change(),
        completed_at=past,
        attempt=1,
        url="https://partner.test/hook",
        payload="{}",
        status=status,
        next_attempt_at=past,
    )


Invoke = Callable[[int, str], Any]  # (row id, wanted target) -> the transition's result
now = timezone.now

# For each transition: how to call its function. Fixed-target transitions ignore ``target``;
# the others are asked for it.
INVOKERS: dict[tuple[type[models.Model], str], Invoke] = {
    (BulkChange, "release"): lambda pk, _: transitions.bulk_change_release(
        bulk_change_id=pk, now=now()
    ),
    (BulkChange, "release_scheduled"): lambda pk, _: transitions.bulk_change_release_scheduled(
        bulk_change_id=pk, now=now()
    ),
    (BulkChange, "approve"): _approve,
    (BulkChange, "reject"): lambda pk, _: transitions.bulk_change_reject(
        bulk_change_id=pk, now=now(), by="admin:second"
    ),
    (BulkChange, "start"): lambda pk, _: transitions.bulk_change_start(bulk_change_id=pk),
    (BulkChange, "complete"): lambda pk, target: transitions.bulk_change_complete(
        bulk_change_id=pk, final=target, now=now()
    ),
    (BulkChange, "cancel"): lambda pk, target: transitions.bulk_change_cancel(
        bulk_change_id=pk,
        now=now(),
        by="admin:ops",
        in_flight=target == BulkChange.Status.CANCELLING,
    ),
    (BulkChange, "finish_cancel"): lambda pk, _: transitions.bulk_change_finish_cancel(
        bulk_change_id=pk, now=now()
    ),
    (BulkChange, "reopen"): lambda pk, _: transitions.bulk_change_reopen(bulk_change_id=pk),
    (DeviceChange, "claim"): lambda pk, _: transitions.device_changes_claim(
        ids=[pk], token=uuid.uuid4(), lease_until=now() + timedelta(minutes=5), now=now()
    ),
    (DeviceChange, "finish"): lambda pk, target: transitions.device_change_finish(
        device_change_id=pk, token=TOKEN, target=target, now=now()
    ),
    (DeviceChange, "wait"): lambda pk, _: transitions.device_change_wait(
        device_change_id=pk, token=TOKEN, now=now(), next_attempt_at=now() + timedelta(minutes=1)
    ),
    (DeviceChange, "expire_lease"): lambda pk, target: transitions.device_change_expire_lease(
        device_change_id=pk,
        now=now(),
        give_up=target == DeviceChange.Status.ERROR,
        last_error="lease expired",
    ),
    (DeviceChange, "fail_unclaimed"): lambda pk, _: transitions.device_changes_fail_unclaimed(
        ids=[pk], now=now(), error="writes are disabled"
    ),
    (DeviceChange, "cancel"): lambda pk, _: transitions.device_changes_cancel(
        bulk_change_id=DeviceChange.objects.get(pk=pk).bulk_change_id, now=now()
    ),
    (DeviceChange, "requeue"): lambda pk, _: transitions.device_changes_requeue(
        ids=[pk], eligible=Q()
    ),
    (WebhookDelivery, "claim"): lambda pk, _: transitions.webhook_delivery_claim(
        delivery_id=pk, now=now(), lease_until=now() + timedelta(minutes=1)
    ),
    (WebhookDelivery, "finish"): lambda pk, target: transitions.webhook_delivery_finish(
        delivery_id=pk,
        succeeded=target == WebhookDelivery.Status.SUCCEEDED,
        now=now(),
        response_status=200,
        error_text="",
    ),
    (Preview, "start"): lambda pk, _: transitions.preview_start(preview_id=pk, now=now()),
    (Preview, "finish"): lambda pk, _: transitions.preview_finish(preview_id=pk, now=now()),
    (Preview, "fail"): lambda pk, _: transitions.preview_fail(
        preview_id=pk, now=now(), error="credentials removed"
    ),
}

CASES = [
    pytest.param(model, transition, id=f"{model.__name__}.{name}")
    for model, table in transitions.TABLES.items()
    for name, transition in table.items()
]


def test_every_transition_in_the_tables_has_a_function_and_no_function_is_unlisted() -> None:
    listed = {(model, name) for model, table in transitions.TABLES.items() for name in table}
    assert listed == set(INVOKERS)


@pytest.mark.parametrize(("model", "transition"), CASES)
def test_a_transition_moves_exactly_its_sources_to_its_targets(
    model: type[models.Model], transition: Transition
) -> None:
    invoke = INVOKERS[(model, transition.name)]
    statuses: list[str] = model.Status.values  # type: ignore[attr-defined]
    for target in sorted(transition.targets):
        for source in statuses:
            row = _row(model, source)
            won = invoke(row.pk, target)
            after = model.objects.get(pk=row.pk).status  # type: ignore[attr-defined]
            if source in transition.sources:
                assert won, f"{transition.name}: {source} -> {target} should succeed"
                assert after == target
            else:
                assert not won, f"{transition.name}: {source} -> {target} should be refused"
                assert after == source


@pytest.mark.parametrize(("model", "transition"), CASES)
def test_a_transition_asked_for_a_target_it_does_not_lead_to_raises(
    model: type[models.Model], transition: Transition
) -> None:
    statuses: list[str] = model.Status.values  # type: ignore[attr-defined]
    for target in set(statuses) - transition.targets:
        with pytest.raises(IllegalTransition):
            transition.check_target(target)


@pytest.mark.parametrize("model", list(transitions.TABLES), ids=lambda model: model.__name__)
def test_every_pair_outside_the_table_is_refused(model: type[models.Model]) -> None:
    """Walk every (source, target) pair of the model's statuses through every transition's
    function: rows move along exactly the pairs the table lists, and along no other."""
    table = transitions.TABLES[model]
    statuses: list[str] = model.Status.values  # type: ignore[attr-defined]
    moved: set[tuple[str, str]] = set()
    for name, transition in table.items():
        for target in statuses:
            if target not in transition.targets:
                continue  # refused before any write (the test above)
            for source in statuses:
                row = _row(model, source)
                won = INVOKERS[(model, name)](row.pk, target)
                after = model.objects.get(pk=row.pk).status  # type: ignore[attr-defined]
                if won:
                    moved.add((source, after))
                else:
                    assert after == source
    assert moved == transitions.legal_pairs(table)


def test_terminal_statuses_are_left_only_by_an_operators_retry() -> None:
    for name, transition in transitions.BULK_CHANGE.items():
        if transition.sources & BulkChange.TERMINAL:
            assert name == "reopen"
    for name, transition in transitions.DEVICE_CHANGE.items():
        if transition.sources & DeviceChange.TERMINAL:
            assert name == "requeue"
    assert BulkChange.Status.CANCELLED not in transitions.BULK_CHANGE["reopen"].sources


def test_a_finish_without_the_claim_token_is_refused() -> None:
    row = _row(DeviceChange, DeviceChange.Status.PROCESSING)
    assert not transitions.device_change_finish(
        device_change_id=row.pk, token=uuid.uuid4(), target="PROCESSED", now=timezone.now()
    )
    assert DeviceChange.objects.get(pk=row.pk).status == DeviceChange.Status.PROCESSING


def test_a_claim_does_not_take_a_live_lease_or_a_retry_that_is_not_due() -> None:
    later = timezone.now() + timedelta(minutes=5)
    live = _row(DeviceChange, DeviceChange.Status.PROCESSING)
    waiting = _row(DeviceChange, DeviceChange.Status.RETRY_SCHEDULED)
    DeviceChange.objects.filter(pk=live.pk).update(claimed_until=later)
    DeviceChange.objects.filter(pk=waiting.pk).update(next_attempt_at=later)
    won = transitions.device_changes_claim(
        ids=[live.pk, waiting.pk], token=uuid.uuid4(), lease_until=later, now=timezone.now()
    )
    assert won == 0


def test_architecture_doc_shows_the_same_transitions_table() -> None:
    text = ARCHITECTURE.read_text()
    for model, table in transitions.TABLES.items():
        for line in transitions.table_rows(model):
            assert line in text, f"docs/architecture.md lacks {model.__name__} row: {line}"
        assert len(table) == len(transitions.table_rows(model))
