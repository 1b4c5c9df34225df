"""The "Request the return of devices" action kind: ask the member to hand back the devices in
their custody, with reminders and an escalation (the domain is `assets.returns`).

Settings (`config`): categories (Asset categories; empty = every device), reminder_every_days
(1–60), max_reminders (reminders before the escalation, 0–10), escalate_to (addresses) and
escalate_to_role (a Group name): at least one of the two.

Targets are the devices in the member's custody when the event was recorded (the event's
snapshot, like the MDM lock), in the chosen categories. The lock does not change custody, so a
lock (or a license revocation) earlier in the same automation leaves the devices to this action.

The work is done in the database at prepare time, in the run's first transaction, like
`revoke_licenses`: one ActionLog per device (the claim), then one call of
`assets.returns.return_requests_open` per member with every started device, keyed per event,
automation, action and member (each request's key derives from it). The notices to the member
and the manager are written to the returns outbox in that transaction and sent after its commit;
a re-run claims nothing new, opens nothing and sends nothing. No network Job is returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from assets.models import CUSTODY_STATUSES, Asset
from automations.actions.base import ActionKind, Target, register
from automations.engine.common import Prep, log_begin, log_claim_many, log_key, write_save
from automations.models import ActionLog

MIN_DAYS, MAX_DAYS = 1, 60
MIN_REMINDERS, MAX_REMINDERS = 0, 10
REQUESTED_INSIGHT = "Return requested; reminders every {days} days"
NO_DEVICE_INSIGHT = "The member held no device in the chosen categories, so no return was asked."
DAYS_MESSAGE = f"Remind every {MIN_DAYS} to {MAX_DAYS} days."
REMINDERS_MESSAGE = f"Escalate after {MIN_REMINDERS} to {MAX_REMINDERS} reminders."
NO_ESCALATION_MESSAGE = "Name who gets the escalation: one or more addresses, a role, or both."
# The words of the automation's sentence, by category ("laptops and phones").
PLURALS = {
    Asset.Category.LAPTOP: "laptops",
    Asset.Category.DESKTOP: "desktops",
    Asset.Category.PHONE: "phones",
    Asset.Category.TABLET: "tablets",
    Asset.Category.MONITOR: "monitors",
    Asset.Category.OTHER: "other devices",
}
SPLIT_RE = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class AutomationActor:
    """Who the returns' audit rows and requests name: the automation."""

    audit_name: str
    is_authenticated: bool = False


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _addresses(value: Any) -> list[str]:
    """Addresses from a list or from text separated by commas, semicolons or whitespace."""
    if isinstance(value, str):
        value = SPLIT_RE.split(value)
    return [a.strip() for a in value or [] if a and a.strip()]


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def normalised(config: dict[str, Any]) -> dict[str, Any]:
    """The settings in their stored shape, from stored, initial or half-typed values."""
    categories = config.get("categories") or []
    if isinstance(categories, str):
        categories = [categories]
    return {
        "categories": [c for c in Asset.Category.values if c in categories],
        "reminder_every_days": _int(config.get("reminder_every_days"), 7),
        "max_reminders": _int(config.get("max_reminders"), 3),
        "escalate_to": _addresses(config.get("escalate_to")),
        "escalate_to_role": (config.get("escalate_to_role") or "").strip(),
    }


def config_errors(config: dict[str, Any]) -> dict[str, list[str]]:
    """{field: [message]} for stored-shape settings; empty when valid."""
    errors: dict[str, list[str]] = {}
    unknown = [c for c in config.get("categories") or [] if c not in Asset.Category.values]
    if unknown:
        errors["categories"] = [f"“{unknown[0]}” is not an asset category."]
    days = config.get("reminder_every_days")
    if not isinstance(days, int) or isinstance(days, bool) or not MIN_DAYS <= days <= MAX_DAYS:
        errors["reminder_every_days"] = [DAYS_MESSAGE]
    count = config.get("max_reminders")
    if (
        not isinstance(count, int)
        or isinstance(count, bool)
        or not MIN_REMINDERS <= count <= MAX_REMINDERS
    ):
        errors["max_reminders"] = [REMINDERS_MESSAGE]
    bad = []
    for address in config.get("escalate_to") or []:
        try:
            validate_email(address)
        except ValidationError:
            bad.append(f"“{address[:254]}” is not a valid email address.")
    if bad:
        errors["escalate_to"] = bad
    role = config.get("escalate_to_role") or ""
    if role and not Group.objects.filter(name=role).exists():
        errors["escalate_to_role"] = [f"There is no role named “{role}”."]
    if not config.get("escalate_to") and not role:
        errors.setdefault("escalate_to", []).append(NO_ESCALATION_MESSAGE)
    return errors


# --- Running ------------------------------------------------------------------------------------


def returns_prepare_many(*, items: list[Prep], context) -> list:
    """Claim one log per device of each item and open the returns, in the caller's transaction
    (one query for the devices of the whole batch, then per item: the claims, the start and
    the service's call). Nothing is left to send over the network: no job is returned."""
    for item, devices in zip(items, return_devices(items), strict=True):
        _prepare_one(item, devices, normalised(item.action.config), context)
    return []


def return_devices(items: list[Prep]) -> list[list[Asset]]:
    """The target selection, shared by the engine (`returns_prepare_many`) and the preview
    (`return_plan`): for each item, the devices in the member's custody at the event (the
    event's snapshot) in the chosen categories, by id (one query for all the items)."""
    custody: dict[int, list[int]] = {}
    for item in items:
        ids = item.event.member_snapshot.get("custody_asset_ids")
        if ids is None:  # an event recorded before custody was part of the snapshot
            ids = list(
                Asset.objects.filter(
                    custodian_id=item.event.member_id, status__in=CUSTODY_STATUSES
                ).values_list("pk", flat=True)
            )
        custody[id(item)] = sorted(ids)
    wanted = {pk for ids in custody.values() for pk in ids}
    by_id = {a.pk: a for a in Asset.objects.filter(pk__in=wanted)} if wanted else {}
    out = []
    for item in items:
        categories = normalised(item.action.config)["categories"]
        devices = [by_id[pk] for pk in custody[id(item)] if pk in by_id]
        if categories:
            devices = [a for a in devices if a.category in categories]
        out.append(devices)
    return out


def return_plan(items: list[Prep], context) -> list[list[Target]]:
    """The preview of `returns_prepare_many`: per item, the devices asked back, each with the
    reason none would be opened (`assets.returns.return_refused`: already requested, no longer
    in custody), or why nothing is asked (two queries for all the items). A device an earlier
    item asks back counts as requested for the later ones, as in the engine."""
    from assets.models import ReturnRequest
    from assets.returns import return_refused

    per_item = return_devices(items)
    ids = {a.pk for devices in per_item for a in devices}
    open_by_asset = (
        {r.asset_id: r for r in ReturnRequest.objects.filter(asset_id__in=ids, closed_at=None)}
        if ids
        else {}
    )
    plans = []
    for item, devices in zip(items, per_item, strict=True):
        name = item.event.member_snapshot.get("full_name", "") or str(item.event.member_id)
        if not devices:
            plans.append([Target("none", name[:300], skip_reason=NO_DEVICE_INSIGHT)])
            continue
        targets = []
        for asset in devices:
            note = return_refused(
                asset,
                member_id=item.event.member_id,
                member_name=name,
                open_request=open_by_asset.get(asset.pk),
            )
            if not note:
                open_by_asset[asset.pk] = ReturnRequest(asset=asset, requested_at=context.now)
            targets.append(Target(f"asset:{asset.pk}", str(asset)[:300], note, obj=asset))
        plans.append(targets)
    return plans


def _prepare_one(item: Prep, devices: list[Asset], settings: dict[str, Any], context) -> None:
    execution, action, event = item
    if not devices:
        logs = log_claim_many([_spec(item, "none", member_label=True)])
        for log, _ in log_begin(logs, context.now):
            _finish(log, ActionLog.Status.SKIPPED, NO_DEVICE_INSIGHT)
        return
    specs = [_spec(item, f"asset:{a.pk}", asset=a) for a in devices]
    started = log_begin(log_claim_many(specs), context.now)
    if not started:  # a re-run: every device was handled already
        return
    from assets.returns import return_requests_open

    by_asset = {log.asset_id: log for log, _ in started}
    try:
        opened = return_requests_open(
            member=event.member,
            assets=sorted(by_asset),
            actor=AutomationActor(f"Automation: {execution.automation_name}"[:150]),
            reminder_every_days=settings["reminder_every_days"],
            max_reminders=settings["max_reminders"],
            escalate_to=settings["escalate_to"],
            escalate_to_role=settings["escalate_to_role"],
            source_label=f"{execution.automation_name} · execution {execution.pk}",
            source_key="automation:"
            + log_key(event.pk, execution.automation_id, action.pk, f"member:{event.member_id}"),
            source_execution_id=execution.pk,
            now=context.now,
        )
    except ValidationError as exc:  # settings no longer valid (the role was deleted, say)
        message = "Not requested: " + " ".join(exc.messages)
        for log in by_asset.values():
            _finish(log, ActionLog.Status.FAILED, message)
        return
    insight = REQUESTED_INSIGHT.format(days=settings["reminder_every_days"])
    for result in opened:
        log = by_asset[result.asset_id]
        ours = result.request is not None and (
            result.created or result.request.source_execution_id == execution.pk
        )
        if ours:
            _finish(
                log,
                ActionLog.Status.SUCCEEDED,
                insight,
                detail={
                    "return_request_id": result.request.pk,
                    "reminder_every_days": result.request.reminder_every_days,
                    "max_reminders": result.request.max_reminders,
                },
            )
        else:
            _finish(log, ActionLog.Status.SKIPPED, result.note)


def _spec(item: Prep, target: str, *, asset: Asset | None = None, member_label=False) -> dict:
    execution, action, event = item
    label = (
        (event.member_snapshot.get("full_name", "") or str(event.member_id))
        if member_label
        else str(asset)
    )
    return {
        "key": log_key(event.pk, execution.automation_id, action.pk, target),
        "execution": execution,
        "action": action,
        "action_kind": action.kind,
        "target_type": ActionLog.TargetType.MEMBER if asset is None else ActionLog.TargetType.ASSET,
        "target_label": label[:300],
        "asset": asset,
    }


def _finish(log: ActionLog, status: str, insight: str, *, detail: dict | None = None) -> None:
    from django.utils import timezone

    log.status, log.insight = status, insight[:500]
    log.next_attempt_at, log.finished_at = None, timezone.now()
    fields = ["status", "insight", "next_attempt_at", "finished_at"]
    if detail:
        log.detail = {**log.detail, **detail}
        fields.append("detail")
    write_save(log, fields)


# --- Settings: the builder card -----------------------------------------------------------------


def _role_choices() -> list[tuple[str, str]]:
    return [("", "No role")] + [
        (n, n) for n in Group.objects.order_by("name").values_list("name", flat=True)
    ]


class DeviceReturnForm(forms.Form):
    categories = forms.MultipleChoiceField(
        label="Devices to ask back",
        required=False,
        choices=Asset.Category.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every device in the member's custody.",
    )
    reminder_every_days = forms.IntegerField(
        label="Remind every (days)",
        initial=7,
        min_value=MIN_DAYS,
        max_value=MAX_DAYS,
        error_messages={
            "required": DAYS_MESSAGE,
            "invalid": DAYS_MESSAGE,
            "min_value": DAYS_MESSAGE,
            "max_value": DAYS_MESSAGE,
        },
        help_text="The member and their manager get a reminder this often until it is back.",
    )
    max_reminders = forms.IntegerField(
        label="Escalate after (reminders)",
        initial=3,
        min_value=MIN_REMINDERS,
        max_value=MAX_REMINDERS,
        error_messages={
            "required": REMINDERS_MESSAGE,
            "invalid": REMINDERS_MESSAGE,
            "min_value": REMINDERS_MESSAGE,
            "max_value": REMINDERS_MESSAGE,
        },
        help_text="0 escalates at the first due date, with no reminder.",
    )
    escalate_to = forms.CharField(
        label="Escalate to (addresses)",
        required=False,
        max_length=2000,
        widget=forms.TextInput(attrs={"placeholder": "it-ops@example.com, security@example.com"}),
        help_text="Separate addresses with commas.",
    )
    escalate_to_role = forms.ChoiceField(
        label="Escalate to (role)",
        required=False,
        choices=_role_choices,  # read when the card is rendered or checked, not at import
        help_text="Every user of the role.",
    )

    def clean_escalate_to(self) -> list[str]:
        addresses = _addresses(self.cleaned_data.get("escalate_to") or "")
        bad = []
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                bad.append(f"“{address[:254]}” is not a valid email address.")
        if bad:
            raise ValidationError(bad)
        return addresses

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if (
            "escalate_to" not in self.errors
            and "escalate_to_role" not in self.errors
            and not cleaned.get("escalate_to")
            and not cleaned.get("escalate_to_role")
        ):
            self.add_error("escalate_to", NO_ESCALATION_MESSAGE)
        return cleaned


@register
class DeviceReturnKind(ActionKind):
    key = "device_return"
    label = "Request the return of devices"
    description = "Email the member and their manager, remind them, escalate if nothing comes back."
    log_label = "Request device return"
    chip = "Device return"
    icon = "icon-return"
    target_noun = ("device return", "device returns")
    form_class = DeviceReturnForm
    builder_template = "automations/actions/device_return/builder.html"
    detail_template = "automations/actions/device_return/detail.html"
    log_template = "automations/actions/device_return/log.html"
    insights = {
        "requested": REQUESTED_INSIGHT,
        "no_device": NO_DEVICE_INSIGHT,
    }

    def default_config(self) -> dict[str, Any]:
        return {
            "categories": [],
            "reminder_every_days": 7,
            "max_reminders": 3,
            "escalate_to": [],
            "escalate_to_role": "",
        }

    def clean_config(self, config, *, previous):
        return config_errors(config)

    def form_initial(self, config):
        settings = normalised(config)
        return {**settings, "escalate_to": ", ".join(settings["escalate_to"])}

    def config_from_form(self, form):
        data = form.cleaned_data
        return {
            "categories": [c for c in Asset.Category.values if c in data["categories"]],
            "reminder_every_days": data["reminder_every_days"],
            "max_reminders": data["max_reminders"],
            "escalate_to": list(data["escalate_to"]),
            "escalate_to_role": data.get("escalate_to_role") or "",
        }

    def lenient_config(self, form):
        return normalised(super().lenient_config(form))

    def form_config(self, initial):
        return normalised(initial)

    def read(self, action):
        return normalised(action.config)

    def write(self, action, config):
        action.config = normalised(config)
        return None

    def summary(self, config):
        s = normalised(config)
        what = _join([PLURALS[c] for c in s["categories"]]) or "their devices"
        sentence = f"ask for the return of {what}"
        count = s["max_reminders"]
        if count:
            sentence += f", reminding every {s['reminder_every_days']} days"
        whom = list(s["escalate_to"])
        if s["escalate_to_role"]:
            whom.append(f"the {s['escalate_to_role']} role")
        if whom:
            when = (
                f"after {count} reminder{'s' if count != 1 else ''}"
                if count
                else f"after {s['reminder_every_days']} days"
            )
            sentence += f", escalating to {_join(whom)} {when}"
        return sentence

    def snapshot(self, config):
        s = normalised(config)
        return {
            "Return devices": ", ".join(Asset.Category(c).label for c in s["categories"])
            or "All devices",
            "Remind every": f"{s['reminder_every_days']} days",
            "Escalate after": f"{s['max_reminders']} reminders",
            "Escalate to": ", ".join(
                [
                    *s["escalate_to"],
                    *([f"role {s['escalate_to_role']}"] if s["escalate_to_role"] else []),
                ]
            ),
        }

    def admin_text(self, action):
        return "Request the return of " + self.summary(action.config).removeprefix(
            "ask for the return of "
        )

    def plan(self, *, items, context):
        return return_plan(items, context)

    def prepare(self, *, items, context):
        return returns_prepare_many(items=items, context=context)
