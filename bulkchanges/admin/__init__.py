"""The Django admin as the operations console (DESIGN section 7, "Admin"): bulk changes are
created, watched, retried, cancelled, exported and audited here. Importing the package
registers every model and puts the operations dashboard on the admin index."""

from bulkchanges.admin import bulk_changes, dashboard, device_changes, inventory, logs

dashboard.dashboard_install()

__all__ = ["bulk_changes", "dashboard", "device_changes", "inventory", "logs"]
