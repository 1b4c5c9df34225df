"""Condition fields and operators over a member, their validation, and their evaluation.

The builder offers `FIELDS` and each field's operators; `clean_value` validates a row's value and
returns what is stored in `Condition.value`; the engine calls `member_snapshot` when the event is
recorded and `matches` when it runs, so conditions see the member as it was at the event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import F, Q
from django.db.models.functions import Trim
from django.db.models.lookups import Exact, IContains, IExact, IStartsWith

TEXT, CHOICE, NUMBER, PERSON = "text", "choice", "number", "person"


@dataclass(frozen=True)
class Operator:
    key: str
    label: str
    needs_value: bool = True
    many: bool = False  # the value is a list


OPERATORS: dict[str, Operator] = {
    op.key: op
    for op in [
        Operator("is", "is"),
        Operator("is_not", "is not"),
        Operator("is_any_of", "is any of", many=True),
        Operator("contains", "contains"),
        Operator("starts_with", "starts with"),
        Operator("is_empty", "is empty", needs_value=False),
        Operator("is_not_empty", "is not empty", needs_value=False),
        Operator("greater_than", "greater than"),
        Operator("less_than", "less than"),
    ]
}

OPERATORS_BY_TYPE: dict[str, list[str]] = {
    TEXT: ["is", "is_not", "is_any_of", "contains", "starts_with", "is_empty", "is_not_empty"],
    CHOICE: ["is", "is_not", "is_any_of"],
    NUMBER: ["is", "is_not", "greater_than", "less_than"],
    PERSON: ["is", "is_not", "is_any_of", "is_empty", "is_not_empty"],
}


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    type: str
    help: str = ""
    suggest_values: bool = False  # offer existing values from the data (departments, ...)
    # Where the database holds the value on Member (`condition_q`): a field path, the counter
    # column of a number, "" when the condition can only be evaluated on a snapshot.
    db: str = ""

    @property
    def operators(self) -> list[Operator]:
        return [OPERATORS[key] for key in OPERATORS_BY_TYPE[self.type]]


FIELDS: dict[str, Field] = {
    f.key: f
    for f in [
        Field("department", "Department", TEXT, suggest_values=True, db="department"),
        Field("location", "Location", TEXT, suggest_values=True, db="location"),
        Field("title", "Title", TEXT, db="title"),
        Field("employment_type", "Employment type", CHOICE, db="employment_type"),
        Field(
            "email_domain",
            "Email domain",
            TEXT,
            help="The part after @, e.g. example.com",
            db="email",
        ),
        Field("manager", "Manager", PERSON, help="The manager's email address", db="manager"),
        Field("employee_id", "Employee ID", TEXT, db="employee_id"),
        # The counts kept on the member row (members/tallies), equal to the snapshot's counts.
        Field("assets_in_custody", "Number of assets in custody", NUMBER, db="assets_count"),
        Field(
            "live_entitlements",
            "Number of live license entitlements",
            NUMBER,
            db="live_entitlements_count",
        ),
    ]
}


def choice_values(field: Field) -> list[tuple[str, str]]:
    if field.key == "employment_type":
        from members.models import Member

        return list(Member.EmploymentType.choices)
    return []


def clean_value(field_key: str, operator_key: str, raw: Any) -> Any:
    """Validate one row; return the value to store. Raises ValidationError with a message meant
    for the row ("Enter a whole number for Number of assets in custody.")."""
    field = FIELDS.get(field_key)
    if field is None:
        raise ValidationError("Choose a field.", code="field")
    if operator_key not in OPERATORS_BY_TYPE[field.type]:
        raise ValidationError(
            f"“{OPERATORS.get(operator_key, Operator(operator_key, operator_key)).label}” "
            f"does not apply to {field.label}.",
            code="operator",
        )
    operator = OPERATORS[operator_key]
    if not operator.needs_value:
        return None
    values = _as_list(raw) if operator.many else [raw]
    values = [str(v).strip() for v in values if v is not None and str(v).strip()]
    if not values:
        raise ValidationError(
            f"Enter {'one or more values' if operator.many else 'a value'} for {field.label}.",
            code="required",
        )
    cleaned = [_clean_one(field, v) for v in values]
    if operator.many:
        return list(dict.fromkeys(cleaned))
    return cleaned[0]


def _as_list(raw: Any) -> list:
    if isinstance(raw, list | tuple):
        return list(raw)
    return str(raw or "").split(",")


def _clean_one(field: Field, value: str) -> Any:
    if field.type == NUMBER:
        try:
            number = int(value)
        except ValueError:
            raise ValidationError(
                f"Enter a whole number for {field.label}.", code="invalid"
            ) from None
        if number < 0:
            raise ValidationError(f"{field.label} cannot be negative.", code="invalid")
        return number
    if field.type == CHOICE:
        allowed = dict(choice_values(field))
        if value not in allowed:
            raise ValidationError(
                f"“{value}” is not an {field.label.lower()}; choose one of: "
                + ", ".join(allowed.values()),
                code="invalid",
            )
        return value
    if field.type == PERSON:
        from django.core.validators import validate_email

        try:
            validate_email(value)
        except ValidationError:
            raise ValidationError(
                f"Enter the manager's email address (“{value}” is not one).", code="invalid"
            ) from None
        return value.lower()
    if field.key == "email_domain":
        value = value.lstrip("@").lower()
        if "." not in value or " " in value:
            raise ValidationError(
                f"“{value}” is not a domain; enter e.g. example.com.", code="invalid"
            )
    if len(value) > 200:
        raise ValidationError("Keep values under 200 characters.", code="invalid")
    return value


def member_snapshot(
    member, *, custody_asset_ids: list[int] | None = None, live_entitlements: int | None = None
) -> dict[str, Any]:
    """The member's condition fields now (2 count queries, plus the manager if not loaded).
    A caller that has just read the ids of the assets in the member's custody passes them:
    their number replaces one of the counts; one that counted the live entitlements passes
    that number too."""
    from licenses.models import Entitlement

    if custody_asset_ids is None:
        in_custody = member.assets_in_custody.count()
    else:
        in_custody = len(custody_asset_ids)
    if live_entitlements is None:
        live_entitlements = Entitlement.objects.live().filter(member=member).count()

    return {
        "id": member.pk,
        "full_name": member.full_name,
        "email": member.email,
        "department": member.department,
        "location": member.location,
        "title": member.title,
        "employment_type": member.employment_type,
        "email_domain": member.email_domain,
        "manager": member.manager.email.lower() if member.manager_id else "",
        "employee_id": member.employee_id,
        "status": member.status,
        "assets_in_custody": in_custody,
        "live_entitlements": live_entitlements,
    }


def member_snapshots(
    member_ids: Iterable[int], *, custody: dict[int, list[int]] | None = None
) -> dict[int, dict[str, Any]]:
    """`member_snapshot` of many members at once, in 3 queries whatever their number (the
    members with their managers, the assets in their custody, their live entitlements).
    `custody`, when given, is filled with member id → the ids of the assets in their custody."""
    from django.db.models import Count

    from assets.models import Asset
    from licenses.models import Entitlement
    from members.models import Member

    ids = list(member_ids)
    members = Member.objects.select_related("manager").filter(pk__in=ids)
    if custody is None:
        custody = {}
    for asset_id, custodian_id in Asset.objects.filter(custodian_id__in=ids).values_list(
        "pk", "custodian_id"
    ):
        custody.setdefault(custodian_id, []).append(asset_id)
    live = dict(
        Entitlement.objects.live()
        .filter(member_id__in=ids)
        .order_by()
        .values("member_id")
        .annotate(n=Count("pk"))
        .values_list("member_id", "n")
    )
    return {
        m.pk: member_snapshot(
            m, custody_asset_ids=custody.get(m.pk, []), live_entitlements=live.get(m.pk, 0)
        )
        for m in members
    }


def _test(field: Field, operator: str, expected: Any, actual: Any) -> bool:
    if field.type == NUMBER:
        actual = int(actual or 0)
        return {
            "is": actual == expected,
            "is_not": actual != expected,
            "greater_than": actual > expected,
            "less_than": actual < expected,
        }[operator]
    actual = str(actual or "").strip().casefold()
    if operator == "is_empty":
        return actual == ""
    if operator == "is_not_empty":
        return actual != ""
    if operator == "is_any_of":
        return actual in {str(v).casefold() for v in expected}
    expected = str(expected).casefold()
    return {
        "is": actual == expected,
        "is_not": actual != expected,
        "contains": expected in actual,
        "starts_with": actual.startswith(expected),
    }[operator]


def condition_matches(field_key: str, operator: str, value: Any, snapshot: dict) -> bool:
    field = FIELDS[field_key]
    return _test(field, operator, value, snapshot.get(field_key))


def matches(conditions: Iterable, match: str, snapshot: dict) -> bool:
    """Do `conditions` (objects with field/operator/value) hold for the snapshot?
    No conditions: every member the trigger fires for."""
    results = [condition_matches(c.field, c.operator, c.value, snapshot) for c in conditions]
    if not results:
        return True
    return all(results) if match == "all" else any(results)


def describe(field_key: str, operator: str, value: Any) -> str:
    """Plain language: 'department is Engineering', 'number of assets in custody greater than 0'."""
    field = FIELDS.get(field_key)
    op = OPERATORS.get(operator)
    if field is None or op is None:
        return ""
    label = field.label[0].lower() + field.label[1:]
    if not op.needs_value:
        return f"{label} {op.label}"
    if op.many:
        shown = ", ".join(_display(field, v) for v in (value or []))
    else:
        shown = _display(field, value)
    return f"{label} {op.label} {shown}"


def _display(field: Field, value: Any) -> str:
    if field.type == CHOICE:
        return dict(choice_values(field)).get(value, str(value))
    return str(value)


# --- In the database -------------------------------------------------------------------------


def condition_q(field_key: str, operator: str, value: Any) -> Q | None:
    """The condition as a filter on Member that selects the members `condition_matches` holds
    for (the automation page's "Who would this run for now"), or None when it cannot be one:
    a field without `db`, or a value with letters outside ASCII (the databases fold the case of
    those differently from Python's casefold: SQLite only folds ASCII). Text is compared
    trimmed and case-insensitively, as `_test` does."""
    field = FIELDS.get(field_key)
    if field is None or not field.db or operator not in OPERATORS_BY_TYPE[field.type]:
        return None
    if field.type == NUMBER:
        number = int(value)
        return {
            "is": Q(**{field.db: number}),
            "is_not": ~Q(**{field.db: number}),
            "greater_than": Q(**{f"{field.db}__gt": number}),
            "less_than": Q(**{f"{field.db}__lt": number}),
        }[operator]
    values = list(value or []) if OPERATORS[operator].many else [value]
    if any(not str(v).isascii() for v in values if v is not None):
        return None
    if field.key == "email_domain":
        return _domain_q(operator, [str(v).strip().lower() for v in values if v is not None])
    if field.type == PERSON:
        return _manager_q(operator, [str(v).strip() for v in values if v is not None])
    text = Trim(F(field.db))
    if operator == "is_empty":
        return Q(Exact(text, ""))
    if operator == "is_not_empty":
        return ~Q(Exact(text, ""))
    if operator == "is_any_of":
        return _any([Q(IExact(text, str(v).strip())) for v in values])
    expected = str(value).strip()
    return {
        "is": Q(IExact(text, expected)),
        "is_not": ~Q(IExact(text, expected)),
        "contains": Q(IContains(text, expected)),
        "starts_with": Q(IStartsWith(text, expected)),
    }[operator]


def _any(parts: list[Q]) -> Q:
    if not parts:
        return Q(pk__in=[])  # "is any of" nothing: no member
    out = parts[0]
    for part in parts[1:]:
        out |= part
    return out


def _manager_q(operator: str, values: list[str]) -> Q:
    # Lookups through the relation, which Django joins LEFT (and negates with the NULLs kept):
    # a member without a manager has "" as the snapshot's manager.
    empty = Q(manager__isnull=True) | Q(manager__email="")
    if operator == "is_empty":
        return empty
    if operator == "is_not_empty":
        return ~empty
    matched = _any([Q(manager__email__iexact=v) for v in values])
    return ~matched if operator == "is_not" else matched


def _domain_q(operator: str, values: list[str]) -> Q | None:
    """The part of the email after its last @ (`Member.email_domain`), as a regular expression
    on the address (re's syntax in SQLite, POSIX's in PostgreSQL: only [^@], \\s, $ and escaped
    characters are used, which read the same in both)."""
    if any("@" in v for v in values):
        return None

    def regex(pattern: str) -> Q:
        return Q(email__iregex=pattern)

    empty = regex(r"@\s*$") | Q(email="")
    if operator == "is_empty":
        return empty
    if operator == "is_not_empty":
        return ~empty
    escaped = [_escape(v) for v in values]
    if operator in ("is", "is_not", "is_any_of"):
        matched = _any([regex(f"@{v}$") for v in escaped])
        return ~matched if operator == "is_not" else matched
    if operator == "contains":
        return regex(f"@[^@]*{escaped[0]}[^@]*$")
    return regex(f"@{escaped[0]}[^@]*$")  # starts_with


def _escape(value: str) -> str:
    # A backslash before each character that is not a letter or a digit: literal in both
    # dialects (re.escape leaves some unescaped that POSIX brackets would read, e.g. "-").
    return "".join(ch if ch.isalnum() else "\\" + ch for ch in value)


def conditions_q(conditions: Iterable, match: str) -> tuple[Q, list]:
    """The conditions (objects with field/operator/value) as one filter on Member, and those
    that cannot be one (`condition_q` gives None). With "all", the filter holds the others
    (a member must pass it and the rest); with "any" and one left out, the filter is empty
    (Q()): every member must be checked."""
    parts, left = [], []
    for c in conditions:
        q = condition_q(c.field, c.operator, c.value)
        if q is None:
            left.append(c)
        else:
            parts.append(q)
    if not parts and not left:
        return Q(), []
    if match == "all":
        combined = Q()
        for part in parts:
            combined &= part
        return combined, left
    if left:
        return Q(), left
    return _any(parts), []
