"""MDMCommand comes here from the automations app (issue 9). State only: the table
automations_mdmcommand, its rows and its index stay as they are."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("assets", "0003_mdmconnection_max_concurrent_requests"),
        ("automations", "0009_action_kind_columns_removed"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="MDMCommand",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=[("lock", "Lock device")], default="lock", max_length=20
                            ),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("pending", "Pending"),
                                    ("sent", "Sent"),
                                    ("acknowledged", "Acknowledged"),
                                    ("failed", "Failed"),
                                ],
                                default="pending",
                                max_length=20,
                            ),
                        ),
                        ("pin_encrypted", models.TextField(blank=True, editable=False)),
                        ("vendor_command_id", models.CharField(blank=True, max_length=200)),
                        ("message", models.CharField(blank=True, max_length=200)),
                        ("phone", models.CharField(blank=True, max_length=40)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("sent_at", models.DateTimeField(blank=True, null=True)),
                        ("last_error", models.CharField(blank=True, max_length=500)),
                        ("response_excerpt", models.CharField(blank=True, max_length=1024)),
                        (
                            "asset",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="mdm_commands",
                                to="assets.asset",
                            ),
                        ),
                        (
                            "connection",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="commands",
                                to="assets.mdmconnection",
                            ),
                        ),
                        (
                            "log",
                            models.OneToOneField(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="mdm_command",
                                to="automations.actionlog",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "MDM command",
                        "db_table": "automations_mdmcommand",
                        "ordering": ["-created_at", "-id"],
                        "indexes": [
                            models.Index(
                                fields=["asset", "-created_at"],
                                name="automations_asset_i_628175_idx",
                            )
                        ],
                    },
                ),
            ],
        ),
    ]
