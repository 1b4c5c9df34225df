"""Denormalised counts kept in the row that owns them (Member.assets_count and
live_entitlements_count, License.seats_used).

Each service that changes what is counted adds its delta here, in its own transaction, so the
count commits (or rolls back) with the change. Rows are locked in primary-key order before a
multi-row update: two workers revoking entitlements of the same licenses then queue behind each
other instead of deadlocking. `manage.py recount` recomputes every count from the rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from django.db import models
from django.db.models import Case, F, IntegerField, Value, When


def tally_add(model: type[models.Model], field: str, deltas: Mapping[int, int]) -> None:
    """Add `deltas[pk]` to `field` of each row, in one UPDATE (and one lock query for several)."""
    deltas = {pk: delta for pk, delta in deltas.items() if pk is not None and delta}
    if not deltas:
        return
    rows = model.objects.filter(pk__in=deltas)
    if len(deltas) == 1:
        ((pk, delta),) = deltas.items()
        model.objects.filter(pk=pk).update(**{field: F(field) + delta})
        return
    list(rows.select_for_update().order_by("pk").values_list("pk", flat=True))
    change = Case(
        *(When(pk=pk, then=Value(delta)) for pk, delta in deltas.items()),
        default=Value(0),
        output_field=IntegerField(),
    )
    rows.update(**{field: F(field) + change})


def tally_move(**deltas: int) -> None:
    """Add to the Tally rows named by the keywords ("members__active" is the row
    "members.active"): one upsert, which creates a missing row, in key order (the order two
    transactions then lock the rows in)."""
    from django.db import connection

    from assetsonar.models import Tally

    changes = sorted((key.replace("__", "."), delta) for key, delta in deltas.items() if delta)
    if not changes:
        return
    table = connection.ops.quote_name(Tally._meta.db_table)
    rows = ", ".join(["(%s, %s)"] * len(changes))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (key, value) VALUES {rows} "  # noqa: S608 - quoted table name
            f"ON CONFLICT (key) DO UPDATE SET value = {table}.value + excluded.value",
            [part for change in changes for part in change],
        )


def tally_status_change(kind: str, before: str | None, after: str | None) -> None:
    """A row of `kind` ("members", "assets") moved from status `before` to `after` (None: it
    was created, or deleted)."""
    if before == after:
        return
    deltas = {}
    if before:
        deltas[f"{kind}__{before}"] = -1
    if after:
        deltas[f"{kind}__{after}"] = 1
    tally_move(**deltas)


def tally_values(*prefixes: str) -> dict[str, dict[str, int]]:
    """The tallies under each prefix ("members"), by the rest of their key ("active"): one
    query for all (the table has a row per kind and status)."""
    from assetsonar.models import Tally

    out: dict[str, dict[str, int]] = {prefix: {} for prefix in prefixes}
    for key, value in Tally.objects.values_list("key", "value"):
        prefix, _, rest = key.partition(".")
        if prefix in out:
            out[prefix][rest] = value
    return out


def counted(ids) -> Counter:
    """How often each non-null id occurs: the delta of rows that each count once."""
    return Counter(pk for pk in ids if pk is not None)


def _true_counts():
    """(model, field, correlated true count) for every denormalised count."""
    from django.db.models import Count, OuterRef, Subquery
    from django.db.models.functions import Coalesce

    from assets.models import Asset
    from licenses.models import Entitlement, License
    from members.models import Member

    def count_of(queryset, column):
        grouped = queryset.order_by().values(column).annotate(n=Count("pk")).values("n")
        return Coalesce(Subquery(grouped, output_field=IntegerField()), 0)

    live = Entitlement.objects.live()
    return [
        (
            Member,
            "assets_count",
            count_of(Asset.objects.filter(custodian=OuterRef("pk")), "custodian"),
        ),
        (
            Member,
            "live_entitlements_count",
            count_of(live.filter(member=OuterRef("pk")), "member"),
        ),
        (License, "seats_used", count_of(live.filter(license=OuterRef("pk")), "license")),
    ]


def tallies_recount(*, fix: bool = True) -> dict[str, int]:
    """Recompute every denormalised count from the rows; returns, per `model.field`, how many
    rows were wrong (and, with `fix`, are now right). One UPDATE per count, touching only the
    wrong rows, so a run over correct data writes nothing."""
    wrong = {}
    for model, field, truth in _true_counts():
        stale = model.objects.alias(truth=truth).exclude(**{field: F("truth")})
        label = f"{model._meta.label}.{field}"
        wrong[label] = stale.update(**{field: truth}) if fix else stale.count()
    wrong["assetsonar.Tally"] = _recount_tallies(fix=fix)
    return wrong


def _true_tallies() -> dict[str, int]:
    from django.db.models import Count

    from assets.models import Asset
    from members.models import Member

    truth = {}
    for kind, model in (("members", Member), ("assets", Asset)):
        statuses = model._meta.get_field("status").choices
        grouped = dict(
            model.objects.order_by()
            .values_list("status")
            .annotate(n=Count("pk"))
            .values_list("status", "n")
        )
        for status, _label in statuses:
            truth[f"{kind}.{status}"] = grouped.get(status, 0)
    return truth


def _recount_tallies(*, fix: bool) -> int:
    from assetsonar.models import Tally

    truth = _true_tallies()
    stored = dict(Tally.objects.values_list("key", "value"))
    wrong = {key: value for key, value in truth.items() if stored.get(key, 0) != value}
    if fix and wrong:
        Tally.objects.bulk_create(
            [Tally(key=key, value=value) for key, value in wrong.items()],
            update_conflicts=True,
            unique_fields=["key"],
            update_fields=["value"],
        )
    return len(wrong)
