"""Processing devices: claims, fan-out, the device runner and completion (docs/architecture.md
§6, §7).

Promises:
- A device's carrier call is made at most once per attempt, whatever the queue redelivers: a
  worker works on a device only after winning its claim (one conditional UPDATE; the row count
  decides), and writes only while it holds the claim token.
- Each completed step is recorded before the next starts, so retries resume after it.
- A device change is claimable only when no older unfinished device change exists for the same
  ICCID and integration, so two bulk changes touching one device apply in creation order.
- Completion is written once, by a conditional update that never overwrites a final status.

Every status change goes through :mod:`bulkchanges.transitions`.

Modules: :mod:`.claims` (who may work on a device), :mod:`.fanout` (a bulk change into
chunks), :mod:`.runner` (one device's steps and outcome, on a thread pool per chunk),
:mod:`.completion` (the final status, once).
"""

from bulkchanges.services.processing.claims import (
    Enqueue,
    device_change_claim,
    next_waiting_device_change,
)
from bulkchanges.services.processing.completion import bulk_change_complete_if_done
from bulkchanges.services.processing.fanout import bulk_change_fan_out
from bulkchanges.services.processing.runner import device_changes_process

__all__ = [
    "Enqueue",
    "bulk_change_complete_if_done",
    "bulk_change_fan_out",
    "device_change_claim",
    "device_changes_process",
    "next_waiting_device_change",
]
