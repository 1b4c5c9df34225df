"""The every-minute sweeper schedule (django-q2), created with the database so that every
deployment has it without a separate step. Catch-up is off for the cluster (Q_CLUSTER catch_up
False): after downtime the sweeper runs once, not once per missed minute."""

from django.db import migrations


def create_sweeper(apps, schema_editor):
    from automations.engine.events import ensure_sweeper_schedule

    ensure_sweeper_schedule(apps.get_model("django_q", "Schedule"))


def remove_sweeper(apps, schema_editor):
    from automations.engine.events import SWEEPER_SCHEDULE_NAME

    apps.get_model("django_q", "Schedule").objects.filter(name=SWEEPER_SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0002_roles"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_sweeper, remove_sweeper)]
