"""The registry: the processor of each integration, by dotted path."""

from __future__ import annotations

import pytest

from integrations.base import (
    Integration,
    StatusUpdateProcessor,
    billing_processor_class,
    carrier_integrations,
    processor_class,
)
from integrations.jasper import JasperProcessor
from integrations.pond import PondProcessor
from integrations.rev import RevProcessor
from integrations.teal import TealProcessor
from integrations.telegence import TelegenceProcessor
from integrations.thingspace import ThingSpaceProcessor

CARRIERS: dict[str, type[StatusUpdateProcessor]] = {
    "POND": PondProcessor,
    "THINGSPACE": ThingSpaceProcessor,
    "JASPER": JasperProcessor,
    "TELEGENCE": TelegenceProcessor,
    "TEAL": TealProcessor,
}


@pytest.mark.parametrize(("integration", "processor"), CARRIERS.items())
def test_each_carrier_integration_has_its_processor(
    integration: str, processor: type[StatusUpdateProcessor]
) -> None:
    assert processor_class(integration) is processor
    assert processor.integration == integration


@pytest.mark.parametrize("integration", ["REV", "VODAFONE", ""])
def test_an_integration_without_a_status_update_processor_is_a_lookup_error(
    integration: str,
) -> None:
    with pytest.raises(
        LookupError, match=f"no status-update processor for integration {integration!r}"
    ):
        processor_class(integration)


def test_the_carrier_integrations_are_every_integration_but_rev() -> None:
    assert carrier_integrations() == list(CARRIERS)
    assert set(carrier_integrations()) == set(Integration) - {Integration.REV}


def test_the_billing_processor_is_rev() -> None:
    assert billing_processor_class() is RevProcessor
    assert RevProcessor.integration == Integration.REV
