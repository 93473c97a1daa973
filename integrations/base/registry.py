"""The integrations PondOps knows, and the processor of each — the only way ``bulkchanges``
reaches a carrier or Rev.io (``docs/architecture.md``).

:class:`Integration` lives here, beside the map keyed by it, so adding a carrier is one module
(client + processor, decorated with nothing) plus one member here and one line in
:data:`PROCESSOR_MODULES`. Processors are named by dotted path and imported on first use, so
importing the registry imports no carrier.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from integrations.base.origins import Origin
    from integrations.base.protocol import StatusUpdateProcessor
    from integrations.rev import RevProcessor


class Integration(models.TextChoices):
    """The integrations a credentials row can belong to (legacy IntegrationId)."""

    POND = "POND", "POND"
    THINGSPACE = "THINGSPACE", "Verizon ThingSpace"
    JASPER = "JASPER", "Cisco Jasper"
    TELEGENCE = "TELEGENCE", "AT&T Telegence"
    TEAL = "TEAL", "Teal"
    REV = "REV", "Rev.io"


PROCESSOR_MODULES: dict[str, str] = {
    Integration.POND: "integrations.pond.PondProcessor",
    Integration.THINGSPACE: "integrations.thingspace.ThingSpaceProcessor",
    Integration.JASPER: "integrations.jasper.JasperProcessor",
    Integration.TELEGENCE: "integrations.telegence.TelegenceProcessor",
    Integration.TEAL: "integrations.teal.TealProcessor",
}
BILLING_PROCESSOR = "integrations.rev.RevProcessor"  # Integration.REV: billing, not a carrier


def _load(dotted: str) -> Any:
    module_name, class_name = dotted.rsplit(".", 1)
    return getattr(importlib.import_module(module_name), class_name)


def processor_class(integration: str) -> type[StatusUpdateProcessor]:
    """The processor for an integration; LookupError for one we cannot process."""
    try:
        dotted = PROCESSOR_MODULES[integration]
    except KeyError:
        raise LookupError(f"no status-update processor for integration {integration!r}") from None
    cls: type[StatusUpdateProcessor] = _load(dotted)
    return cls


def billing_processor_class() -> type[RevProcessor]:
    """The processor of the Rev.io steps that follow a successful carrier change."""
    cls: type[RevProcessor] = _load(BILLING_PROCESSOR)
    return cls


def carrier_integrations() -> list[str]:
    """Integrations that can process status updates (REV is billing, not a carrier)."""
    return list(PROCESSOR_MODULES)


def integration_class(integration: str) -> Any:
    """The processor class of any integration, Rev.io's billing processor included (for what
    every integration declares: limits, base URL rules, callbacks)."""
    if integration == Integration.REV:
        return billing_processor_class()
    return processor_class(integration)


def default_limits(integration: str) -> tuple[float, int]:
    """The contract's request rate and concurrency for a new credentials row."""
    cls = integration_class(integration)
    return (
        float(getattr(cls, "default_rate_limit", 10.0)),
        int(getattr(cls, "default_max_concurrency", 4)),
    )


def base_url_problems(
    integration: str, base_url: str, *, extra_origins: Sequence[Origin] = ()
) -> list[str]:
    """Why ``base_url`` may not be saved on a credentials row of ``integration`` ([] when it
    may): not https and one of the integration's known origins (nor one of the deployment's
    ``extra_origins``), or against the carrier's own rules (Rev.io's doubled ``/v1``)."""
    from integrations.base.origins import base_url_origin_problems

    cls = integration_class(integration)
    problems = base_url_origin_problems(
        display_name=cls.display_name,
        base_url=base_url,
        known_origins=cls.known_origins,
        base_path=cls.base_path,
        extra_origins=extra_origins,
    )
    return problems or list(cls.validate_base_url(base_url))


def secrets_to_reenter(integration: str, *, stored: Mapping[str, str]) -> list[str]:
    """The secret fields an operator must type again to change ``base_url``: those every call
    of the integration sends, and any other one stored (it would be sent to the new host)."""
    required = set(integration_class(integration).secret_fields)
    return [name for name in ("secret", "secret_2") if name in required or stored.get(name)]
