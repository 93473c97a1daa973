"""In-memory HTTP fakes of the carriers PondOps calls and of Rev.io.

One stdlib-only server on one loopback port speaks each carrier's wire contract from
``docs/carriers/*.md`` under its own prefix, plus a control API under ``/_sim`` to seed
accounts and devices, inject faults and read counters. Integration tests start it in a
fixture (``tests/fixtures/simulators.py``), the benchmark and the demo run it with
``python -m integrations.simulators`` or ``manage.py run_simulators``;
:class:`~integrations.simulators.control.SimulatorControl` drives the control API.

Client base URLs (``PORT`` is the server's):

- POND: ``http://127.0.0.1:PORT/pond/ds/u/distributorPPUService/v1``
- ThingSpace: ``http://127.0.0.1:PORT/thingspace``
- Jasper: ``http://127.0.0.1:PORT/jasper``
- Telegence: ``http://127.0.0.1:PORT/telegence``
- Teal: ``http://127.0.0.1:PORT/teal``
- Rev.io: ``http://127.0.0.1:PORT/rev``

(``SimulatorControl`` has a ``<carrier>_base_url`` property for each.)
"""

from .server import NonLoopbackHostError, SimulatorServer

__all__ = ["NonLoopbackHostError", "SimulatorServer"]
