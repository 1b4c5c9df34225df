"""The "Revoke licenses in AssetSonar" action kind: revoke the member's license entitlements, in
a fixed number of queries. Settings (`config`): user_based, user_machine, device_based.

The three options of the builder:
- user-based (also cloud): entitlements of the member with no device, license kind user/cloud;
- user-machine: entitlements of the member on a device (any license kind);
- device-based: entitlements of the devices the member held at the event (from the event's
  snapshot), with no member, license kind device.

Inside the run's first transaction, whatever the number of entitlements: an INSERT ... SELECT
claims one ActionLog per matching live entitlement (ON CONFLICT DO NOTHING on the unique key, so a
re-run claims only what is new) and returns the new claims, one UPDATE revokes the claimed
entitlements that are still live, and one UPDATE marks the claims revoked (when someone else
revoked some in between: a read of which were ours, and a second UPDATE marks the others
skipped). The claim and the revocation commit together, so a worker killed in between leaves
neither. Seats are freed because a license's seats in use are
its live entitlements.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from assetsonar.audit import audit_record
from assetsonar.models import AuditEvent
from automations.actions.base import ActionKind, register
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
# The words of the automation's sentence ("revoke user-based and user-machine licenses").
PHRASES = {
    "user_based": "user-based",
    "user_machine": "user-machine",
    "device_based": "device-based",
}


def licenses_revoke_many(*, items: list[Prep], context=None) -> list:
    """`licenses_revoke` for each item, in execution order: a later automation of the same
    event finds what an earlier one revoked already gone, as when run one by one."""
    for item in items:
        licenses_revoke(execution=item.execution, action=item.action, event=item.event)
    return []


def licenses_revoke(*, execution, action, event, context=None) -> list:
    """Revoke what the action's options select for the event's member, in the caller's
    transaction. Nothing is left to do outside the database, so no job is returned."""
    member_id = event.member_id
    custody = event.member_snapshot.get("custody_asset_ids")
    if custody is None:  # an event recorded before custody was part of the snapshot
        from assets.models import Asset

        custody = list(Asset.objects.filter(custodian_id=member_id).values_list("pk", flat=True))
    clauses: list[tuple[str, list]] = []
    config = action.config
    if config.get("user_based"):
        clauses.append(
            (
                "e.member_id = %s AND e.asset_id IS NULL AND l.kind IN (%s, %s)",
                [member_id, License.Kind.USER, License.Kind.CLOUD],
            )
        )
    if config.get("user_machine"):
        clauses.append(("e.member_id = %s AND e.asset_id IS NOT NULL", [member_id]))
    if config.get("device_based") and custody:
        marks = ", ".join(["%s"] * len(custody))
        clauses.append(
            (
                f"e.member_id IS NULL AND l.kind = %s AND e.asset_id IN ({marks})",
                [License.Kind.DEVICE, *custody],
            )
        )

    now = timezone.now()
    reason = (
        f"Revoked by automation “{execution.automation_name}” (execution {execution.pk}) "
        f"after the member was deactivated."
    )[:500]
    claims = _claim(execution, action, event, clauses, now) if clauses else []
    if claims:
        entitlement_ids = [entitlement_id for _, entitlement_id in claims]
        revoked = Entitlement.objects.filter(
            pk__in=entitlement_ids, revoked_at__isnull=True
        ).update(revoked_at=now, revoked_by=None, revoked_reason=reason)
        if revoked == len(entitlement_ids):
            ours = set(entitlement_ids)
        else:  # some were revoked by someone else between the claim and the update
            ours = set(
                Entitlement.objects.filter(
                    pk__in=entitlement_ids, revoked_at=now, revoked_reason=reason
                ).values_list("pk", flat=True)
            )
        if ours:  # seats used and members' live counts, in this transaction, last (see
            # engine.common.write_last: every batch shares the license rows' locks)
            write_last(
                entitlements_revoked_tally,
                list(
                    Entitlement.objects.filter(pk__in=ours).values_list("license_id", "member_id")
                ),
            )
        for status, insight, log_ids in (
            (ActionLog.Status.SUCCEEDED, REVOKED_INSIGHT, [pk for pk, e in claims if e in ours]),
            (
                ActionLog.Status.SKIPPED,
                ALREADY_REVOKED_INSIGHT,
                [pk for pk, e in claims if e not in ours],
            ),
        ):
            if log_ids:
                ActionLog.objects.filter(pk__in=log_ids).update(
                    status=status, insight=insight, finished_at=now
                )
        if revoked:
            audit_record(
                action=AuditEvent.Action.REVOKED,
                obj=event.member,
                actor_name=f"Automation: {execution.automation_name}"[:150],
                message=f"{revoked} license entitlement{'s' if revoked != 1 else ''} "
                f"revoked by automation “{execution.automation_name}”.",
            )
    elif not ActionLog.objects.filter(execution=execution, action=action).exists():
        # Claimed closed in one row, written with the batch's other rows. No log of this
        # execution and action exists, so neither does its key (the event's row lock keeps
        # other runs out meanwhile).
        write_create(
            ActionLog(
                key=log_key(event.pk, execution.automation_id, action.pk, "none"),
                execution=execution,
                action=action,
                action_kind=action.kind,
                target_type=ActionLog.TargetType.MEMBER,
                target_label=(event.member_snapshot.get("full_name", "") or str(member_id))[:300],
                status=ActionLog.Status.SKIPPED,
                insight=NOTHING_MATCHED_INSIGHT if clauses else NO_OPTION_INSIGHT,
                finished_at=now,
            )
        )

    return []


def _claim(execution, action, event, clauses: list[tuple[str, list]], now) -> list[tuple]:
    """INSERT one pending ActionLog per live entitlement matching any of `clauses`; returns
    the new ones as (log id, entitlement id) (RETURNING: PostgreSQL, SQLite 3.35+). Plain SQL
    because the ORM has no INSERT ... SELECT, and bulk_create would split into batches on
    SQLite (999 parameters), so the query count would grow with the data.

    One SELECT per clause, joined with UNION ALL (the clauses select disjoint rows: member's
    without device, member's on a device, devices' without member): each uses its own index
    (member, or asset), where one WHERE with their OR scans every live entitlement."""
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
    from assets.models import Asset

    # Only quoted table/column names and fixed clauses are formatted in; every value is a
    # parameter. The constant columns are outside the UNION, where they keep their types.
    select = (
        "SELECT e.id AS id, e.asset_id AS asset_id, "  # noqa: S608
        "CASE WHEN a.id IS NULL THEN l.name ELSE l.name || %s || a.asset_tag END AS label "
        f"FROM {qn(Entitlement._meta.db_table)} e "
        f"INNER JOIN {qn(License._meta.db_table)} l ON l.id = e.license_id "
        f"LEFT OUTER JOIN {qn(Asset._meta.db_table)} a ON a.id = e.asset_id "
        "WHERE e.revoked_at IS NULL AND "
    )
    union = " UNION ALL ".join(select + clause for clause, _ in clauses)
    # WHERE 1 = 1: SQLite reads an INSERT ... SELECT's ON CONFLICT as part of the SELECT
    # unless the SELECT has a WHERE.
    sql = (
        f"INSERT INTO {log_table} ({columns}) "  # noqa: S608
        "SELECT %s || CAST(u.id AS VARCHAR(20)), %s, %s, %s, %s, u.label, u.id, u.asset_id, "
        f"%s, '', 0, NULL, %s, NULL, '{{}}' FROM ({union}) u WHERE 1 = 1 "
        f"ON CONFLICT ({qn(ActionLog._meta.get_field('key').column)}) DO NOTHING "
        f"RETURNING {qn(ActionLog._meta.pk.column)}, "
        f"{qn(ActionLog._meta.get_field('entitlement').column)}"
    )
    params = [
        log_key(event.pk, execution.automation_id, action.pk, "entitlement:"),
        execution.pk,
        action.pk,
        action.kind,
        ActionLog.TargetType.ENTITLEMENT,
        ActionLog.Status.PENDING,
        connection.ops.adapt_datetimefield_value(now),
    ]
    for _, clause_params in clauses:
        params += [" on ", *clause_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()]


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

    def targets(self, member, config):
        from licenses.models import Entitlement

        live = Entitlement.objects.filter(revoked_at__isnull=True).select_related("license")
        rows = []
        if config.get("user_based"):
            rows += live.filter(
                member=member,
                asset__isnull=True,
                license__kind__in=[License.Kind.USER, License.Kind.CLOUD],
            )
        if config.get("user_machine"):
            rows += live.filter(member=member, asset__isnull=False)
        if config.get("device_based"):
            rows += live.filter(
                member__isnull=True, license__kind=License.Kind.DEVICE, asset__custodian=member
            )
        return [e.license.name for e in rows]

    def prepare(self, *, items, context):
        return licenses_revoke_many(items=items, context=context)
