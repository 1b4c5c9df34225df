"""Actions become plug-ins (issue 9): each action's settings move from the per-kind columns into
a JSON `config` (the webhook's headers into `secrets_encrypted`, still encrypted), an automation
may hold several actions of one kind in the IT manager's order, and each action may stop the
remaining ones when it fails (`continue_on_error`). Existing automations are carried over
unchanged: the data step below copies every column, and keeps each action's stored position."""

import json

from django.db import migrations, models

import automations.models
from assetsonar import crypto


def columns_to_config(apps, schema_editor):
    Action = apps.get_model("automations", "Action")
    for action in Action.objects.order_by("pk"):
        if action.kind == "webhook":
            action.config = {"url": action.url, "method": action.method or "POST"}
            raw = crypto.decrypt(action.headers_encrypted) if action.headers_encrypted else ""
            headers = json.loads(raw) if raw else {}
            action.secrets_encrypted = (
                crypto.encrypt(json.dumps({"headers": headers})) if headers else ""
            )
        elif action.kind == "revoke_licenses":
            action.config = {
                "user_based": action.revoke_user_based,
                "user_machine": action.revoke_user_machine,
                "device_based": action.revoke_device_based,
            }
        elif action.kind == "mdm_lock":
            action.config = {"message": action.lock_message, "phone": action.lock_phone}
        action.save(update_fields=["config", "secrets_encrypted"])


def config_to_columns(apps, schema_editor):
    Action = apps.get_model("automations", "Action")
    for action in Action.objects.order_by("pk"):
        config = action.config or {}
        if action.kind == "webhook":
            action.url = config.get("url", "")
            action.method = config.get("method", "POST")
            raw = crypto.decrypt(action.secrets_encrypted) if action.secrets_encrypted else ""
            headers = (json.loads(raw) if raw else {}).get("headers") or {}
            action.headers_encrypted = crypto.encrypt(json.dumps(headers)) if headers else ""
        elif action.kind == "revoke_licenses":
            action.revoke_user_based = bool(config.get("user_based"))
            action.revoke_user_machine = bool(config.get("user_machine"))
            action.revoke_device_based = bool(config.get("device_based"))
        elif action.kind == "mdm_lock":
            action.lock_message = config.get("message", "")
            action.lock_phone = config.get("phone", "")
        action.save()


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0006_execution_newest_index"),
    ]

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
        migrations.RunPython(columns_to_config, config_to_columns),
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
