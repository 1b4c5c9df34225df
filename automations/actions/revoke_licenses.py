"""The "Revoke licenses in AssetSonar" action kind: revoke the member's license entitlements, in
a fixed number of queries. Settings (`config`): user_based, user_machine, device_based.

The three options of the builder:
- user-based (also cloud): entitlements of the member with no device, license kind user/cloud;
- user-machine: entitlements of the member on a device (any license kind);
- device-based: entitlements of the devices the member held at the event (from the event's
  snapshot), with no member, license kind device.

Inside the run's first transaction, for every execution of the batch at once and whatever the
number of entitlements: one SELECT reads the live entitlements the options select and shares
them out in execution order (the first automation of an event takes what it selects, a later one
finds it gone); one INSERT claims an ActionLog per entitlement (ON CONFLICT DO NOTHING on the
unique key, so a re-run claims only what is new) and returns the new claims; one UPDATE revokes
the claimed entitlements that are still live, and one UPDATE marks the claims revoked (when
someone else revoked some in between: a read of which were ours, and a second UPDATE marks the
others skipped). The claim and the revocation commit together, so a worker killed in between
leaves neither. Seats are freed because a license's seats in use are its live entitlements (the
kept count, License.seats_used, is updated last, for the whole batch: engine.common.write_last).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Case, Value, When
from django.utils import timezone

from assetsonar.audit import audit_build
from assetsonar.models import AuditEvent
from automations.actions.base import ActionKind, Target, register
from automations.engine.common import Prep, log_key, write_create, write_last
from automations.models import ActionLog
from licenses.models import Entitlement, License
from licenses.services import entitlements_revoked_tally

REVOKED_INSIGHT = "Revoked; the seat is free again."
ALREADY_REVOKED_INSIGHT = "Already revoked by someone else before the automation reached it."
NOTHING_MATCHED_INSIGHT = (
    "No live entitlement matched the selected options, so nothing was revoked."
)
NO_OPTION_INSIGHT = "No revocation option is selected on this action."
OPTIONS = {
    "user_based": "user-based (also cloud user-based)",
    "user_machine": "user-machine",
    "device_based": "device-based on devices in custody",
}
# Claims are made in this order of the options (then by entitlement), as the union lists them.
ORDER = {option: n for n, option in enumerate(OPTIONS)}
# The words of the automation's sentence ("revoke user-based and user-machine licenses").
PHRASES = {
    "user_based": "user-based",
    "user_machine": "user-machine",
    "device_based": "device-based",
}


def licenses_revoke_many(*, items: list[Prep], context=None) -> list:
    """Revoke what each item's options select for its event's member, in the caller's
    transaction, for the whole wave at once: one SELECT of the live entitlements any item
    selects, shared out in execution order (`_share`: a later automation of the same event finds
    what an earlier one took already gone, as when run one by one), one INSERT of the claims, one
    UPDATE revoking them, one or two UPDATEs closing the claims, one read of the items left with
    nothing. The query count depends neither on the items nor on the entitlements. Nothing is
    left to do outside the database, so no job is returned."""
    if not items:
        return []
    now = timezone.now()
    rows, custody_of = _candidates(items)
    rows.sort(key=lambda row: (ORDER[row[0]], row[1]))
    shares = _share(items, rows, custody_of)
    owner = {row[1]: index for index, share in enumerate(shares) for row in share}
    claims = _claim(items, shares, now) if owner else []
    claimed: dict[int, list[tuple[int, int]]] = {}
    for log_id, entitlement_id in claims:
        claimed.setdefault(owner[entitlement_id], []).append((log_id, entitlement_id))
    reasons = {
        index: (
            f"Revoked by automation “{items[index].execution.automation_name}” "
            f"(execution {items[index].execution.pk}) after the member was deactivated."
        )[:500]
        for index in claimed
    }
    ours = _revoke(claimed, reasons, now) if claimed else set()
    if ours:  # seats used and members' live counts, in this transaction, last (see
        # engine.common.write_last: every batch shares the license rows' locks)
        write_last(
            entitlements_revoked_tally,
            [(row[5], row[3]) for share in shares for row in share if row[1] in ours],
        )
    for status, insight, log_ids in (
        (
            ActionLog.Status.SUCCEEDED,
            REVOKED_INSIGHT,
            [pk for of in claimed.values() for pk, e in of if e in ours],
        ),
        (
            ActionLog.Status.SKIPPED,
            ALREADY_REVOKED_INSIGHT,
            [pk for of in claimed.values() for pk, e in of if e not in ours],
        ),
    ):
        if log_ids:
            ActionLog.objects.filter(pk__in=log_ids).update(
                status=status, insight=insight, finished_at=now
            )
    for index, of in claimed.items():
        revoked = sum(1 for _, e in of if e in ours)
        if revoked:
            execution = items[index].execution
            write_create(
                audit_build(
                    action=AuditEvent.Action.REVOKED,
                    obj=items[index].event.member,
                    actor_name=f"Automation: {execution.automation_name}"[:150],
                    message=f"{revoked} license entitlement{'s' if revoked != 1 else ''} "
                    f"revoked by automation “{execution.automation_name}”.",
                )
            )
    _log_nothing([item for index, item in enumerate(items) if index not in claimed], now)
    return []


def licenses_revoke(*, execution, action, event, context=None) -> list:
    """Revoke what the action's options select for the event's member, in the caller's
    transaction (`licenses_revoke_many` for one item)."""
    return licenses_revoke_many(items=[Prep(execution, action, event)], context=context)


def _revoke(claimed: dict[int, list[tuple[int, int]]], reasons: dict[int, str], now) -> set[int]:
    """Revoke the claimed entitlements still live (one UPDATE, each with its execution's
    reason); returns those this run revoked (someone else may have revoked some in between:
    one more read then says which)."""
    ids = [e for of in claimed.values() for _, e in of]
    by_reason: dict[str, list[int]] = {}
    for index, of in claimed.items():
        by_reason.setdefault(reasons[index], []).extend(e for _, e in of)
    if len(by_reason) == 1:
        reason = Value(next(iter(by_reason)))
    else:
        reason = Case(
            *(When(pk__in=pks, then=Value(text)) for text, pks in by_reason.items()),
            default=Value(""),
        )
    revoked = Entitlement.objects.filter(pk__in=ids, revoked_at__isnull=True).update(
        revoked_at=now, revoked_by=None, revoked_reason=reason
    )
    if revoked == len(ids):
        return set(ids)
    wanted = {e: reasons[index] for index, of in claimed.items() for _, e in of}
    return {
        pk
        for pk, text in Entitlement.objects.filter(pk__in=ids, revoked_at=now).values_list(
            "pk", "revoked_reason"
        )
        if wanted.get(pk) == text
    }


def _log_nothing(items: list[Prep], now) -> None:
    """Items that claimed nothing new: a skipped "nothing matched" line, unless the execution
    has a log of the action already (an earlier run claimed or logged). One read for all;
    the lines are written with the batch's other rows. No such log exists, so neither does its
    key (the event's row lock keeps other runs out meanwhile)."""
    if not items:
        return
    logged = set(
        ActionLog.objects.filter(
            execution_id__in={item.execution.pk for item in items},
            action_id__in={item.action.pk for item in items},
        )
        .values_list("execution_id", "action_id")
        .distinct()
    )
    for item in items:
        if (item.execution.pk, item.action.pk) in logged:
            continue
        logged.add((item.execution.pk, item.action.pk))
        event, action = item.event, item.action
        write_create(
            ActionLog(
                key=log_key(event.pk, item.execution.automation_id, action.pk, "none"),
                execution=item.execution,
                action=action,
                action_kind=action.kind,
                target_type=ActionLog.TargetType.MEMBER,
                target_label=(event.member_snapshot.get("full_name", "") or str(event.member_id))[
                    :300
                ],
                status=ActionLog.Status.SKIPPED,
                insight=_nothing_insight(action.config),
                finished_at=now,
            )
        )


def _nothing_insight(config: dict[str, Any]) -> str:
    # Device-based only, for a member who held no device, is "nothing matched" too.
    return NOTHING_MATCHED_INSIGHT if any(config.get(o) for o in OPTIONS) else NO_OPTION_INSIGHT


def _custody(event) -> list[int]:
    """The devices the member held at the event (its snapshot)."""
    custody = event.member_snapshot.get("custody_asset_ids")
    if custody is None:  # an event recorded before custody was part of the snapshot
        from assets.models import Asset

        custody = list(
            Asset.objects.filter(custodian_id=event.member_id).values_list("pk", flat=True)
        )
    return custody


def selection(
    config: dict[str, Any], *, member_ids: list[int], custody: list[int]
) -> list[tuple[str, str, list]]:
    """The target selection, shared by the engine's claim (`_claim`, an INSERT ... SELECT) and
    the preview (`revoke_plan`, a SELECT): (option, SQL condition on `e` the entitlement and `l`
    its license, parameters) per option the settings select. Live entitlements only."""
    clauses: list[tuple[str, str, list]] = []
    members = ", ".join(["%s"] * len(member_ids))
    if config.get("user_based") and member_ids:
        clauses.append(
            (
                "user_based",
                f"e.member_id IN ({members}) AND e.asset_id IS NULL AND l.kind IN (%s, %s)",
                [*member_ids, License.Kind.USER, License.Kind.CLOUD],
            )
        )
    if config.get("user_machine") and member_ids:
        clauses.append(
            ("user_machine", f"e.member_id IN ({members}) AND e.asset_id IS NOT NULL", member_ids)
        )
    if config.get("device_based") and custody:
        marks = ", ".join(["%s"] * len(custody))
        clauses.append(
            (
                "device_based",
                f"e.member_id IS NULL AND l.kind = %s AND e.asset_id IN ({marks})",
                [License.Kind.DEVICE, *custody],
            )
        )
    return clauses


def _selected_sql(clauses: list[tuple[str, str, list]]) -> tuple[str, list]:
    """One SELECT per clause, joined with UNION ALL (the clauses select disjoint rows: member's
    without device, member's on a device, devices' without member): each uses its own index
    (member, or asset), where one WHERE with their OR scans every live entitlement. Columns:
    option, id, asset_id, member_id, label (the log's target label)."""
    qn = connection.ops.quote_name
    from assets.models import Asset

    # Only quoted table/column names and fixed clauses are formatted in; every value is a
    # parameter.
    select = (
        "SELECT %s AS opt, e.id AS id, e.asset_id AS asset_id, "  # noqa: S608
        "e.member_id AS member_id, "
        "CASE WHEN a.id IS NULL THEN l.name ELSE l.name || %s || a.asset_tag END AS label, "
        "e.license_id AS license_id "
        f"FROM {qn(Entitlement._meta.db_table)} e "
        f"INNER JOIN {qn(License._meta.db_table)} l ON l.id = e.license_id "
        f"LEFT OUTER JOIN {qn(Asset._meta.db_table)} a ON a.id = e.asset_id "
        "WHERE e.revoked_at IS NULL AND "
    )
    params: list = []
    for option, _, clause_params in clauses:
        params += [option, " on ", *clause_params]
    return " UNION ALL ".join(select + clause for _, clause, _ in clauses), params


def _candidates(items: list[Prep]) -> tuple[list[tuple], dict[int, set[int]]]:
    """The live entitlements any item's options select (one query for all the items), as
    `_selected_sql`'s rows, and each item's devices in custody at its event (by id(item))."""
    wanted = {option for item in items for option in OPTIONS if item.action.config.get(option)}
    member_ids = sorted({item.event.member_id for item in items})
    custody_of = {id(item): set(_custody(item.event)) for item in items}
    custody = sorted(
        {
            pk
            for item in items
            if item.action.config.get("device_based")
            for pk in custody_of[id(item)]
        }
    )
    clauses = selection(dict.fromkeys(wanted, True), member_ids=member_ids, custody=custody)
    rows: list[tuple] = []
    if clauses:
        sql, params = _selected_sql(clauses)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = [tuple(row) for row in cursor.fetchall()]
    return rows, custody_of


def _share(items: list[Prep], rows: list[tuple], custody_of: dict[int, set[int]]) -> list[list]:
    """Each item's rows, in item order: an entitlement goes to the first item whose options
    and member (or devices in custody) select it, as when the items are run one by one and a
    later one finds what an earlier one revoked gone."""
    # Rows by member (user-based, user-machine) and by device (device-based), as positions in
    # `rows`: each item looks at its own, not at the whole batch's.
    by_member: dict[int, list[int]] = {}
    by_device: dict[int, list[int]] = {}
    for position, row in enumerate(rows):
        if row[0] == "device_based":
            by_device.setdefault(row[2], []).append(position)
        else:
            by_member.setdefault(row[3], []).append(position)
    taken: set[int] = set()
    shares = []
    for item in items:
        config = item.action.config
        positions = list(by_member.get(item.event.member_id, ()))
        for device in custody_of[id(item)]:
            positions += by_device.get(device, ())
        mine = [
            rows[position]
            for position in sorted(positions)
            if config.get(rows[position][0]) and rows[position][1] not in taken
        ]
        taken.update(row[1] for row in mine)
        shares.append(mine)
    return shares


def revoke_plan(items: list[Prep]) -> list[list[Target]]:
    """The preview of `licenses_revoke` for each item (one query for all of them): the live
    entitlements its options select, or why nothing would be revoked."""
    rows, custody_of = _candidates(items)
    rows.sort(key=lambda row: (row[4], row[1]))
    plans = []
    for item, mine in zip(items, _share(items, rows, custody_of), strict=True):
        if mine:
            plans.append([Target(f"entitlement:{row[1]}", row[4][:300]) for row in mine])
        else:
            reason = _nothing_insight(item.action.config)
            member_id = item.event.member_id
            label = (item.event.member_snapshot.get("full_name", "") or str(member_id))[:300]
            plans.append([Target("none", label, skip_reason=reason)])
    return plans


def _max_params() -> int:
    """The most parameters one statement may carry on this database."""
    if connection.vendor == "sqlite":
        import sqlite3

        connection.ensure_connection()
        try:
            return connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        except AttributeError:  # Python before 3.11: SQLite's historical default
            return 999
    return 65535


def _claim(items: list[Prep], shares: list[list], now) -> list[tuple[int, int]]:
    """INSERT one pending ActionLog per entitlement of each item's share (ON CONFLICT DO
    NOTHING on the unique key, so a re-run claims only what is new); returns the new ones as
    (log id, entitlement id) (RETURNING: PostgreSQL, SQLite 3.35+). Plain SQL because the ORM
    has no INSERT ... RETURNING that skips conflicts; one statement unless the claims exceed
    the database's parameters per statement (65,535 on PostgreSQL: about 10,000 claims)."""
    qn = connection.ops.quote_name
    log_table = qn(ActionLog._meta.db_table)
    columns = ", ".join(
        qn(ActionLog._meta.get_field(name).column)
        for name in (
            "key",
            "execution",
            "action",
            "action_kind",
            "target_type",
            "target_label",
            "entitlement",
            "asset",
            "status",
            "insight",
            "attempts",
            "next_attempt_at",
            "created_at",
            "finished_at",
            "detail",
        )
    )
    values = [
        (
            log_key(item.event.pk, item.execution.automation_id, item.action.pk, "entitlement:")
            + str(row[1]),
            item.execution.pk,
            item.action.pk,
            row[4],
            row[1],
            row[2],
        )
        for item, share in zip(items, shares, strict=True)
        for row in share
    ]
    if connection.vendor == "postgresql":
        # Every value is a parameter; the casts give the VALUES list its columns' types.
        placeholder = "(%s, CAST(%s AS bigint), CAST(%s AS bigint), %s, CAST(%s AS bigint), "
        placeholder += "CAST(%s AS bigint))"
    else:
        placeholder = "(%s, %s, %s, %s, %s, %s)"
    constants = [
        items[0].action.kind,
        ActionLog.TargetType.ENTITLEMENT,
        ActionLog.Status.PENDING,
        connection.ops.adapt_datetimefield_value(now),
    ]
    per_statement = max(1, (_max_params() - len(constants)) // 6)
    claims: list[tuple[int, int]] = []
    with connection.cursor() as cursor:
        for start in range(0, len(values), per_statement):
            chunk = values[start : start + per_statement]
            # Only quoted table/column names are formatted in; every value is a parameter.
            # WHERE 1 = 1: SQLite reads an INSERT ... SELECT's ON CONFLICT as part of the
            # SELECT unless the SELECT has a WHERE.
            sql = (
                "WITH v (k, execution_id, action_id, label, entitlement_id, asset_id) AS "  # noqa: S608
                f"(VALUES {', '.join([placeholder] * len(chunk))}) "
                f"INSERT INTO {log_table} ({columns}) "
                "SELECT v.k, v.execution_id, v.action_id, %s, %s, v.label, v.entitlement_id, "
                f"v.asset_id, %s, '', 0, NULL, %s, NULL, '{{}}' FROM v WHERE 1 = 1 "
                f"ON CONFLICT ({qn(ActionLog._meta.get_field('key').column)}) DO NOTHING "
                f"RETURNING {qn(ActionLog._meta.pk.column)}, "
                f"{qn(ActionLog._meta.get_field('entitlement').column)}"
            )
            cursor.execute(sql, [part for row in chunk for part in row] + constants)
            claims += [tuple(row) for row in cursor.fetchall()]
    return claims


# --- Settings: the builder card -----------------------------------------------------------------


class RevokeForm(forms.Form):
    user_based = forms.BooleanField(
        required=False,
        label="Un-entitle user-based licenses",
        help_text="Also un-entitles cloud user-based (SaaS) licenses.",
    )
    user_machine = forms.BooleanField(
        required=False,
        label="Un-entitle user-machine entitlements",
        help_text="The member's entitlements on a specific device.",
    )
    device_based = forms.BooleanField(
        required=False,
        label="Remove device-based entitlements from devices in custody",
        help_text="Frees the device-based licenses of the devices the member holds.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not any(cleaned.get(k) for k in OPTIONS):
            raise ValidationError("Choose at least one kind of license to revoke.")
        return cleaned


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


@register
class RevokeLicensesKind(ActionKind):
    key = "revoke_licenses"
    label = "Revoke licenses in AssetSonar"
    description = "Take back the software seats the member holds (three options)."
    log_label = "Revoke licenses"
    chip = "Revoke licenses"
    icon = "icon-revoke"
    target_noun = ("license seat", "license seats")
    form_class = RevokeForm
    builder_template = "automations/actions/revoke_licenses/builder.html"
    detail_template = "automations/actions/revoke_licenses/detail.html"
    insights = {
        "revoked": REVOKED_INSIGHT,
        "already_revoked": ALREADY_REVOKED_INSIGHT,
        "nothing_matched": NOTHING_MATCHED_INSIGHT,
        "no_option": NO_OPTION_INSIGHT,
    }

    def default_config(self) -> dict[str, Any]:
        return {"user_based": True, "user_machine": False, "device_based": False}

    def clean_config(self, config, *, previous):
        if not any(config.get(k) for k in OPTIONS):
            return {"__all__": ["Choose at least one kind of license to revoke."]}
        return {}

    def form_initial(self, config):
        return {k: bool(config.get(k)) for k in OPTIONS}

    def config_from_form(self, form):
        return {k: bool(form.cleaned_data.get(k)) for k in OPTIONS}

    def read(self, action):
        return {k: bool(action.config.get(k)) for k in OPTIONS}

    def write(self, action, config):
        action.config = {k: bool(config.get(k)) for k in OPTIONS}
        return None

    def summary(self, config):
        kinds = [PHRASES[k] for k in OPTIONS if config.get(k)]
        return f"revoke {_join(kinds)} licenses" if kinds else ""

    def snapshot(self, config):
        chosen = [label for key, label in OPTIONS.items() if config.get(key)]
        return {"Revoke licenses": ", ".join(chosen)}

    def admin_text(self, action):
        chosen = [
            {"user_based": "user-based (also cloud)"}.get(key, label)
            for key, label in OPTIONS.items()
            if action.config.get(key)
        ]
        return "Revoke " + ", ".join(chosen)

    def plan(self, *, items, context):
        return revoke_plan(items)

    def prepare(self, *, items, context):
        return licenses_revoke_many(items=items, context=context)
