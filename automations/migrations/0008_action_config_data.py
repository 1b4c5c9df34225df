"""Issue 9: every action's per-kind columns carried into `Action.config` (and the webhook's
headers into `secrets_encrypted`, still encrypted); reversible."""


import json

from django.db import migrations, models

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
        # Only these columns: an UPDATE of the foreign key would leave PostgreSQL a deferred
        # trigger event, and the ALTER TABLEs after this step would be refused.
        action.save(
            update_fields=[
                "url",
                "method",
                "headers_encrypted",
                "revoke_user_based",
                "revoke_user_machine",
                "revoke_device_based",
                "lock_message",
                "lock_phone",
            ]
        )


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0007_action_config"),
    ]

    operations = [
        migrations.RunPython(columns_to_config, config_to_columns),
    ]
