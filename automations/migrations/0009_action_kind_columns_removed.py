"""Issue 9: the per-kind columns of Action go (their values are in `config` since 0008), and so do
the one-action-per-kind and kind-list constraints: the kinds are the registry's
(automations.actions), several of one kind per automation."""

from django.db import migrations, models

import automations.models


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0008_action_config_data"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="action", name="action_one_per_kind"),
        migrations.RemoveConstraint(model_name="action", name="action_kind_valid"),
        migrations.RemoveField(model_name="action", name="url"),
        migrations.RemoveField(model_name="action", name="method"),
        migrations.RemoveField(model_name="action", name="headers_encrypted"),
        migrations.RemoveField(model_name="action", name="revoke_user_based"),
        migrations.RemoveField(model_name="action", name="revoke_user_machine"),
        migrations.RemoveField(model_name="action", name="revoke_device_based"),
        migrations.RemoveField(model_name="action", name="lock_message"),
        migrations.RemoveField(model_name="action", name="lock_phone"),
        # The kinds come from the registry (automations.actions), read when asked.
        migrations.AlterField(
            model_name="action",
            name="kind",
            field=models.CharField(choices=automations.models._kind_choices, max_length=40),
        ),
        migrations.AlterField(
            model_name="actionlog",
            name="target_type",
            field=models.CharField(choices=automations.models._target_type_choices, max_length=20),
        ),
        migrations.AlterField(
            model_name="actionlog",
            name="action_kind",
            field=models.CharField(choices=automations.models._kind_choices, max_length=40),
        ),
    ]
