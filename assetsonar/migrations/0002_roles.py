from django.db import migrations

from assetsonar.roles import sync_roles


class Migration(migrations.Migration):
    dependencies = [
        ("assetsonar", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("members", "0001_initial"),
        ("assets", "0001_initial"),
        ("licenses", "0001_initial"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
