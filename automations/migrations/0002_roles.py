from django.db import migrations

from assetsonar.roles import sync_roles


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0001_initial"),
        ("assetsonar", "0002_roles"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
