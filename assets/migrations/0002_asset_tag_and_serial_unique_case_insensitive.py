"""Asset tags and serial numbers become unique case-insensitively (LOWER(...) unique indexes).

Existing rows that repeat one another in another letter case would make the new indexes fail, so
they are resolved first, keeping the oldest asset (lowest id) of each group as it is:

- a repeated asset tag gets a suffix (`as-000030` beside `AS-000030` becomes `as-000030-2`);
- a repeated serial number is cleared on the newer asset: a serial names one physical device, so
  two records with it are most likely one device registered twice, and inventing a serial would
  be worse than leaving it blank.

Each change is noted in the asset's notes and written to the audit log ("system"), and printed
during `migrate`, so someone can check the records afterwards.
"""

from django.db import migrations, models
from django.db.models import Count
from django.db.models.functions import Lower


def _repeats(Asset, field):
    """{lowered value: [assets, oldest first]} for the values held by more than one asset."""
    lowered = (
        Asset.objects.exclude(**{field: ""})
        .annotate(key=Lower(field))
        .values("key")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("key", flat=True)
    )
    groups = {}
    for key in lowered:
        groups[key] = list(
            Asset.objects.annotate(key=Lower(field)).filter(key=key).order_by("id")
        )
    return groups


def _free_tag(tag, taken):
    for n in range(2, 10_000):
        suffix = f"-{n}"
        candidate = tag[: 40 - len(suffix)] + suffix
        if candidate.lower() not in taken:
            return candidate
    raise RuntimeError(f"No free asset tag for {tag}")  # 10,000 repeats of one tag: not real data


def _record(AuditEvent, changed):
    """Save each change with its note and audit row (before the next pass reads the assets)."""
    for asset, changes, note in changed:
        asset.notes = f"{asset.notes}\n\n{note}".strip()
        asset.save(update_fields=[*changes, "notes"])
        AuditEvent.objects.create(
            action="changed",
            actor_name="",  # shown as "system"
            object_type="assets.asset",
            object_id=str(asset.pk),
            object_repr=f"{asset.asset_tag} · {asset.name}"[:200],
            changes=changes,
            message=note[:500],
        )
        print(f"\n  {note}", end="")  # noqa: T201 - migrate shows what it changed


def resolve_repeats(apps, schema_editor):
    Asset = apps.get_model("assets", "Asset")
    AuditEvent = apps.get_model("assetsonar", "AuditEvent")
    changed = []

    tag_groups = _repeats(Asset, "asset_tag")
    if tag_groups:
        taken = {t.lower() for t in Asset.objects.values_list("asset_tag", flat=True)}
        for group in tag_groups.values():
            kept = group[0]
            for asset in group[1:]:
                old = asset.asset_tag
                asset.asset_tag = _free_tag(old, taken)
                taken.add(asset.asset_tag.lower())
                note = (
                    f"Asset tag changed from “{old}” to “{asset.asset_tag}” by an upgrade: asset "
                    f"tags are unique in any letter case, and {kept.asset_tag} (asset #{kept.pk}) "
                    "has the same tag. Relabel the device or correct the tag."
                )
                changed.append((asset, {"asset_tag": [old, asset.asset_tag]}, note))
    _record(AuditEvent, changed)

    changed = []
    for group in _repeats(Asset, "serial_number").values():
        kept = group[0]
        for asset in group[1:]:
            old = asset.serial_number
            asset.serial_number = ""
            note = (
                f"Serial number “{old}” removed by an upgrade: serial numbers are unique in any "
                f"letter case, and {kept.asset_tag} (asset #{kept.pk}) has the same serial. Check "
                "whether both records are the same device."
            )
            changed.append((asset, {"serial_number": [old, ""]}, note))

    _record(AuditEvent, changed)


class Migration(migrations.Migration):

    dependencies = [
        ("assets", "0001_initial"),
        ("assetsonar", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(resolve_repeats, migrations.RunPython.noop),
        migrations.RemoveConstraint(
            model_name="asset",
            name="asset_serial_unique",
        ),
        migrations.AlterField(
            model_name="asset",
            name="asset_tag",
            field=models.CharField(db_index=True, max_length=40),
        ),
        migrations.AddConstraint(
            model_name="asset",
            constraint=models.UniqueConstraint(
                Lower("asset_tag"),
                name="asset_tag_unique_ci",
                violation_error_message="Another asset already has this asset tag.",
            ),
        ),
        migrations.AddConstraint(
            model_name="asset",
            constraint=models.UniqueConstraint(
                Lower("serial_number"),
                condition=~models.Q(serial_number=""),
                name="asset_serial_unique_ci",
                violation_error_message="Another asset already has this serial number.",
            ),
        ),
    ]
