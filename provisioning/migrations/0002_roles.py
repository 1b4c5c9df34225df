"""IT managers get the new "manage provisioning" permission (assetsonar.roles.sync_roles)."""

from django.db import migrations

from assetsonar.roles import sync_roles


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0001_initial"),
        ("automations", "0002_roles"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
