"""SCIM filters (RFC 7644 §3.4.2.2) as Django Q objects, evaluated by the database.

scim2-models parses the filter and checks operators and value types against the User schema
(`ScimFilter[User]`); this module walks its syntax tree (a FilterVisitor, the extension point
scim2-models offers for transpilers) and turns each comparison into a condition on a Member
column. Its in-memory `ScimFilter.match` is not used: it would mean loading every member.
String comparisons are case-insensitive, as the schema says (caseExact false); `eq` compares
LOWER(column) so the members' Lower() indexes answer it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import reduce
from operator import and_, or_
from typing import Any

from django.db.models import Q, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from scim2_models import InvalidFilterException, ScimFilter
from scim2_models.path import FilterVisitor
from scim2_models.path.expressions import (
    AttrPath,
    CompareOperator,
    Comparison,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)

from provisioning.errors import invalid_filter
from provisioning.schema import CORE, ENTERPRISE, SCIM_USER

# (attribute, sub-attribute) -> (kind, column, lowered alias)
_STRING = "string"
_CORE: dict[tuple[str, str | None], tuple[str, str, str]] = {
    ("username", None): ("user_name", "scim_user_name", "scim_user_name_l"),
    ("externalid", None): ("exact", "external_id", ""),
    ("id", None): ("id", "pk", ""),
    ("emails", None): (_STRING, "email", "email_l"),
    ("emails", "value"): (_STRING, "email", "email_l"),
    ("emails", "type"): ("work", "", ""),
    ("addresses", "type"): ("work_optional", "location", ""),
    ("addresses", "locality"): (_STRING, "location", "location_l"),
    ("name", "familyname"): (_STRING, "family_name", "family_name_l"),
    ("name", "givenname"): (_STRING, "given_name", "given_name_l"),
    ("name", "formatted"): (_STRING, "full_name", "full_name_l"),
    ("title", None): (_STRING, "title", "title_l"),
    ("active", None): ("active", "status", ""),
    ("meta", "lastmodified"): ("datetime", "updated_at", ""),
    ("meta", "created"): ("datetime", "created_at", ""),
}
_ENTERPRISE: dict[tuple[str, str | None], tuple[str, str, str]] = {
    ("employeenumber", None): ("exact", "employee_id", ""),
    ("department", None): (_STRING, "department", "department_l"),
    ("manager", None): ("id", "manager_id", ""),
    ("manager", "value"): ("id", "manager_id", ""),
}
LOWERED = {
    "scim_user_name_l": "scim_user_name",
    "email_l": "email",
    "location_l": "location",
    "family_name_l": "family_name",
    "given_name_l": "given_name",
    "full_name_l": "full_name",
    "title_l": "title",
    "department_l": "department",
}
NOTHING = Q(pk__in=[])
# Comparisons one filter may hold. Identity providers send one or two; SQLite refuses an
# expression tree deeper than 1000, which a long chain of `or` reaches.
MAX_COMPARISONS = 200


def with_filter_aliases(queryset: QuerySet) -> QuerySet:
    """The lowered columns the conditions refer to (aliases: selected only where used)."""
    return queryset.alias(**{alias: Lower(column) for alias, column in LOWERED.items()})


def _label(path: AttrPath, parent: str | None) -> str:
    text = f"{path.attr}.{path.sub_attr}" if path.sub_attr else path.attr
    text = f"{parent}.{text}" if parent else text
    return f"{path.uri}:{text}" if path.uri else text


def _resolve(path: AttrPath, parent: str | None) -> tuple[str, str, str]:
    attr, sub = path.attr.lower(), path.sub_attr.lower() if path.sub_attr else None
    if parent:
        attr, sub = parent.lower(), attr
    uri = (path.uri or "").lower()
    tables = [_CORE, _ENTERPRISE] if not uri else []
    if uri == CORE.lower():
        tables = [_CORE]
    elif uri == ENTERPRISE.lower():
        tables = [_ENTERPRISE]
    for table in tables:
        if (attr, sub) in table:
            return table[(attr, sub)]
    supported = "userName, externalId, id, emails.value, name.familyName, name.givenName, "
    supported += "name.formatted, title, active, meta.lastModified, meta.created, "
    supported += "addresses.locality, employeeNumber, department, manager.value"
    raise invalid_filter(
        f"Filtering on “{_label(path, parent)}” is not supported. Supported: {supported}."
    )


def _string(column: str, alias: str, op: str, value: Any) -> Q:
    if value is None:
        present = ~Q(**{column: ""})
        return ~present if op == CompareOperator.eq else present
    value = str(value)
    lookups = {
        CompareOperator.eq: (alias, value.lower()),
        CompareOperator.ne: (alias, value.lower()),
        CompareOperator.co: (f"{column}__icontains", value),
        CompareOperator.sw: (f"{column}__istartswith", value),
        CompareOperator.ew: (f"{column}__iendswith", value),
        CompareOperator.gt: (f"{alias}__gt", value.lower()),
        CompareOperator.ge: (f"{alias}__gte", value.lower()),
        CompareOperator.lt: (f"{alias}__lt", value.lower()),
        CompareOperator.le: (f"{alias}__lte", value.lower()),
    }
    lookup, operand = lookups[op]
    condition = Q(**{lookup: operand})
    return ~condition if op == CompareOperator.ne else condition


_ORDER = {
    CompareOperator.eq: "exact",
    CompareOperator.gt: "gt",
    CompareOperator.ge: "gte",
    CompareOperator.lt: "lt",
    CompareOperator.le: "lte",
}


class _ToQ(FilterVisitor[Q]):
    def __init__(self, parent: str | None = None, counter: list[int] | None = None):
        self.parent = parent
        self.counter = counter if counter is not None else [0]

    def _count(self) -> None:
        self.counter[0] += 1
        if self.counter[0] > MAX_COMPARISONS:
            raise invalid_filter(
                f"The filter has more than {MAX_COMPARISONS} comparisons; split it into "
                "several requests."
            )

    def visit_logical_expr(self, node: LogicalExpr) -> Q:
        parts = [self.visit(term) for term in node.terms]
        return reduce(and_ if node.op == LogicalOperator.and_ else or_, parts)

    def visit_not(self, node: Not) -> Q:
        return ~self.visit(node.expr)

    def visit_value_path(self, node: ValuePath) -> Q:
        # A member has one email address and one address, so "some value matches all of the
        # inner conditions" is "the member matches all of them".
        return _ToQ(parent=node.attr_path.attr, counter=self.counter).visit(node.val_filter)

    def visit_present(self, node: Present) -> Q:
        self._count()
        kind, column, _alias = _resolve(node.attr_path, self.parent)
        if kind in (_STRING, "exact", "work_optional"):
            return ~Q(**{column: ""})
        if kind == "user_name":
            return Q()
        if kind == "id" and column == "manager_id":
            return Q(manager_id__isnull=False)
        return Q()

    def visit_comparison(self, node: Comparison) -> Q:
        self._count()
        kind, column, alias = _resolve(node.attr_path, self.parent)
        op, value = node.op, node.value
        label = _label(node.attr_path, self.parent)
        if kind == _STRING:
            return _string(column, alias, op, value)
        if kind == "user_name":
            own = _string("scim_user_name", "scim_user_name_l", op, value)
            by_email = _string("email", "email_l", op, value)
            return (~Q(scim_user_name="") & own) | (Q(scim_user_name="") & by_email)
        if kind in ("work", "work_optional"):
            if op not in (CompareOperator.eq, CompareOperator.ne):
                raise invalid_filter(f"“{label}” can only be compared with eq or ne.")
            matches = str(value).lower() == "work"
            base = Q() if kind == "work" else ~Q(**{column: ""})
            if op == CompareOperator.ne:
                matches = not matches
            return base if matches else NOTHING
        if kind == "exact":
            if op not in (CompareOperator.eq, CompareOperator.ne, CompareOperator.sw):
                raise invalid_filter(f"“{label}” can only be compared with eq, ne or sw.")
            lookup = column if op != CompareOperator.sw else f"{column}__startswith"
            condition = Q(**{lookup: "" if value is None else str(value)})
            return ~condition if op == CompareOperator.ne else condition
        if kind == "id":
            if op not in (CompareOperator.eq, CompareOperator.ne):
                raise invalid_filter(f"“{label}” can only be compared with eq or ne.")
            text = str(value)
            condition = Q(**{column: int(text)}) if text.isdigit() and len(text) < 19 else NOTHING
            return ~condition if op == CompareOperator.ne else condition
        if kind == "active":
            if op not in (CompareOperator.eq, CompareOperator.ne):
                raise invalid_filter(f"“{label}” can only be compared with eq or ne.")
            # Entra's string booleans ("True") are read like JSON's; anything else is refused
            # rather than read as false.
            text = str(value).lower()
            if not isinstance(value, bool) and text not in ("true", "false"):
                raise invalid_filter(f"“{label}” is compared with true or false, not “{value}”.")
            active = value if isinstance(value, bool) else text == "true"
            condition = Q(status="active" if active else "deactivated")
            return ~condition if op == CompareOperator.ne else condition
        # datetime
        moment = value if isinstance(value, datetime) else parse_datetime(str(value))
        if moment is None:
            raise invalid_filter(f"“{label}”: “{value}” is not a date and time (RFC 3339).")
        if timezone.is_naive(moment):
            # meta.lastModified is served in UTC ("…Z"); a value without a zone is read as such.
            moment = moment.replace(tzinfo=UTC)
        if op == CompareOperator.ne:
            return ~Q(**{column: moment})
        if op not in _ORDER:
            raise invalid_filter(f"“{label}” can be compared with eq, ne, gt, ge, lt or le.")
        return Q(**{f"{column}__{_ORDER[op]}": moment})


def filter_to_q(text: str) -> Q:
    """The condition a SCIM filter sets on members; 400 invalidFilter when it cannot be read."""
    try:
        parsed = ScimFilter[SCIM_USER](text)
    except InvalidFilterException as exc:
        raise invalid_filter(f"The filter “{text}” is invalid: {exc}.") from exc
    return _ToQ().visit(parsed.ast)
