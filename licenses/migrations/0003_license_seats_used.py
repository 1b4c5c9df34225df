"""License.seats_used, and the first computation of every denormalised count (members' too,
whose columns members/0003 adds) for the rows that already exist."""

from django.db import migrations, models
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce


def count_existing(apps, schema_editor):
    Asset = apps.get_model("assets", "Asset")
    Entitlement = apps.get_model("licenses", "Entitlement")
    License = apps.get_model("licenses", "License")
    Member = apps.get_model("members", "Member")

    def count_of(queryset, column):
        grouped = queryset.order_by().values(column).annotate(n=Count("pk")).values("n")
        return Coalesce(Subquery(grouped, output_field=IntegerField()), 0)

    live = Entitlement.objects.filter(revoked_at__isnull=True)
    Member.objects.update(
        assets_count=count_of(Asset.objects.filter(custodian=OuterRef("pk")), "custodian"),
        live_entitlements_count=count_of(live.filter(member=OuterRef("pk")), "member"),
    )
    License.objects.update(seats_used=count_of(live.filter(license=OuterRef("pk")), "license"))


class Migration(migrations.Migration):
    dependencies = [
        ("licenses", "0002_entitlement_partial_indexes"),
        ("members", "0004_member_counts_and_list_indexes"),
        ("assets", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="license",
            name="seats_used",
            field=models.IntegerField(default=0, editable=False),
        ),
        migrations.RunPython(count_existing, migrations.RunPython.noop, elidable=True),
    ]
