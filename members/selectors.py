"""Reads for the members pages. Each function returns a fixed number of queries whatever the size
of the data; the query budgets are asserted in members/tests/test_views.py.

Measured on PostgreSQL 15 with 100,000 members, 60,000 assets and 150,000 entitlements
(server time of the list page's queries, unfiltered: ~20 ms in total).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import (
    Count,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.expressions import OrderBy
from django.db.models.functions import Coalesce, Concat, Lower

from assets.models import Asset, CustodyRecord
from assetsonar.audit import audit_for
from assetsonar.models import PortalSettings, default_company_time_zone
from licenses.models import Entitlement
from members.models import Member, zone

# ?sort= values and the orderings they stand for. Every ordering ends on a unique column so pages
# never overlap, and each one starts with a column an existing index covers:
# name -> member_name_search (hence Lower(), which also sorts "de Vries" among the D's),
# department/location -> their single-column indexes, status -> (status, full_name).
# created -> member_created. Keyset pages beyond the counted ones (assetsonar/paging.py) seek
# the same indexes, so the sort's index has every ordering column (members/0003).
SORTS: dict[str, list] = {
    "name": [Lower("full_name"), "id"],
    "department": ["department", Lower("full_name"), "id"],
    "location": ["location", Lower("full_name"), "id"],
    "status": ["status", "full_name", "id"],
    "created": ["created_at", "id"],
}
DEFAULT_SORT = "name"

# The list shows these columns only; the rest of the row is never read for the list.
LIST_COLUMNS = [
    "id",
    "full_name",
    "email",
    "department",
    "location",
    "title",
    "status",
    "created_at",
    "assets_count",
    "live_entitlements_count",
]


def _descending(expression):
    if isinstance(expression, str):
        return f"-{expression}"
    return OrderBy(expression, descending=True)


def member_sort_keys() -> list[str]:
    """Every accepted ?sort= value: each column, ascending or (with a leading "-") descending."""
    return [key for name in SORTS for key in (name, f"-{name}")]


def member_ordering(sort: str | None) -> list:
    """The ORDER BY for a ?sort= value; anything not in the whitelist falls back to the default."""
    sort = sort or DEFAULT_SORT
    name = sort.removeprefix("-")
    if name not in SORTS:
        return SORTS[DEFAULT_SORT]
    if sort.startswith("-"):
        return [_descending(part) for part in SORTS[name]]
    return SORTS[name]


def member_list_queryset() -> QuerySet[Member]:
    """The members list before filters, sorting and paging."""
    return Member.objects.only(*LIST_COLUMNS)


# Shortest term searched as a substring: pg_trgm needs one trigram (3 characters) to use its index,
# and a 1-2 character substring matches most of the table anyway.
SUBSTRING_SEARCH_MIN_LENGTH = 3


def member_search(queryset: QuerySet[Member], term: str) -> QuerySet[Member]:
    """Members whose name or email contains `term` (any case), or whose employee ID is `term`.

    Terms of 3+ characters match anywhere ("lovelace" finds "Ada Lovelace"): on PostgreSQL the
    `icontains` lookups, UPPER(col) LIKE UPPER('%term%'), are answered by the trigram GIN indexes
    of migration members/0002 (~1,000 hits among 100k members: page ~4 ms, count ~2 ms; a scan
    took ~70 ms a query). On SQLite the LIKE scans the table.
    Shorter terms have no trigram to look up, so they stay prefix matches ("al" finds "Alan", not
    "Natalie"), answered by the lower(full_name) and lower(email) B-tree indexes as a range,
    lower(term) <= lower(col) < lower(term) + U+FFFF: `LIKE 'x%'` alone uses a B-tree only under the
    "C" collation, the range works under any (U+FFFF sorts after every character a name or an
    address holds), and the LIKE then keeps exactly the prefix matches. Employee IDs match exactly,
    as typed or upper-cased ("e0042" finds "E0042"), through their unique index.
    """
    term = term.strip()
    if not term:
        return queryset
    by_id = Q(employee_id__in={term, term.upper()})
    if len(term) >= SUBSTRING_SEARCH_MIN_LENGTH:
        return queryset.filter(Q(full_name__icontains=term) | Q(email__icontains=term) | by_id)
    low = Lower(Value(term))
    high = Concat(low, Value("\uffff"))
    by_name = Q(name_l__gte=low, name_l__lt=high, name_l__startswith=low)
    by_email = Q(email_l__gte=low, email_l__lt=high, email_l__startswith=low)
    return queryset.alias(name_l=Lower("full_name"), email_l=Lower("email")).filter(
        by_name | by_email | by_id
    )


def member_holding_filter() -> Q:
    """Members who still hold an asset or a live license entitlement.

    Read from the counts kept in the member row (assets_count, live_entitlements_count), so the
    filter is a condition on the row, answered by the partial indexes member_holding_name (the
    list, by name) and member_deactivated_holding (the dashboard's deactivated leavers), not a
    hashed subplan over every asset and entitlement (~460 ms at 100k members before).
    """
    return Q(assets_count__gt=0) | Q(live_entitlements_count__gt=0)


# The most distinct values a filter offers: a free-text column with more is not a facet.
FACET_LIMIT = 500


def _distinct_values(column: str) -> list[str]:
    """Distinct non-empty values of an indexed member column, in the column's sort order.

    A loose index scan (recursive CTE): each step asks the index for the smallest value above the
    previous one, so the cost follows the number of distinct values (a dozen departments: a dozen
    index probes, well under 1 ms at 1M members), where SELECT DISTINCT reads every row (~40 ms
    per column at 100k members). Always exact, whatever path wrote the rows (services, imports,
    bulk seeds), so there is nothing to invalidate. Plain SQL: the ORM has no recursive CTE; the
    same statement runs on SQLite.
    """
    table = connection.ops.quote_name(Member._meta.db_table)
    col = connection.ops.quote_name(Member._meta.get_field(column).column)
    sql = (
        f"WITH RECURSIVE facet(v) AS ("  # noqa: S608 - only quoted model names are formatted in
        f"SELECT MIN({col}) FROM {table} WHERE {col} > %s "
        f"UNION ALL SELECT (SELECT MIN({col}) FROM {table} WHERE {col} > facet.v) "
        f"FROM facet WHERE facet.v IS NOT NULL) "
        f"SELECT v FROM facet WHERE v IS NOT NULL LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, ["", FACET_LIMIT])
        return [row[0] for row in cursor.fetchall()]


def member_departments() -> list[str]:
    """Distinct non-empty departments, for filter options and the form's suggestions."""
    return _distinct_values("department")


def member_locations() -> list[str]:
    """Distinct non-empty locations, for filter options and the form's suggestions."""
    return _distinct_values("location")


def _count_of(queryset: QuerySet, column: str) -> Coalesce:
    grouped = queryset.order_by().values(column).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(grouped, output_field=IntegerField()), 0)


def member_detail(pk: int) -> Member:
    """One member with their manager, who deactivated them, and how many report to them."""
    reports = _count_of(Member.objects.filter(manager=OuterRef("pk")), "manager")
    return (
        Member.objects.select_related("manager", "deactivated_by")
        .annotate(reports_count=reports)
        .get(pk=pk)
    )


def member_assets_in_custody(member: Member) -> QuerySet[Asset]:
    """Assets the member holds now, with `since` = when the open custody record began."""
    since = (
        CustodyRecord.objects.filter(asset=OuterRef("pk"), checked_in_at__isnull=True)
        .order_by()
        .values("checked_out_at")[:1]
    )
    return Asset.objects.filter(custodian=member).annotate(since=Subquery(since))


def member_live_entitlements(member: Member) -> QuerySet[Entitlement]:
    """License seats the member holds now."""
    return Entitlement.objects.live().filter(member=member).select_related("license", "asset")


HISTORY_LIMIT = 50


def member_custody_history(member: Member) -> list[CustodyRecord]:
    """The member's most recent custody records, open and closed, newest first."""
    return list(
        CustodyRecord.objects.filter(member=member).select_related(
            "asset", "checked_out_by", "checked_in_by"
        )[:HISTORY_LIMIT]
    )


def member_revoked_entitlements(member: Member) -> list[Entitlement]:
    """The member's most recently revoked entitlements, newest revocation first."""
    return list(
        Entitlement.objects.filter(member=member, revoked_at__isnull=False)
        .select_related("license", "asset", "revoked_by")
        .order_by("-revoked_at", "-id")[:HISTORY_LIMIT]
    )


def member_audit_trail(member: Member) -> list:
    """Audit rows about the member, newest first."""
    return list(audit_for(member, limit=HISTORY_LIMIT))


# --- Upcoming offboardings -----------------------------------------------------------------------

# The page's order; the partial index member_last_day has these columns, so a date range is a
# range scan and a keyset page a seek.
UPCOMING_ORDERING = ["last_working_day", Lower("full_name"), "id"]
UPCOMING_COLUMNS = [
    "id",
    "full_name",
    "email",
    "department",
    "location",
    "title",
    "status",
    "last_working_day",
    "time_zone",
    "deactivate_on_last_day",
]
UPCOMING_DEFAULT_DAYS = 30
DASHBOARD_UPCOMING_DAYS = 14


def company_time_zone() -> str:
    """The portal's company time zone: one query, and no write on a page view when the
    settings row was never saved (then the default, settings.TIME_ZONE)."""
    stored = PortalSettings.objects.filter(pk=1).values_list("company_time_zone", flat=True)
    return stored.first() or default_company_time_zone()


def company_today(time_zone: str, now: datetime | None = None) -> date:
    """Today's date where the company is."""
    from django.utils import timezone

    return (now or timezone.now()).astimezone(zone(time_zone)).date()


def upcoming_offboardings_queryset(
    *, start: date, end: date, department: str = "", location: str = ""
) -> QuerySet[Member]:
    """Active members whose last working day is between start and end (inclusive)."""
    queryset = Member.objects.active().filter(
        last_working_day__isnull=False, last_working_day__gte=start, last_working_day__lte=end
    )
    if department:
        queryset = queryset.filter(department=department)
    if location:
        queryset = queryset.filter(location=location)
    return queryset.only(*UPCOMING_COLUMNS)


@dataclass
class UpcomingRow:
    """One member on the Upcoming offboardings page (and in its CSV)."""

    member: Member
    time_zone: str  # the member's, or the company's
    own_zone: bool  # whether the zone is the member's own
    ends_at: datetime  # the end of the last working day, in that zone
    company_ends_at: datetime  # the same instant in the company's zone
    days_left: int
    automatic: bool  # deactivated automatically when the day ends
    # What will run and when, and what is done, in time order (the OFFBOARDING_PLANS lookup's
    # steps: automations.selectors_offboarding.Step).
    steps: list[Any] = field(default_factory=list)

    @property
    def automations(self) -> list[Any]:
        """The deactivation automations that would run for them (the steps' own)."""
        return [s.automation for s in self.steps if s.kind == "deactivation"]

    @property
    def last_minute(self) -> datetime:
        """23:59 of the day, as people say when a day ends."""
        return self.ends_at - timedelta(minutes=1)

    @property
    def company_last_minute(self) -> datetime:
        return self.company_ends_at - timedelta(minutes=1)

    # Formatted here: the template's date filter would show them in the request's zone.
    @property
    def ends_label(self) -> str:
        return f"{self.last_minute:%H:%M} {self.time_zone}"

    @property
    def company_ends_label(self) -> str:
        moment = self.company_last_minute
        return f"{moment.day} {moment:%b %H:%M}"


# What will run for leavers and when is known above this app: automations registers its lookup
# here at startup (automations/apps.py: automations.selectors_offboarding.offboarding_plans,
# members → company_zone → {member id: steps}), so members/ imports nothing from automations/
# (assetsonar/tests/test_layering.py).
OFFBOARDING_PLANS: list[Callable[..., dict[int, list[Any]]]] = []


def offboarding_steps(members: list[Member], *, company_zone: str) -> dict[int, list[Any]]:
    """Member id → their steps (what will run and when, what is done), from the registered
    lookups (at most 9 queries each for a page of members)."""
    steps: dict[int, list[Any]] = {m.pk: [] for m in members}
    for lookup in OFFBOARDING_PLANS:
        for pk, found in lookup(members, company_zone=company_zone).items():
            steps.setdefault(pk, []).extend(found)
    return steps


def upcoming_rows(members: list[Member], *, company_zone: str, today: date) -> list[UpcomingRow]:
    """The rows of a page of members: when each one's day ends, and their steps (the
    last-working-day automations with their due times, the deactivation and the automations it
    would run, their delayed actions), matched as the engine matches them."""
    steps = offboarding_steps(members, company_zone=company_zone)
    rows = []
    for member in members:
        time_zone = member.effective_time_zone(company_zone)
        ends_at = member.last_day_ends_at(company_zone)
        rows.append(
            UpcomingRow(
                member=member,
                time_zone=time_zone,
                own_zone=bool(member.time_zone),
                ends_at=ends_at,
                company_ends_at=ends_at.astimezone(zone(company_zone)),
                days_left=(member.last_working_day - today).days,
                automatic=member.deactivate_on_last_day,
                steps=steps.get(member.pk, []),
            )
        )
    return rows


@dataclass
class Offboarding:
    """The member page's view of the last working day."""

    time_zone: str
    own_zone: bool
    ends_label: str  # "23:59 Europe/Berlin", or "" without a day
    days_left: int | None  # negative once past; None without a day


def member_offboarding(member: Member, *, company_zone: str, today: date) -> Offboarding:
    time_zone = member.effective_time_zone(company_zone)
    if member.last_working_day is None:
        return Offboarding(time_zone, bool(member.time_zone), "", None)
    last_minute = member.last_day_ends_at(company_zone) - timedelta(minutes=1)
    return Offboarding(
        time_zone,
        bool(member.time_zone),
        f"{last_minute:%H:%M} {time_zone}",
        (member.last_working_day - today).days,
    )
