"""The "Member's last working day" trigger (automations/lastday.py): the automation's trigger
settings, the timed event's automation and key, and its every-minute schedule."""

import django.db.models.deletion
from django.db import migrations, models


def create_schedule(apps, schema_editor):
    from automations.lastday import ensure_last_day_schedule

    ensure_last_day_schedule(apps.get_model("django_q", "Schedule"))


def remove_schedule(apps, schema_editor):
    from automations.lastday import LAST_DAY_SCHEDULE_NAME

    apps.get_model("django_q", "Schedule").objects.filter(name=LAST_DAY_SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0013_action_delay_scheduled_logs"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="automation",
            name="trigger_options",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="event",
            name="automation",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="automations.automation",
            ),
        ),
        migrations.AddField(
            model_name="event",
            name="key",
            field=models.CharField(blank=True, max_length=200, null=True, unique=True),
        ),
        migrations.RunPython(create_schedule, remove_schedule),
    ]
