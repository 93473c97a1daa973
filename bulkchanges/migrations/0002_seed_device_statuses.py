"""Seed each carrier's device statuses (carriers/README.md): the codes are the carriers' own
status names — the names a bulk change targets, except Teal, whose targets (enabled/disabled)
are recorded as the eSIM states it reports (online/stopped, docs/carriers/teal.md)."""

from django.db import migrations

STATUSES = {
    "POND": [("ACTIVE", "Active", True), ("SUSPENDED", "Suspended", False),
             ("TERMINATED", "Terminated", False)],
    "THINGSPACE": [("active", "Active", True), ("suspended", "Suspended", False),
                   ("deactivated", "Deactivated", False)],
    "JASPER": [("ACTIVATED", "Activated", True), ("DEACTIVATED", "Deactivated", False),
               ("ACTIVATION_READY", "Activation ready", False),
               ("TEST_READY", "Test ready", False), ("INVENTORY", "Inventory", False),
               ("RETIRED", "Retired", False)],
    "TELEGENCE": [("Active", "Active", True), ("Suspended", "Suspended", False),
                  ("Cancelled", "Cancelled", False)],
    # Teal's targets are enabled/disabled; what it reports (and we record) is the eSIM state.
    "TEAL": [("online", "Online (enabled)", True), ("waiting", "Waiting (enabled)", True),
             ("stopped", "Stopped (disabled)", False)],
}


def seed(apps, schema_editor):
    DeviceStatus = apps.get_model("bulkchanges", "DeviceStatus")
    for integration, rows in STATUSES.items():
        for code, display_name, is_active in rows:
            DeviceStatus.objects.update_or_create(
                integration=integration, code=code,
                defaults={"display_name": display_name, "is_active_status": is_active},
            )


def unseed(apps, schema_editor):
    DeviceStatus = apps.get_model("bulkchanges", "DeviceStatus")
    for integration, rows in STATUSES.items():
        DeviceStatus.objects.filter(integration=integration,
                                    code__in=[code for code, _, _ in rows]).delete()


class Migration(migrations.Migration):
    dependencies = [("bulkchanges", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
