"""Asset tags and serial numbers are unique in any letter case, in the database (migration 0002),
which also resolved the repeats that existed before it."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from assets.selectors import asset_find_by_tag
from conftest import make_asset

BEFORE = [("assets", "0001_initial")]
AFTER = [("assets", "0002_asset_tag_and_serial_unique_case_insensitive")]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"asset_tag": "AS-000030"}, {"asset_tag": "as-000030"}),
        ({"serial_number": "C02XG0FDH7JY"}, {"serial_number": "c02xg0fdh7jy"}),
    ],
)
def test_the_database_refuses_a_repeat_in_another_letter_case(first, second):
    make_asset(**first)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_asset(**second)


@pytest.mark.django_db
def test_blank_serial_numbers_may_repeat():
    make_asset(serial_number="")
    make_asset(serial_number="")


@pytest.mark.django_db
def test_an_asset_is_found_by_its_tag_in_any_letter_case():
    asset = make_asset(asset_tag="Lab-Mac-07")
    assert asset_find_by_tag("lab-mac-07") == asset
    assert asset_find_by_tag(" LAB-MAC-07 ") == asset


@pytest.mark.django_db(transaction=True)
def test_the_migration_resolves_repeats_keeping_the_oldest_asset(capsys):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    Asset = apps.get_model("assets", "Asset")
    base = {"name": "Mac", "category": "laptop", "platform": "macos"}
    kept = Asset.objects.create(asset_tag="AS-000030", serial_number="SN-A", **base)
    retagged = Asset.objects.create(
        asset_tag="as-000030", serial_number="sn-a", notes="Desk 4", **base
    )
    also = Asset.objects.create(asset_tag="As-000030", serial_number="", **base)
    taken = Asset.objects.create(asset_tag="as-000030-2", serial_number="SN-B", **base)
    other = Asset.objects.create(asset_tag="AS-000031", serial_number="SN-C", **base)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    printed = capsys.readouterr().out

    apps = executor.loader.project_state(AFTER).apps
    Asset = apps.get_model("assets", "Asset")
    AuditEvent = apps.get_model("assetsonar", "AuditEvent")
    tags = dict(Asset.objects.values_list("pk", "asset_tag"))
    serials = dict(Asset.objects.values_list("pk", "serial_number"))
    assert tags == {
        kept.pk: "AS-000030",
        retagged.pk: "as-000030-3",  # -2 was taken
        also.pk: "As-000030-4",
        taken.pk: "as-000030-2",
        other.pk: "AS-000031",
    }
    assert serials[kept.pk] == "SN-A"
    assert serials[retagged.pk] == ""  # the same serial twice: cleared on the newer record
    notes = Asset.objects.get(pk=retagged.pk).notes
    assert notes.startswith("Desk 4\n\nAsset tag changed from “as-000030” to “as-000030-3”")
    assert "Serial number “sn-a” removed by an upgrade" in notes
    assert f"AS-000030 (asset #{kept.pk}) has the same serial" in notes
    audits = AuditEvent.objects.filter(object_type="assets.asset", action="changed")
    assert sorted(audits.values_list("object_id", flat=True)) == sorted(
        [str(retagged.pk), str(retagged.pk), str(also.pk)]
    )
    assert "as-000030-3" in printed
    with pytest.raises(IntegrityError), transaction.atomic():
        Asset.objects.create(asset_tag="aS-000031", **base)

    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
