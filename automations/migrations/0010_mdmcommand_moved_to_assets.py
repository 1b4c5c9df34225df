"""MDMCommand moves to the assets app (issue 9: assets/ imports nothing from automations/). State
only: the table keeps its name (automations_mdmcommand) and its rows; assets migration 0004
takes the model over."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0009_action_kind_columns_removed"),
        ("assets", "0004_mdmcommand_from_automations"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="MDMCommand")],
            database_operations=[],
        ),
    ]
