"""Demo data for the local stack (``manage.py run_demo``): an admin login, a tenant with carrier
and Rev.io credentials pointing at the simulators, and SIMs that exist both in the simulators
and in our inventory.

Idempotent: the SQLite file persists between runs while the simulators start empty every time,
so each run updates the database rows in place (keeping the generated secrets) and seeds the
simulators again with those same secrets and SIMs. Inventory devices are reset to their
carrier's active status, matching the freshly seeded simulator.

Carriers are rows of :data:`DEMO_CARRIERS`: demoing another carrier is one more entry there
(with the two small functions that drive its simulator). :func:`demo_bulk_change_create`
queues the demo's bulk change through the same services as every other entry point.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import transaction

from bulkchanges.models import BulkChange, IntegrationAuthentication, Tenant
from bulkchanges.services.bulk_changes import bulk_change_create, status_update_request_validate
from bulkchanges.services.inventory import devices_import, integration_authentication_set
from bulkchanges.types import DeviceRef
from integrations.base import Integration
from integrations.rev import RevProduct, RevServiceRequest
from integrations.simulators.control import POND_PREFIX, REV_PREFIX, SimulatorControl

DEMO_TENANT = "Demo IoT"
DEMO_ADMIN = "admin"
DEMO_RATE_LIMIT = 50.0  # requests/s, in our credentials and in the simulator alike
DEMO_REV_CLIENT = "DEMO"
DEMO_REV_USERNAME = "pondops"
DEMO_REV_CUSTOMER_IDS = (42,)


@dataclass(frozen=True)
class DemoCarrier:
    """How the demo sets up one carrier: its credentials row, its simulator account and SIMs.

    ``configure`` creates the account in the simulator from our stored credentials row (its
    secrets, account and rate); ``seed`` creates the given devices there in their active state;
    ``inventory_status`` is the DeviceStatus code those devices get in our inventory. Devices
    get an ICCID and, where the carrier identifies lines by them, an MSISDN and an EID, each a
    prefix plus a counter.
    """

    integration: Integration
    account: str
    username: str
    prefix: str  # the carrier's path under the simulators' URL
    inventory_status: str
    configure: Callable[[SimulatorControl, IntegrationAuthentication], None]
    seed: Callable[[SimulatorControl, IntegrationAuthentication, Sequence[DeviceRef]], None]
    iccid_prefix: str  # 20-digit ICCIDs
    msisdn_prefix: str = ""  # 10-digit MSISDNs, for carriers that need them
    eid_prefix: str = ""  # 32-digit EIDs, for carriers that need them

    def devices(self, count: int) -> list[DeviceRef]:
        return [
            DeviceRef(
                iccid=_numbered(self.iccid_prefix, number, 20),
                msisdn=_numbered(self.msisdn_prefix, number, 10),
                eid=_numbered(self.eid_prefix, number, 32),
            )
            for number in range(1, count + 1)
        ]


def _numbered(prefix: str, number: int, digits: int) -> str:
    return f"{prefix}{number:0{digits - len(prefix)}d}" if prefix else ""


def _pond_configure(simulator: SimulatorControl, credentials: IntegrationAuthentication) -> None:
    simulator.add_pond_account(
        distributor_id=credentials.account,
        api_key=credentials.secret,
        rate_limit=credentials.rate_limit,
    )


def _pond_seed(
    simulator: SimulatorControl,
    credentials: IntegrationAuthentication,
    devices: Sequence[DeviceRef],
) -> None:
    # Without a "packages" entry the simulator gives each SIM one package in the SIM's state.
    simulator.seed_pond_sims(
        distributor_id=credentials.account,
        sims=[{"iccid": device.iccid, "status": "Active"} for device in devices],
    )


DEMO_CARRIERS: tuple[DemoCarrier, ...] = (
    DemoCarrier(
        integration=Integration.POND,
        account="1001",
        username="",
        prefix=POND_PREFIX,
        inventory_status="ACTIVE",
        configure=_pond_configure,
        seed=_pond_seed,
        iccid_prefix="8901001",
    ),
)


@dataclass(frozen=True)
class DemoData:
    """What :func:`demo_seed` made: rows to build a demo bulk change from."""

    tenant: Tenant
    admin_username: str
    credentials: dict[str, IntegrationAuthentication]  # by integration, REV included
    devices: dict[str, list[DeviceRef]]  # inventory devices by carrier integration

    @property
    def rev(self) -> IntegrationAuthentication:
        return self.credentials[Integration.REV]


def demo_seed(
    *,
    simulator: SimulatorControl,
    simulator_url: str,
    admin_password: str,
    devices: int = 50,
) -> DemoData:
    """Create or refresh the demo data; safe to run on every start.

    ``simulator`` drives the simulators' control API; ``simulator_url`` is where workers reach
    them (stored as the credentials' base URLs). Sets the ``admin`` superuser's password to
    ``admin_password`` every run. Seeds ``devices`` SIMs per carrier.
    """
    base = simulator_url.rstrip("/")
    with transaction.atomic():
        _admin_set(password=admin_password)
        tenant, _ = Tenant.objects.get_or_create(name=DEMO_TENANT)
        credentials = {
            carrier.integration.value: _credentials_set(
                tenant=tenant,
                integration=carrier.integration,
                account=carrier.account,
                username=carrier.username,
                base_url=base + carrier.prefix,
            )
            for carrier in DEMO_CARRIERS
        }
        credentials[Integration.REV.value] = _credentials_set(
            tenant=tenant,
            integration=Integration.REV,
            account=DEMO_REV_CLIENT,
            username=DEMO_REV_USERNAME,
            base_url=base + REV_PREFIX,
        )

    rev = credentials[Integration.REV.value]
    simulator.add_rev_account(
        client_code=rev.account,
        username=rev.username,
        password=rev.secret,
        rate_limit=rev.rate_limit,
    )
    simulator.add_rev_customers(client_code=rev.account, customer_ids=DEMO_REV_CUSTOMER_IDS)
    inventory: dict[str, list[DeviceRef]] = {}
    for carrier in DEMO_CARRIERS:
        carrier_devices = carrier.devices(devices)
        carrier_credentials = credentials[carrier.integration.value]
        carrier.configure(simulator, carrier_credentials)
        carrier.seed(simulator, carrier_credentials, carrier_devices)
        devices_import(
            tenant=tenant,
            integration=carrier.integration,
            devices=carrier_devices,
            status_code=carrier.inventory_status,
        )
        inventory[carrier.integration.value] = carrier_devices
    return DemoData(
        tenant=tenant, admin_username=DEMO_ADMIN, credentials=credentials, devices=inventory
    )


def _admin_set(*, password: str) -> AbstractUser:
    user_model = get_user_model()
    admin, _ = user_model.objects.get_or_create(
        username=DEMO_ADMIN, defaults={"email": "admin@localhost"}
    )
    admin.is_staff = admin.is_superuser = admin.is_active = True
    admin.set_password(password)
    admin.save()
    return admin


def _credentials_set(
    *, tenant: Tenant, integration: Integration, account: str, username: str, base_url: str
) -> IntegrationAuthentication:
    """Point the row at this run's simulators; keep its secret, generating one the first time."""
    existing = IntegrationAuthentication.objects.filter(
        tenant=tenant, integration=integration, account=account
    ).first()
    secret = existing.secret if existing is not None and existing.secret else None
    row, _ = integration_authentication_set(
        tenant=tenant,
        integration=integration,
        account=account,
        secrets=[secret or secrets.token_urlsafe(24)],
        base_url=base_url,
        username=username,
        rate_limit=DEMO_RATE_LIMIT,
        writes_enabled=True,
        is_active=True,
    )
    return row


def demo_bulk_change_create(*, data: DemoData, devices: int = 20) -> BulkChange:
    """Queue the demo's POND bulk change: the first ``devices`` inventory SIMs to SUSPENDED,
    each with a Rev.io service for customer 42 (service type 7, product 55 at 4.50). Goes
    through the same validation and creation as every other entry point."""
    rev_service = RevServiceRequest(
        customer_id=DEMO_REV_CUSTOMER_IDS[0],
        service_type_id=7,
        integration_authentication_id=data.rev.pk,
        products=(RevProduct(product_id=55, rate=Decimal("4.50")),),
    )
    validated = status_update_request_validate(
        tenant=data.tenant,
        integration=Integration.POND,
        update_status="SUSPENDED",
        rev_service=rev_service,
    )
    bulk_change, _ = bulk_change_create(
        tenant=data.tenant,
        created_by="demo",
        validated=validated,
        devices=data.devices[Integration.POND][:devices],
    )
    return bulk_change
