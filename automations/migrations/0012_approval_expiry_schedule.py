"""The every-15-minutes schedule that expires undecided approval requests (django-q2)."""

from django.db import migrations


def create_schedule(apps, schema_editor):
    from automations.actions.approval import ensure_expiry_schedule

    ensure_expiry_schedule(apps.get_model("django_q", "Schedule"))


def remove_schedule(apps, schema_editor):
    from automations.actions.approval import EXPIRY_SCHEDULE_NAME

    apps.get_model("django_q", "Schedule").objects.filter(name=EXPIRY_SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0011_approval"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
