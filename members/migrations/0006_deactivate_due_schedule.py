"""The every-5-minutes schedule (django-q2) that deactivates members whose last working day has
ended, created with the database as the automations sweeper is (automations/0003). Catch-up is
off for the cluster (Q_CLUSTER catch_up False): after downtime it runs once, and that one run
deactivates everyone who became due meanwhile."""

from django.db import migrations


def create_schedule(apps, schema_editor):
    from members.tasks import ensure_deactivate_due_schedule

    ensure_deactivate_due_schedule(apps.get_model("django_q", "Schedule"))


def remove_schedule(apps, schema_editor):
    from members.tasks import DEACTIVATE_DUE_SCHEDULE_NAME

    apps.get_model("django_q", "Schedule").objects.filter(
        name=DEACTIVATE_DUE_SCHEDULE_NAME
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("members", "0005_member_last_working_day"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
