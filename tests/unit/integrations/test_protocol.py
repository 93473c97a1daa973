"""The processor protocol: the processor base builds its carrier's client from the one
constructor signature, and steps record only Progress fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from integrations.base import (
    CallRecord,
    CarrierClient,
    Credentials,
    MemoryTokenStore,
    Progress,
    StatusUpdateProcessor,
    Step,
    StepResult,
    UpdateContext,
)
from integrations.jasper import JasperClient, JasperProcessor
from integrations.pond import PondClient, PondProcessor
from integrations.teal import TealClient, TealProcessor
from integrations.telegence import TelegenceClient, TelegenceProcessor
from integrations.thingspace import ThingSpaceClient, ThingSpaceProcessor
from tests.unit.integrations.support import RecordingThrottle

CREDENTIALS = Credentials(
    integration_authentication_id=1, integration="POND", base_url="https://x.test", secret="k3y"
)


@pytest.mark.parametrize(
    ("processor_class", "client_class"),
    [
        (PondProcessor, PondClient),
        (JasperProcessor, JasperClient),
        (TelegenceProcessor, TelegenceClient),
        (TealProcessor, TealClient),
        (ThingSpaceProcessor, ThingSpaceClient),
    ],
)
def test_a_processor_builds_its_client_once_from_its_own_arguments(
    processor_class: type[StatusUpdateProcessor[Any]],
    client_class: type[CarrierClient],
    audit: list[CallRecord],
    throttle: RecordingThrottle,
) -> None:
    session = requests.Session()
    processor = processor_class(
        credentials=CREDENTIALS,
        session=session,
        throttle=throttle,
        on_call=audit.append,
        timeouts=(1, 2),
    )

    client = processor.client

    assert type(client) is client_class
    assert processor.client is client
    assert client.credentials is CREDENTIALS
    assert client.http.session is session
    assert client.http.throttle is throttle
    assert client.http.on_call == audit.append
    assert client.http.timeouts == (1, 2)


def test_thingspaces_client_shares_the_processors_token_store() -> None:
    store = MemoryTokenStore()

    given = ThingSpaceProcessor(credentials=CREDENTIALS, token_store=store, timeouts=(1, 1))
    default = ThingSpaceProcessor(credentials=CREDENTIALS, timeouts=(1, 1))

    assert given.client.token_store is store
    assert default.client.token_store is default.token_store


def test_a_step_result_records_only_progress_fields() -> None:
    StepResult(Step.SUBMIT, {"carrier_request_id": "r-1", "carrier_submitted_at": None})

    with pytest.raises(ValueError, match=r"unknown progress fields: \['status'\]"):
        StepResult(Step.SUBMIT, {"status": "done", "carrier_request_id": "r-1"})


NOW = datetime(2026, 11, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    ("progress", "done"),
    [
        (Progress(), set()),
        (Progress(carrier_request_id="r-1"), {Step.PREPARE}),
        (Progress(carrier_submitted_at=NOW), {Step.SUBMIT}),
        (Progress(carrier_status_at=NOW), {Step.CARRIER_STATUS, Step.CONFIRM}),
        (Progress(service_status_at=NOW), {Step.SERVICE_STATUS}),
        (Progress(rev_service_id=812, rev_product_ids={"55": 9901}), {Step.REV_SERVICE}),
    ],
)
def test_progress_says_which_steps_are_done(progress: Progress, done: set[Step]) -> None:
    assert {step for step in Step if progress.is_done(step)} == done


def test_the_idempotency_key_is_stable_per_device_change_and_step() -> None:
    context = UpdateContext(device_change_id=77, bulk_change_id=5, iccid="8914", target_status="x")

    assert context.idempotency_key(Step.SUBMIT) == "pondops-77-submit"
    assert context.idempotency_key("rev_products-55") == "pondops-77-rev_products-55"
