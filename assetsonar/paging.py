"""Pagers whose cost does not grow with the table: a count that stops at COUNT_LIMIT, numbered
pages up to OFFSET_LIMIT rows, and keyset ("next page") pages beyond.

An exact COUNT(*) reads every matching row (~25 ms per 100,000 on PostgreSQL) and an OFFSET reads
every row it skips, so a list of a million members would pay for both on each request. Here the
count reads at most COUNT_LIMIT + 1 index entries and shows "10,000+" past that; the numbered
pages stop after OFFSET_LIMIT rows; the last numbered page links to the rows after its last row
(`?after=` carries that row's sort key), and every page after that is a seek on the sort's index,
as fast at row 900,000 as at row 10,000. This needs an ordering that ends on a unique column and
an index that matches it (see members/selectors.SORTS).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from decimal import Decimal
from functools import cached_property

from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import F, Func, IntegerField, Q, QuerySet, Subquery
from django.db.models.expressions import OrderBy

# Rows counted exactly; past it lists say "10,000+". About 3 ms on PostgreSQL (an index-only scan
# of 10,001 entries); 50,000 would be ~15 ms of a page's 50 ms budget.
COUNT_LIMIT = 10_000
# Rows reachable by page number (OFFSET): 20 pages of 50. An OFFSET reads every row it skips
# (page 200, 9,950 rows: ~40 ms at 1M members); past this "Next" goes on with keyset pages.
OFFSET_LIMIT = 1_000
AFTER_PARAM = "after"


class CappedPaginator(Paginator):
    """A Paginator whose count stops at `limit` (`capped` tells whether there are more), and
    whose numbered pages stop at `offset_limit` rows when given (`beyond`: there are rows after
    the numbered pages, reached by keyset pages)."""

    def __init__(
        self,
        object_list,
        per_page,
        *,
        limit: int | None = None,
        offset_limit: int | None = None,
        counted: int | None = None,
        **kwargs,
    ):
        super().__init__(object_list, per_page, **kwargs)
        self.limit = COUNT_LIMIT if limit is None else limit
        self.offset_limit = offset_limit
        if counted is not None:  # already read (capped_count), so no count query of its own
            self.counted = counted

    @cached_property
    def num_pages(self) -> int:
        rows = self.count if self.offset_limit is None else min(self.count, self.offset_limit)
        if rows == 0 and not self.allow_empty_first_page:
            return 0
        return max(1, -(-rows // self.per_page))

    @property
    def beyond(self) -> bool:
        return self.offset_limit is not None and self.counted > self.offset_limit

    @cached_property
    def counted(self) -> int:
        queryset = getattr(self.object_list, "queryset", self.object_list)
        if isinstance(queryset, QuerySet):
            # Without ORDER BY and with one column the database may stop after `limit` + 1 rows
            # of whatever index or scan is cheapest.
            return queryset.order_by().values("pk")[: self.limit + 1].count()
        return len(queryset)

    @cached_property
    def count(self) -> int:
        return min(self.counted, self.limit)

    @property
    def capped(self) -> bool:
        return self.counted > self.limit


def capped_count(queryset: QuerySet, limit: int) -> Func:
    """An annotation: the number of `queryset`'s rows, counted up to `limit` + 1 as
    CappedPaginator counts them (pass it as `counted=`), read with the row that owns them in
    one query instead of a count query of its own. `queryset` is correlated to that row by
    OuterRef; the count is a scalar subquery, COUNT(*) over its keys with LIMIT limit + 1."""
    keys = queryset.order_by().values("pk")[: limit + 1]
    return Func(
        Subquery(keys),
        template="(SELECT COUNT(*) FROM %(expressions)s AS counted)",
        output_field=IntegerField(),
    )


class ByIds:
    """A queryset paged keys first: the page's primary keys, then those rows with their joins,
    in one query (the keys are its subquery). For a page of a partial index that holds the key
    (Entitlement's live rows by license): the keys are an index-only scan, where the whole query
    lets the planner walk the primary key backwards through every other license's rows (130 ms
    for the biggest license at 1M members: its live rows were not the newest)."""

    ordered = True  # the Paginator's check: the queryset is ordered

    def __init__(self, queryset: QuerySet) -> None:
        self.queryset = queryset

    def count(self) -> int:
        return self.queryset.count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index):
        if not isinstance(index, slice):
            return self[index : index + 1][0]
        # One query: the keys as a subquery (`id IN (SELECT id ... LIMIT n)`), which the
        # database runs first, as it would a query of its own; the rows come back in the keys'
        # order with the same ORDER BY.
        keys = self.queryset.values("pk")[index]
        return list(self.queryset.filter(pk__in=keys))


def _keys(ordering: list) -> list[tuple]:
    """(expression, descending) for each part of an order_by() list."""
    keys = []
    for part in ordering:
        if isinstance(part, str):
            keys.append((F(part.removeprefix("-")), part.startswith("-")))
        elif isinstance(part, OrderBy):
            keys.append((part.expression, part.descending))
        else:
            keys.append((part, False))
    return keys


def _encode(values: list) -> str:
    def default(value):
        # Full precision: DjangoJSONEncoder drops microseconds, and the next page would then
        # repeat or skip rows that share a millisecond.
        if isinstance(value, datetime.date | datetime.time):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value)
        raise TypeError(type(value))

    raw = json.dumps(values, default=default, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str, size: int) -> list | None:
    try:
        values = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(values, list) or len(values) != size:
        return None
    if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values):
        return None
    return values


class KeysetPage:
    """A page after the counted ones: the same attributes the pager template reads."""

    keyset = True
    number = None

    def __init__(self, object_list: list, paginator: CappedPaginator, next_after: str | None):
        self.object_list = object_list
        self.paginator = paginator
        self.next_after = next_after

    def __iter__(self):
        return iter(self.object_list)

    def __len__(self) -> int:
        return len(self.object_list)

    def has_next(self) -> bool:
        return self.next_after is not None

    def has_previous(self) -> bool:
        return True  # the first page: keyset pages only go forward


def paginate(
    queryset: QuerySet,
    *,
    ordering: list,
    per_page: int,
    number: str | int | None,
    after: str | None = None,
    limit: int | None = None,
    offset_limit: int | None = None,
):
    """The page of `queryset` ordered by `ordering`: numbered (Django's Page, with `keyset`
    False and `next_after` set on the last counted page when there are more rows) or, with
    `after`, the keyset page of the `per_page` rows that follow that sort key."""
    keys = _keys(ordering)
    names = [f"keyset_{i}" for i in range(len(keys))]
    annotated = queryset.annotate(**dict(zip(names, (e for e, _ in keys), strict=True))).order_by(
        *(OrderBy(F(n), descending=d) for n, (_, d) in zip(names, keys, strict=True))
    )
    paginator = CappedPaginator(
        queryset,
        per_page,
        limit=limit,
        offset_limit=OFFSET_LIMIT if offset_limit is None else offset_limit,
    )
    values = _decode(after, len(keys)) if after else None
    if values is not None:
        seek = Q()
        for i, (name, (_, descending)) in enumerate(zip(names, keys, strict=True)):
            step = Q(**{f"{names[j]}": values[j] for j in range(i)})
            step &= Q(**{f"{name}__{'lt' if descending else 'gt'}": values[i]})
            seek = step if i == 0 else seek | step
        # The leading column's bound on its own lets the index start at the key.
        first = Q(**{f"{names[0]}__{'lte' if keys[0][1] else 'gte'}": values[0]})
        seeking = annotated.filter(first & seek)
        if paginator.limit <= per_page:
            # A search (counted only as far as its first page): keys first, as its first page
            # below. Walking for the rows themselves fetched from the table every row the
            # filter dropped: 1,900 for the 50 of a second page of `ana` at 1M members.
            rows, found = _rows_by_keys(seeking, annotated, per_page)
            more = found > per_page
        else:
            rows = list(seeking[: per_page + 1])
            more = len(rows) > per_page
            rows = rows[:per_page]
        return KeysetPage(rows, paginator, _after(rows[-1], names) if more else None)
    if after:  # a token that does not decode: the first page, as for an unknown page number
        number = 1
    django_paginator = _Shared(annotated, per_page, paginator)
    if paginator.limit <= per_page:
        # Counted only as far as the first page: that page's own keys, one longer, tell whether
        # there are more, and there is no count query (a search's count re-checks every row it
        # counts). There is one numbered page of `limit` rows; "Next" goes on by keyset from
        # its last row, whatever offset_limit was asked for.
        paginator.offset_limit = django_paginator.offset_limit = paginator.limit
        rows, found = _rows_by_keys(annotated, annotated, paginator.limit)
        paginator.__dict__["counted"] = found  # the rows may have changed since
        page = django_paginator.page(1)
        page.object_list = rows
    else:
        page = django_paginator.get_page(number)
        page.object_list = list(page.object_list)
    page.keyset = False
    page.next_after = None
    if paginator.beyond and page.number == django_paginator.num_pages and page.object_list:
        page.next_after = _after(page.object_list[-1], names)
    return page


def _rows_by_keys(matching: QuerySet, ordered: QuerySet, size: int) -> tuple[list, int]:
    """The first `size` rows of `matching`, keys first: the keys of `size` + 1 of them (an
    index-only walk where an index carries the filtered columns, members/models.
    member_name_search), then those rows from `ordered` by key, in its order. Returns the rows
    and how many keys were found (more than `size`: there are more rows)."""
    keys = list(matching.values_list("pk", flat=True)[: size + 1])
    rows = list(ordered.filter(pk__in=keys[:size])) if keys else []
    return rows, len(keys)


def _after(row, names: list[str]) -> str | None:
    """The token of the rows after `row`; None when a sort key is NULL (a tuple comparison with
    NULL matches nothing, so such a sort ends at the counted pages)."""
    values = [getattr(row, name) for name in names]
    if any(value is None for value in values):
        return None
    return _encode(values)


class _Shared(CappedPaginator):
    """Pages the annotated queryset but counts through `counter` (the plain one), so the count
    query carries neither the sort nor the key columns."""

    def __init__(self, object_list, per_page, counter: CappedPaginator):
        super().__init__(
            object_list, per_page, limit=counter.limit, offset_limit=counter.offset_limit
        )
        self.counter = counter

    @cached_property
    def counted(self) -> int:
        return self.counter.counted


def counts_at_once(counts: dict[str, tuple[QuerySet, int | None]]) -> dict[str, tuple[int, bool]]:
    """Several counts in one round trip (the dashboard's cards): for each name a queryset and
    the count's limit (None: exact), answered as (count, capped) with the count stopping at the
    limit as CappedPaginator's does. One SELECT of scalar subqueries, each the COUNT(*) over the
    queryset's keys with LIMIT limit + 1: the same plans as separate counts, without their round
    trips. All the querysets use one database."""
    if not counts:
        return {}
    parts, params = [], []
    aliases = {queryset.db for queryset, _ in counts.values()}
    if len(aliases) != 1:
        raise ValueError(f"counts_at_once needs one database, not {sorted(aliases)}")
    (alias,) = aliases
    for queryset, limit in counts.values():
        keys = queryset.order_by().values("pk")
        if limit is not None:
            keys = keys[: limit + 1]
        try:
            sql, part_params = keys.query.get_compiler(using=alias).as_sql()
        except EmptyResultSet:  # a filter that matches nothing by construction (pk__in=[])
            parts.append("0")
            continue
        parts.append(f"(SELECT COUNT(*) FROM ({sql}) AS counted)")  # noqa: S608 - compiled SQL
        params.extend(part_params)
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        row = cursor.fetchone()
    out = {}
    for (name, (_, limit)), counted in zip(counts.items(), row, strict=True):
        capped = limit is not None and counted > limit
        out[name] = (min(counted, limit) if capped else counted, capped)
    return out
