"""The every-15-minutes schedule (django-q2) of device-return reminders and escalations, made
with the database so every deployment has it. Catch-up is off for the cluster: after downtime it
runs once, and each late request gets one reminder (assets/returns.py)."""

from django.db import migrations


def create_schedule(apps, schema_editor):
    from assets.returns import ensure_remind_schedule

    ensure_remind_schedule(apps.get_model("django_q", "Schedule"))


def remove_schedule(apps, schema_editor):
    from assets.returns import REMIND_SCHEDULE_NAME

    apps.get_model("django_q", "Schedule").objects.filter(name=REMIND_SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("assets", "0005_return_requests"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
