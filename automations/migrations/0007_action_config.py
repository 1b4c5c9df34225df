"""Actions become plug-ins (issue 9): each action's settings move from the per-kind columns into
a JSON `config` (the webhook's headers into `secrets_encrypted`, still encrypted), an automation
may hold several actions of one kind in the IT manager's order, and each action may stop the
remaining ones when it fails (`continue_on_error`). Existing automations are carried over
unchanged: the data step below copies every column, and keeps each action's stored position."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0006_execution_newest_index"),
    ]

    # Three migrations (columns added, data carried, old columns removed), each its own
    # transaction: PostgreSQL refuses an ALTER TABLE after an UPDATE of the same table in one.
    operations = [
        migrations.AddField(
            model_name="action",
            name="config",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="action",
            name="secrets_encrypted",
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.AddField(
            model_name="action",
            name="continue_on_error",
            field=models.BooleanField(
                default=True,
                help_text="Off: if this action fails, the remaining actions of the automation "
                "are skipped.",
            ),
        ),
    ]
