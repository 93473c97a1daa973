"""``manage.py register_carrier_callbacks`` and the credentials admin's "Register ThingSpace
callback" action, against the ThingSpace simulator over real HTTP: CarrierService registered
to our URL with the row's callback credentials (which ThingSpace then echoes in its
callbacks), rotation, a listener of another system left alone, deregistration, and refusal
without CARRIER_CALLBACK_BASE_URL."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from bulkchanges.models import IntegrationAuthentication
from integrations.simulators.control import SimulatorControl
from integrations.thingspace import ThingSpaceClient, iccid_id
from tests.conftest import wait_for
from tests.fixtures.callback_listener import CallbackListener
from tests.fixtures.pipeline import ThingSpaceWorld

pytestmark = pytest.mark.django_db(transaction=True)

ACCOUNT = ThingSpaceWorld.ACCOUNT
Registration = IntegrationAuthentication.CallbackRegistration


@pytest.fixture
def world(simulator: SimulatorControl, settings: Any, callback_listener: CallbackListener) -> Any:
    settings.CARRIER_CALLBACK_BASE_URL = callback_listener.url.rstrip("/")
    return ThingSpaceWorld.arrange(simulator)


def our_url(world: ThingSpaceWorld, base: str) -> str:
    return f"{base.rstrip('/')}/carriers/thingspace/callbacks/{world.credentials.pk}/"


def run(*args: str) -> tuple[str, str]:
    from io import StringIO

    out, err = StringIO(), StringIO()
    call_command("register_carrier_callbacks", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def listeners(simulator: SimulatorControl) -> list[dict[str, str]]:
    return list(simulator.thingspace_callbacks()["listeners"])


def callback_credentials_echoed(
    world: ThingSpaceWorld, listener: CallbackListener
) -> tuple[str, str, str]:
    """Have ThingSpace complete one request and answer the path and credentials its
    CarrierService callback carried."""
    [device] = world.devices(1)
    world.seed([device])
    client = ThingSpaceClient(credentials=world.credentials.as_credentials())
    client.submit_action(action="suspend", device_ids=[iccid_id(device.iccid)], idempotency_key="")
    wait_for(listener.bodies, timeout=5, interval=0.02)
    body = listener.bodies()[0]
    return listener.received[0].path, body["username"], body["password"]


def test_every_active_thingspace_row_is_registered_with_its_callback_credentials(
    world: ThingSpaceWorld, simulator: SimulatorControl, callback_listener: CallbackListener
) -> None:
    out, _ = run()

    url = our_url(world, callback_listener.url)
    assert listeners(simulator) == [
        {"accountName": ACCOUNT, "serviceName": "CarrierService", "url": url}
    ]
    world.credentials.refresh_from_db()
    assert world.credentials.callback_registration == Registration.REGISTERED
    assert world.credentials.callback_registered_at is not None
    assert f"ThingSpace account {ACCOUNT} (credentials {world.credentials.pk})" in out
    assert world.credentials.callback_password not in out
    path, username, password = callback_credentials_echoed(world, callback_listener)
    assert path == f"/carriers/thingspace/callbacks/{world.credentials.pk}/"
    assert (username, password) == (
        world.credentials.callback_username,
        world.credentials.callback_password,
    )


def test_rotate_registers_new_generated_callback_credentials(
    world: ThingSpaceWorld, callback_listener: CallbackListener
) -> None:
    before = (world.credentials.callback_username, world.credentials.callback_password)

    run("--credentials", str(world.credentials.pk), "--rotate")

    world.credentials.refresh_from_db()
    after = (world.credentials.callback_username, world.credentials.callback_password)
    assert after != before and len(after[1]) >= 32
    assert callback_credentials_echoed(world, callback_listener)[1:] == after


def test_a_carrier_service_listener_of_another_system_is_not_replaced(
    world: ThingSpaceWorld, simulator: SimulatorControl
) -> None:
    theirs = "https://other-system.example.com/verizon/"
    simulator.add_thingspace_callback(account_name=ACCOUNT, url=theirs)

    out, _ = run()
    run("--deregister")

    assert [entry["url"] for entry in listeners(simulator)] == [theirs]
    world.credentials.refresh_from_db()
    assert world.credentials.callback_registration == Registration.NOT_OURS
    assert world.credentials.callback_registered_at is None
    assert "registered to another URL; not replaced" in out
    assert world.calls("register_callback") == 0
    assert world.calls("deregister_callback") == 0


def test_deregister_removes_our_listener_and_clears_the_row(
    world: ThingSpaceWorld, simulator: SimulatorControl
) -> None:
    run()

    out, _ = run("--deregister")

    assert listeners(simulator) == []
    world.credentials.refresh_from_db()
    assert world.credentials.callback_registration == Registration.NONE
    assert world.credentials.callback_registered_at is None
    assert "CarrierService deregistered" in out


def test_without_the_callback_base_url_the_command_refuses_before_any_call(
    world: ThingSpaceWorld, settings: Any
) -> None:
    settings.CARRIER_CALLBACK_BASE_URL = ""

    with pytest.raises(CommandError, match="CARRIER_CALLBACK_BASE_URL is not set"):
        run()

    assert world.calls() == 0


def test_a_refused_registration_is_reported_and_leaves_the_row_unregistered(
    world: ThingSpaceWorld, simulator: SimulatorControl
) -> None:
    simulator.add_fault("thingspace", "register_callback", status=403)

    with pytest.raises(CommandError, match="1 of 1 registrations failed"):
        run()

    world.credentials.refresh_from_db()
    assert world.credentials.callback_registration == Registration.NONE


def test_unknown_credentials_ids_are_refused(world: ThingSpaceWorld) -> None:
    with pytest.raises(CommandError, match="no ThingSpace credentials with id 999"):
        run("--credentials", "999")


def test_the_admin_action_registers_the_selected_rows(
    world: ThingSpaceWorld, simulator: SimulatorControl, admin_client: Client
) -> None:
    response = admin_client.post(
        "/admin/bulkchanges/integrationauthentication/",
        {"action": "register_thingspace_callback", "_selected_action": [world.credentials.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "CarrierService registered to" in response.content.decode()
    world.credentials.refresh_from_db()
    assert world.credentials.callback_registration == Registration.REGISTERED
    assert len(listeners(simulator)) == 1
