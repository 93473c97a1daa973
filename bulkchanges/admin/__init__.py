"""The Django admin as the operations console (docs/architecture.md §11): bulk changes are
created, watched, retried, cancelled, exported and audited here. The admin's autodiscovery
imports this package, which registers every model on the default site — PondOps' own
(``site.PondOpsAdminSite``: the product's name, the operations dashboard on its index)."""

from bulkchanges.admin import (
    bulk_changes,
    callbacks,
    dead_letters,
    device_changes,
    inventory,
    logs,
    partners,
    previews,
)

__all__ = [
    "bulk_changes",
    "callbacks",
    "dead_letters",
    "device_changes",
    "inventory",
    "logs",
    "partners",
    "previews",
]
