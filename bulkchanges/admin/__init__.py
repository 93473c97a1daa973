"""The Django admin as the operations console (DESIGN section 7, "Admin"): bulk changes are
created, watched, retried, cancelled, exported and audited here. The admin's autodiscovery
imports this package, which registers every model on the default site — PondOps' own
(``site.PondOpsAdminSite``: the product's name, the operations dashboard on its index)."""

from bulkchanges.admin import bulk_changes, device_changes, inventory, logs, partners

__all__ = ["bulk_changes", "device_changes", "inventory", "logs", "partners"]
