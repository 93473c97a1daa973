"""Demo data for the local stack (``manage.py run_demo``): an admin login, a tenant with
credentials for every carrier and for Rev.io pointing at the simulators, and SIMs that exist
both in the simulators and in our inventory.

Idempotent: the SQLite file persists between runs while the simulators start empty every time,
so each run updates the database rows in place (keeping the generated secrets) and seeds the
simulators again with those same secrets and SIMs. Inventory devices are reset to their
carrier's active status, matching the freshly seeded simulator.

Carriers are rows of :data:`DEMO_CARRIERS`: demoing another carrier is one more entry there
(with the two small functions that drive its simulator). :func:`demo_bulk_changes_create`
queues one demo bulk change per carrier through the same services as every other entry point.

The demo runs only where ``PONDOPS_ENVIRONMENT`` is ``local`` (the default):
:func:`demo_environment_check` refuses anywhere else, before anything is written, because the
demo's superuser has a published password. The host of ``DATABASE_URL`` proves nothing (a
production database is reached through a Unix socket, ``localhost`` or a local proxy just as
well), so the environment's name is the rule.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import transaction

from bulkchanges.errors import ApplicationError
from bulkchanges.models import BulkChange, CredentialsChange, IntegrationAuthentication, Tenant
from bulkchanges.services.bulk_changes import bulk_change_create, status_update_request_validate
from bulkchanges.services.inventory import devices_import, integration_authentication_set
from bulkchanges.types import DeviceRef
from integrations.base import Integration, billing_processor_class
from integrations.rev_request import RevProduct, RevServiceRequest
from integrations.simulators.control import POND_PREFIX, REV_PREFIX, SimulatorControl

DEMO_TENANT = "Demo IoT"
DEMO_ADMIN = "admin"
# The demo admin's documented password (README, the launcher's banner): public knowledge, so a
# production start refuses while any user still has it (pondops/startup.py).
DEMO_ADMIN_PASSWORD = "pondops-demo"  # noqa: S105 — published on purpose, never a real secret
DEMO_ENVIRONMENT = "local"
DEMO_RATE_LIMIT = 50.0  # requests/s, in our credentials and in the simulator alike
DEMO_REV_CLIENT = "DEMO"
DEMO_REV_USERNAME = "pondops"
DEMO_REV_CUSTOMER_IDS = (42,)
DEMO_REV_CALLS_PER_MINUTE = 500  # Rev.io's own limit; our row: the processor's 8 a second
# How long the asynchronous carriers take to complete a change, so the demo shows their submit
# and confirm steps (the simulators' settings are global, not per account).
DEMO_THINGSPACE_COMPLETION_MS = 1500
DEMO_TEAL_COMPLETION_SECONDS = 1.5

# The carriers' paths under the simulators' URL (SimulatorControl's *_base_url properties).
THINGSPACE_PREFIX = "/thingspace"
JASPER_PREFIX = "/jasper"
TELEGENCE_PREFIX = "/telegence"
TEAL_PREFIX = "/teal"


@dataclass(frozen=True)
class DemoCarrier:
    """How the demo sets up one carrier: its credentials row, its simulator account and SIMs,
    and the demo bulk change it gets.

    ``configure`` creates the account in the simulator from our stored credentials row (its
    secrets, account and rate); ``seed`` creates the given devices there in their active state;
    ``inventory_status`` is the DeviceStatus code those devices get in our inventory. Devices
    get an ICCID and, where the carrier identifies lines by them, an MSISDN and an EID, each a
    prefix plus a counter. ``secret_count`` secrets (``secret``, then ``secret_2``) are
    generated once and kept. The demo bulk change sets ``demo_target``, with a Rev.io service
    per device when ``demo_rev_service``.
    """

    integration: Integration
    account: str
    username: str
    prefix: str  # the carrier's path under the simulators' URL
    inventory_status: str
    configure: Callable[[SimulatorControl, IntegrationAuthentication], None]
    seed: Callable[[SimulatorControl, IntegrationAuthentication, Sequence[DeviceRef]], None]
    iccid_prefix: str  # 20-digit ICCIDs
    demo_target: str
    demo_rev_service: bool = False
    client_id: str = ""
    secret_count: int = 1
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


# -- POND -------------------------------------------------------------------------------------


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
        sims=[{"iccid": device.iccid, "services": "ENABLED"} for device in devices],
    )


# -- Verizon ThingSpace: OAuth key/secret (client_id, secret) and UWS user (username, secret_2) -


def _thingspace_configure(
    simulator: SimulatorControl, credentials: IntegrationAuthentication
) -> None:
    simulator.add_thingspace_account(
        account_name=credentials.account,
        client_key=credentials.client_id,
        client_secret=credentials.secret,
        username=credentials.username,
        password=credentials.secret_2,
        rate_limit=credentials.rate_limit,
    )
    simulator.set_thingspace_completion_delay(DEMO_THINGSPACE_COMPLETION_MS)


def _thingspace_seed(
    simulator: SimulatorControl,
    credentials: IntegrationAuthentication,
    devices: Sequence[DeviceRef],
) -> None:
    simulator.seed_thingspace_devices(
        account_name=credentials.account,
        devices=[{"iccid": device.iccid, "state": "active"} for device in devices],
    )


# -- Cisco Jasper: Basic username:api_key ------------------------------------------------------


def _jasper_configure(simulator: SimulatorControl, credentials: IntegrationAuthentication) -> None:
    simulator.add_jasper_account(
        username=credentials.username,
        api_key=credentials.secret,
        rate_limit=credentials.rate_limit,
    )


def _jasper_seed(
    simulator: SimulatorControl,
    credentials: IntegrationAuthentication,
    devices: Sequence[DeviceRef],
) -> None:
    simulator.seed_jasper_devices(
        username=credentials.username,
        devices=[{"iccid": device.iccid, "status": "ACTIVATED"} for device in devices],
    )


# -- AT&T Telegence: app-id (username) and app-secret, lines by MSISDN -------------------------


def _telegence_configure(
    simulator: SimulatorControl, credentials: IntegrationAuthentication
) -> None:
    simulator.add_telegence_account(
        app_id=credentials.username,
        app_secret=credentials.secret,
        billing_account=credentials.account,
        rate_limit=credentials.rate_limit,
    )


def _telegence_seed(
    simulator: SimulatorControl,
    credentials: IntegrationAuthentication,
    devices: Sequence[DeviceRef],
) -> None:
    simulator.seed_telegence_subscribers(
        app_id=credentials.username,
        subscribers=[
            {"msisdn": device.msisdn, "iccid": device.iccid, "status": "Active"}
            for device in devices
        ],
    )


# -- Teal: ApiKey (username) and ApiSecret, eSIMs by EID ---------------------------------------


def _teal_configure(simulator: SimulatorControl, credentials: IntegrationAuthentication) -> None:
    simulator.add_teal_account(
        api_key=credentials.username,
        api_secret=credentials.secret,
        label=credentials.account,
        calls_per_minute=credentials.rate_limit * 60,  # Teal counts calls per minute
    )
    simulator.configure_teal(completion_seconds=DEMO_TEAL_COMPLETION_SECONDS)


def _teal_seed(
    simulator: SimulatorControl,
    credentials: IntegrationAuthentication,
    devices: Sequence[DeviceRef],
) -> None:
    simulator.seed_teal_esims(
        api_key=credentials.username,
        esims=[
            {"eid": device.eid, "iccid": device.iccid, "status": "online"} for device in devices
        ],
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
        demo_target="SUSPENDED",
        demo_rev_service=True,
    ),
    DemoCarrier(
        integration=Integration.THINGSPACE,
        account="0342077109-00001",
        username="pondops-uws",
        client_id="pondops-demo-client",
        secret_count=2,
        prefix=THINGSPACE_PREFIX,
        inventory_status="active",
        configure=_thingspace_configure,
        seed=_thingspace_seed,
        iccid_prefix="8914800",
        demo_target="suspended",
    ),
    DemoCarrier(
        integration=Integration.JASPER,
        account="Demo IoT US",
        username="pondops-demo",
        prefix=JASPER_PREFIX,
        inventory_status="ACTIVATED",
        configure=_jasper_configure,
        seed=_jasper_seed,
        iccid_prefix="8901260",
        demo_target="DEACTIVATED",
    ),
    DemoCarrier(
        integration=Integration.TELEGENCE,
        account="287000001",  # the billing account
        username="pondops-demo",  # the app id
        prefix=TELEGENCE_PREFIX,
        inventory_status="Active",
        configure=_telegence_configure,
        seed=_telegence_seed,
        iccid_prefix="8901410",
        msisdn_prefix="214555",
        demo_target="Suspended",
    ),
    DemoCarrier(
        integration=Integration.TEAL,
        account="Demo fleet",  # the account's label
        username="pondops-demo-key",  # the ApiKey
        prefix=TEAL_PREFIX,
        inventory_status="online",
        configure=_teal_configure,
        seed=_teal_seed,
        iccid_prefix="8988303",
        eid_prefix="8904903200000000000000",
        demo_target="disabled",
    ),
)


@dataclass(frozen=True)
class DemoData:
    """What :func:`demo_seed` made: rows to build the demo bulk changes from."""

    tenant: Tenant
    admin_username: str
    credentials: dict[str, IntegrationAuthentication]  # by integration, REV included
    devices: dict[str, list[DeviceRef]]  # inventory devices by carrier integration

    @property
    def rev(self) -> IntegrationAuthentication:
        return self.credentials[Integration.REV]


class DemoRefused(ApplicationError):
    """The demo may not run here (see :func:`demo_environment_check`)."""


def demo_environment_check() -> None:
    """Refuse (DemoRefused) unless PONDOPS_ENVIRONMENT is ``local``. Reads settings only: it
    touches no database, so a refusal comes before any write."""
    environment = settings.ENVIRONMENT_NAME
    if environment != DEMO_ENVIRONMENT:
        raise DemoRefused(
            f"the demo refuses to run with PONDOPS_ENVIRONMENT={environment!r}: it creates a "
            f"superuser with the published password {DEMO_ADMIN_PASSWORD!r} and fake carrier "
            f"credentials, so it runs only with PONDOPS_ENVIRONMENT={DEMO_ENVIRONMENT} (the "
            "default) against a database of its own",
            code="demo_refused",
        )


def demo_egress_allow(*, simulator_url: str) -> str:
    """Let this process reach the simulators at ``simulator_url`` — loopback, and no carrier's
    known origin — by adding its origin to PONDOPS_CARRIER_EXTRA_ORIGINS (the credentials rows
    point there, and their calls go there). Returns the setting's new value as the environment
    spells it, for the demo's worker processes."""
    parts = urlsplit(simulator_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    origins = list(settings.PONDOPS_CARRIER_EXTRA_ORIGINS)
    if origin not in origins:
        origins.append(origin)
    settings.PONDOPS_CARRIER_EXTRA_ORIGINS = origins
    return ",".join(origins)


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
    ``admin_password`` every run. Seeds ``devices`` SIMs per carrier. Carriers reach the
    demo's web server through CARRIER_CALLBACK_BASE_URL, which the launcher gives every
    process: no row stores a callback URL (Teal's would carry the row's token in clear).

    Refuses (DemoRefused) outside PONDOPS_ENVIRONMENT=local before writing anything.
    """
    demo_environment_check()
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
                client_id=carrier.client_id,
                secret_count=carrier.secret_count,
                base_url=base + carrier.prefix,
            )
            for carrier in DEMO_CARRIERS
        }
        # Rev.io: the password, then the API-management subscription key (secret_2).
        credentials[Integration.REV.value] = _credentials_set(
            tenant=tenant,
            integration=Integration.REV,
            account=DEMO_REV_CLIENT,
            username=DEMO_REV_USERNAME,
            base_url=base + REV_PREFIX,
            secret_count=2,
            rate_limit=billing_processor_class().default_rate_limit,
        )
        # Demo databases made before the launcher set CARRIER_CALLBACK_BASE_URL stored Teal's
        # callback URL with the row's token in clear: forget it (the base URL builds it now).
        IntegrationAuthentication.objects.filter(
            tenant=tenant, own_callback_url__contains="token="
        ).update(own_callback_url="")

    rev = credentials[Integration.REV.value]
    simulator.add_rev_account(
        client_code=rev.account,
        username=rev.username,
        password=rev.secret,
        subscription_key=rev.secret_2,
        calls_per_minute=DEMO_REV_CALLS_PER_MINUTE,
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
    *,
    tenant: Tenant,
    integration: Integration,
    account: str,
    username: str,
    base_url: str,
    client_id: str = "",
    secret_count: int = 1,
    rate_limit: float = DEMO_RATE_LIMIT,
) -> IntegrationAuthentication:
    """Point the row at this run's simulators; keep its secrets, generating any missing one.

    The secrets are passed on every run, so the carrier forgets state kept for them (cached
    ThingSpace tokens, which the freshly started simulator would refuse)."""
    existing = IntegrationAuthentication.objects.filter(
        tenant=tenant, integration=integration, account=account
    ).first()
    stored = (existing.secret, existing.secret_2) if existing is not None else ("", "")
    kept = [stored[index] or secrets.token_urlsafe(24) for index in range(secret_count)]
    row, _ = integration_authentication_set(
        tenant=tenant,
        integration=integration,
        actor="demo",
        via=CredentialsChange.Via.DEMO,
        account=account,
        secrets=kept,
        base_url=base_url,
        username=username,
        client_id=client_id,
        rate_limit=rate_limit,
        writes_enabled=True,
        is_active=True,
    )
    return row


def demo_bulk_changes_create(*, data: DemoData, devices: int = 20) -> list[BulkChange]:
    """Queue one demo bulk change per carrier, in :data:`DEMO_CARRIERS` order: its first
    ``devices`` inventory SIMs to the carrier's ``demo_target``. POND's each get a Rev.io
    service for customer 42 (service type 7, product 55 at 4.50). Goes through the same
    validation and creation as every other entry point."""
    rev_service = RevServiceRequest(
        customer_id=DEMO_REV_CUSTOMER_IDS[0],
        service_type_id=7,
        integration_authentication_id=data.rev.pk,
        products=(RevProduct(product_id=55, rate=Decimal("4.50")),),
    )
    created: list[BulkChange] = []
    for carrier in DEMO_CARRIERS:
        integration = carrier.integration.value
        validated = status_update_request_validate(
            tenant=data.tenant,
            integration=integration,
            update_status=carrier.demo_target,
            credentials_id=data.credentials[integration].pk,
            rev_service=rev_service if carrier.demo_rev_service else None,
        )
        bulk_change, _ = bulk_change_create(
            tenant=data.tenant,
            created_by="demo",
            validated=validated,
            devices=data.devices[integration][:devices],
        )
        created.append(bulk_change)
    return created
