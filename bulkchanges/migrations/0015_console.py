"""The audit log's name in the console: "audit log" (its list, breadcrumbs and navigation),
not "bulk change logs". Options only: no table changes."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('bulkchanges', '0014_operator_features'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='bulkchangelog',
            options={'ordering': ['-processed_at', '-id'], 'verbose_name': 'audit log entry', 'verbose_name_plural': 'audit log'},
        ),
    ]
