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
    return wrong
