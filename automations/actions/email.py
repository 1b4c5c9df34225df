"""The "Send an email" action kind: one message to each recipient, written in the placeholder
language (`assetsonar.placeholders`) and sent through Django's email framework
(`assetsonar.mail`: SMTP when EMAIL_HOST is set, the console backend otherwise).

Settings (`config`): `manager` (bool), `member` ("" / "work" / "personal": personal email if
set, else the work email), `addresses` (a fixed list), `roles` (names of the portal's roles,
`assetsonar.roles`, resolved when the action runs to the active users' email addresses),
`subject` and `body` (templates; unknown placeholders and unbalanced braces are refused when
saved, with the list of known ones).

Each recipient is a target with its own ActionLog (target type "recipient"): its key is
`log_key(event, automation, action, "email:<address>")` and travels as the mail's
X-AssetSonar-Key header (the Message-ID is derived from it), so a task run twice finds the log
claimed and sends nothing twice. A recipient that cannot be resolved (no manager recorded, a
manager without an email address, a role nobody active holds) is a skipped log with the reason.

The message is rendered when the action is prepared, in the run's first transaction, and kept in
the log's detail: every retry sends exactly what the first attempt sent. `{{ licenses }}` lists
the seats the member held at the event: those still live and those the event's automations
revoked before the email was prepared, so the list is the same whether "Revoke licenses" stands
before or after the email in the automation.

Retries: a temporary failure (4xx reply, connection refused, reset, dropped or timed out) is
tried again on the EMAIL_RETRY_DELAYS schedule (django-q2 one-off schedules, as the webhook's);
a permanent one (5xx, bad address, TLS or sign-in problem) is not. A worker killed after the
server took the message and before the outcome was stored sends it again once its lease ends,
with the same Message-ID (at least once, as the webhook).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Q
from django.utils import timezone
from django.utils.safestring import mark_safe

from assetsonar import mail, placeholders, roles
from automations.actions.base import ActionKind, Target, register
from automations.engine.common import (
    Job,
    Prep,
    RunContext,
    attempts_in_round,
    log_begin,
    log_claim_many,
    log_finish,
    log_key,
    max_attempts,
    next_retry_at,
    schedule_retry,
    write_save,
)
from automations.models import ActionLog

TARGET_TYPE = "recipient"
MAX_ADDRESSES = 20
MAX_SUBJECT = 200
MAX_BODY = 10000
# The key's target part is the address itself while it is short printable ASCII (readable in
# the log and the header); otherwise a hash of it (log keys are at most 200 characters).
_PLAIN_ADDRESS = re.compile(r"[!-~]{1,100}")
ROLE_NAMES = [roles.IT_MANAGER, roles.MDM_OPERATOR, roles.SUPPORT_STAFF, roles.VIEWER]
MEMBER_CHOICES = [
    ("", "No"),
    ("work", "Work email"),
    ("personal", "Personal email if set, else work email"),
]

DEFAULT_SUBJECT = "{{ member.full_name }} has left: devices and licenses"
DEFAULT_BODY = (
    "Hello {{ member.manager.first_name }},\n\n"
    "{{ member.full_name }} ({{ member.title }}, {{ member.department }}) was deactivated: "
    "{{ member.deactivation_reason }}.\n\n"
    "Devices in their custody ({{ devices.count }}):\n{{ devices }}\n\n"
    "Licenses ({{ licenses.count }}):\n{{ licenses }}\n\n"
    "Details: {{ member.url }}\n"
)

REMOVED_INSIGHT = "The email was removed from the automation before it was sent."
NOT_RETRIED = " Not retried: the refusal is permanent."
INSIGHTS = {
    "removed": REMOVED_INSIGHT,
    "no_manager": "No manager recorded for {member}.",
    "manager_no_email": "The manager {manager} of {member} has no email address recorded.",
    "member_no_email": "{member} has no work email address recorded.",
    "role_empty": "No active user with an email address has the role “{role}”.",
    "not_retried": NOT_RETRIED,
}


@dataclasses.dataclass(frozen=True)
class Recipient:
    """One target of the email: an address, where it came from, or why there is none."""

    source: str  # "manager", "member", "address", "role:<name>"
    address: str = ""
    label: str = ""
    problem: str = ""


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def parse_addresses(raw: str | list | None) -> list[str]:
    """The addresses of the builder's list (commas, semicolons, spaces or line breaks between
    them), in order, without repeats (compared case-insensitively)."""
    if isinstance(raw, list):
        raw = "\n".join(str(a) for a in raw)
    seen: dict[str, str] = {}
    for part in re.split(r"[\s,;]+", raw or ""):
        if part and part.lower() not in seen:
            seen[part.lower()] = part
    return list(seen.values())


def address_errors(addresses: list[str]) -> list[str]:
    errors = [f"“{a[:254]}” is not a valid email address." for a in addresses if not _valid(a)]
    if len(addresses) > MAX_ADDRESSES:
        errors.append(f"An email can go to at most {MAX_ADDRESSES} fixed addresses.")
    return errors


def _valid(address: str) -> bool:
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True


def _has_recipient(config: dict[str, Any]) -> bool:
    return bool(
        config.get("manager")
        or config.get("member")
        or config.get("addresses")
        or config.get("roles")
    )


NO_RECIPIENT = (
    "Choose at least one recipient: the manager, the member, an address or the users of a role."
)


def _member_name(member) -> str:
    return member.full_name or member.email or f"member {member.pk}"


def resolve_recipients(member, config: dict[str, Any], *, role_users=None) -> list[Recipient]:
    """Who the email goes to for `member` now, in the settings' order (manager, member, fixed
    addresses, roles), one Recipient per address (repeats dropped) and one per problem.
    `role_users`: role name → emails, when the caller read them already."""
    out: list[Recipient] = []
    name = _member_name(member)
    if config.get("manager"):
        manager = member.manager
        if manager is None:
            out.append(Recipient("manager", problem=INSIGHTS["no_manager"].format(member=name)))
        elif not manager.email:
            out.append(
                Recipient(
                    "manager",
                    problem=INSIGHTS["manager_no_email"].format(
                        manager=_member_name(manager), member=name
                    ),
                )
            )
        else:
            out.append(Recipient("manager", manager.email, f"Manager {manager.full_name}"))
    which = config.get("member")
    if which:
        personal = getattr(member, "personal_email", "") if which == "personal" else ""
        if personal:
            out.append(Recipient("member", personal, f"{name} (personal)"))
        elif member.email:
            out.append(Recipient("member", member.email, name))
        else:
            out.append(Recipient("member", problem=INSIGHTS["member_no_email"].format(member=name)))
    for address in config.get("addresses") or []:
        out.append(Recipient("address", address, address))
    wanted = list(config.get("roles") or [])
    if wanted:
        if role_users is None:
            role_users = users_of_roles(wanted)
        for role in wanted:
            emails = role_users.get(role, [])
            if not emails:
                out.append(
                    Recipient(f"role:{role}", problem=INSIGHTS["role_empty"].format(role=role))
                )
            for address in emails:
                out.append(Recipient(f"role:{role}", address, f"{role}: {address}"))
    seen: set[str] = set()
    unique = []
    for recipient in out:
        if recipient.address:
            if recipient.address.lower() in seen:
                continue
            seen.add(recipient.address.lower())
        unique.append(recipient)
    return unique


def users_of_roles(names: list[str]) -> dict[str, list[str]]:
    """Role name → the email addresses of its active users (one query)."""
    from django.contrib.auth import get_user_model

    rows = (
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=names)
        .exclude(email="")
        .order_by("email")
        .values_list("groups__name", "email")
    )
    found: dict[str, list[str]] = {}
    for role, address in rows:
        found.setdefault(role, []).append(address)
    return found


def recipient_targets(member, config: dict[str, Any], *, role_users=None) -> list[Target]:
    """The target selection, shared by the engine (`email_prepare_many`) and the preview
    (`email_plan`): one Target per recipient (`resolve_recipients`), skipped with the reason
    when there is no address (no manager recorded, a role nobody active holds)."""
    targets = []
    for recipient in resolve_recipients(member, config, role_users=role_users):
        if recipient.address:
            label = recipient.address
        elif recipient.source == "manager":
            label = "Manager"
        elif recipient.source == "member":
            label = _member_name(member)
        else:
            label = recipient.source.replace("role:", "")
        targets.append(
            Target(
                recipient_target(recipient),
                label[:300],
                skip_reason=recipient.problem[:500],
                via=recipient.label,
                obj=recipient,
            )
        )
    return targets


def email_plan(items: list[Prep]) -> list[list[Target]]:
    """The preview of `email_prepare_many`: its recipients for each item's member now (two
    queries for all the items: the members with their managers, the users of the roles). The
    message itself is not rendered here (its template was checked when it was saved); what the
    mail server answers is known only once sent."""
    from members.models import Member

    members = Member.objects.select_related("manager").in_bulk(
        {item.event.member_id for item in items}
    )
    wanted_roles = sorted({r for item in items for r in item.action.config.get("roles") or []})
    role_users = users_of_roles(wanted_roles) if wanted_roles else {}
    return [
        recipient_targets(members[item.event.member_id], item.action.config, role_users=role_users)
        if item.event.member_id in members
        else []
        for item in items
    ]


def recipient_target(recipient: Recipient) -> str:
    """The target part of the log key."""
    if not recipient.address:
        return f"email:none:{recipient.source}"[:100]
    address = recipient.address.lower()
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"email:{address}"
    return "email:h:" + hashlib.sha256(address.encode()).hexdigest()[:40]


# --- Rendering --------------------------------------------------------------------------------


def event_context(member_id: int, event_id) -> placeholders.PlaceholderContext:
    """The member's placeholder context, its licenses being those held at the event: live ones
    and those revoked by this event's automations (see the module docstring)."""
    from licenses.models import Entitlement

    context = placeholders.member_context(member_id=member_id)
    revoked = ActionLog.objects.filter(
        execution__event_id=event_id,
        entitlement__isnull=False,
        status=ActionLog.Status.SUCCEEDED,
    ).values("entitlement_id")
    licenses = list(
        Entitlement.objects.filter(member_id=member_id)
        .filter(Q(revoked_at__isnull=True) | Q(pk__in=revoked))
        .select_related("license", "asset")
        .order_by("license__name", "id")
    )
    return dataclasses.replace(context, licenses=licenses)


def render(config: dict[str, Any], context) -> placeholders.RenderedMessage:
    return placeholders.render_message(
        subject=config.get("subject", ""), body=config.get("body", ""), context=context
    )


# --- Running ----------------------------------------------------------------------------------


def email_prepare_many(*, items: list[Prep], context: RunContext) -> list[Job]:
    """Claim one log per recipient of each item (unresolvable ones claimed skipped), render the
    message once per item, and return a Job for each log due now."""
    specs: list[dict[str, Any]] = []
    wanted_roles = sorted({r for item in items for r in item.action.config.get("roles") or []})
    role_users = users_of_roles(wanted_roles) if wanted_roles else {}
    for item in items:
        execution, action, event = item
        member_context = event_context(event.member_id, event.pk)
        targets = recipient_targets(member_context.member, action.config, role_users=role_users)
        message, broken = None, ""
        if any(t.obj.address for t in targets):
            try:
                message = render(action.config, member_context)
            except placeholders.PlaceholderError as exc:
                broken = (
                    f"The email's template cannot be rendered ({exc}): fix it in the automation."
                )
        for target in targets:
            recipient = target.obj
            spec = {
                "key": log_key(event.pk, execution.automation_id, action.pk, target.key),
                "execution": execution,
                "action": action,
                "action_kind": action.kind,
                "target_type": TARGET_TYPE,
                "target_label": target.label,
            }
            if recipient.address and broken:
                spec.update(
                    status=ActionLog.Status.FAILED,
                    insight=broken[:500],
                    finished_at=context.now,
                    detail={"to": recipient.address, "source": recipient.source},
                )
            elif recipient.address:
                spec["detail"] = {
                    "to": recipient.address,
                    "source": recipient.source,
                    "label": recipient.label,
                    "subject": message.subject,
                    "text": message.text,
                    "html": message.html,
                    "attempt_log": [],
                }
            else:
                spec.update(
                    status=ActionLog.Status.SKIPPED,
                    insight=target.skip_reason[:500],
                    finished_at=context.now,
                    detail={"source": recipient.source},
                )
            specs.append(spec)
    if not specs:
        return []
    logs = log_claim_many(specs)
    by_pk = {item.action.pk: item.action for item in items}
    return [
        email_job(log, interrupted, action=by_pk.get(log.action_id))
        for log, interrupted in log_begin(logs, context.now)
    ]


def email_job(log: ActionLog, interrupted: bool, *, action=None) -> Job | None:
    """The send of one started log, from the message stored in its detail."""
    if action is None:
        action = log.action
    if action is None:
        log_finish(log, ActionLog.Status.FAILED, REMOVED_INSIGHT)
        return None
    detail = log.detail

    def perform() -> mail.MailResult:
        return mail.send_message(
            to=detail.get("to", ""),
            subject=detail.get("subject", ""),
            text=detail.get("text", ""),
            html=detail.get("html"),
            key=log.key,
        )

    return Job(log=log, perform=perform, record=lambda result: _record(log, result))


def _record(log: ActionLog, result: mail.MailResult) -> None:
    """Store the attempt and move the log on: sent, retry later, or failed for good."""
    entry = {
        "number": log.attempts,
        "at": timezone.now().isoformat(timespec="seconds"),
        "outcome": str(result.outcome),
        "code": result.smtp_code,
        "insight": result.insight[:300],
        "duration_ms": result.duration_ms,
    }
    log.detail = {
        **log.detail,
        "message_id": result.message_id,
        "attempt_log": [*log.detail.get("attempt_log", []), entry],
    }
    write_save(log, ["detail"])
    if result.sent:
        log_finish(log, ActionLog.Status.SUCCEEDED, result.insight)
        return
    if not result.retry:
        log_finish(log, ActionLog.Status.FAILED, result.insight + NOT_RETRIED)
        return
    when = next_retry_at(log)
    if when is None:
        made = attempts_in_round(log)
        log_finish(
            log,
            ActionLog.Status.FAILED,
            f"{result.insight.removesuffix(' will retry.').rstrip(':')}. Gave up after {made} "
            "attempts; check the mail server, then use “Retry failed actions”.",
        )
        return
    log.status = ActionLog.Status.RETRYING
    log.next_attempt_at = when
    log.insight = (
        f"{result.insight} Attempt {attempts_in_round(log)} of {max_attempts(log.action_kind)}; "
        f"next try at {timezone.localtime(when):%H:%M:%S}."
    )[:500]
    log.save(update_fields=["status", "next_attempt_at", "insight", "detail"])
    schedule_retry(log, when)


# --- Settings: the builder card -----------------------------------------------------------------


class EmailForm(forms.Form):
    """Recipients, subject and body; `preview()` renders them on the sample member."""

    manager = forms.BooleanField(required=False, label="The member's manager")
    member = forms.ChoiceField(
        required=False, label="The member", choices=MEMBER_CHOICES, widget=forms.RadioSelect
    )
    addresses = forms.CharField(
        required=False,
        label="Fixed addresses",
        help_text=f"One per line or separated by commas, at most {MAX_ADDRESSES}.",
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "it-ops@example.com"}),
    )
    roles = forms.MultipleChoiceField(
        required=False,
        label="Users of a role",
        choices=[(name, name) for name in ROLE_NAMES],
        widget=forms.CheckboxSelectMultiple,
        help_text="Their active users' email addresses when the email is sent.",
    )
    subject = forms.CharField(
        label="Subject",
        required=False,
        max_length=MAX_SUBJECT,
        widget=forms.TextInput(attrs={"placeholder": DEFAULT_SUBJECT}),
    )
    body = forms.CharField(
        label="Body",
        required=False,
        max_length=MAX_BODY,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="Plain text; the HTML part is made from it (links, line breaks).",
    )

    def clean_addresses(self) -> list[str]:
        addresses = parse_addresses(self.cleaned_data.get("addresses"))
        errors = address_errors(addresses)
        if errors:
            raise ValidationError(errors)
        return addresses

    def clean_subject(self) -> str:
        subject = (self.cleaned_data.get("subject") or "").strip()
        if not subject:
            raise ValidationError("Enter the subject.")
        _placeholder_errors(subject)
        return subject

    def clean_body(self) -> str:
        body = self.cleaned_data.get("body") or ""
        if not body.strip():
            raise ValidationError("Enter the body of the email.")
        _placeholder_errors(body)
        return body

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "addresses" not in self.errors and not _has_recipient(cleaned):
            raise ValidationError(NO_RECIPIENT)
        return cleaned

    def preview(self) -> dict[str, Any]:
        """The message for the sample member, from what the card holds now (valid or not)."""
        if self.is_bound:
            subject = self.data.get(self.add_prefix("subject"), "")
            body = self.data.get(self.add_prefix("body"), "")
        else:
            subject = self.initial.get("subject", "")
            body = self.initial.get("body", "")
        problems = placeholders.validate(subject) + placeholders.validate(body)
        if problems:
            return {"problems": problems}
        context = placeholders.sample_context()
        message = placeholders.render_message(subject=subject, body=body, context=context)
        return {
            "subject": message.subject,
            "text": message.text,
            # Everything in it is escaped by the placeholder renderer (assetsonar/placeholders.py).
            "html": mark_safe(placeholders.render(body, context, html=True)),  # noqa: S308
        }

    def catalogue(self) -> list[dict[str, str]]:
        return placeholders.catalogue()


def _placeholder_errors(template: str) -> None:
    problems = placeholders.validate(template)
    if problems:
        raise ValidationError(problems)


def _config(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "manager": bool(raw.get("manager")),
        "member": raw.get("member") if raw.get("member") in ("work", "personal") else "",
        "addresses": parse_addresses(raw.get("addresses")),
        "roles": [r for r in raw.get("roles") or [] if r in ROLE_NAMES],
        "subject": raw.get("subject") or "",
        "body": raw.get("body") or "",
    }


@register
class EmailKind(ActionKind):
    key = "email"
    label = "Send an email"
    description = (
        "Tell the manager, the member, IT or a role, with the member's devices and licenses."
    )
    log_label = "Send an email"
    chip = "Email"
    icon = "icon-email"
    target_noun = ("email", "emails")
    form_class = EmailForm
    builder_template = "automations/actions/email/builder.html"
    detail_template = "automations/actions/email/detail.html"
    log_template = "automations/actions/email/log.html"
    target_types = {TARGET_TYPE: "Recipient"}
    insights = INSIGHTS
    retry_setting = "EMAIL_RETRY_DELAYS"

    def default_config(self) -> dict[str, Any]:
        return {
            "manager": True,
            "member": "",
            "addresses": [],
            "roles": [],
            "subject": DEFAULT_SUBJECT,
            "body": DEFAULT_BODY,
        }

    def clean_config(self, config, *, previous):
        errors: dict[str, list[str]] = {}
        for name in ("subject", "body"):
            if not (config.get(name) or "").strip():
                errors[name] = [f"Enter the {name} of the email."]
            else:
                problems = placeholders.validate(config[name])
                if problems:
                    errors[name] = problems
        problems = address_errors(list(config.get("addresses") or []))
        if problems:
            errors["addresses"] = problems
        unknown = [r for r in config.get("roles") or [] if r not in ROLE_NAMES]
        if unknown:
            errors["roles"] = [f"Unknown role: {', '.join(unknown)}."]
        if (config.get("member") or "") not in ("", "work", "personal"):
            errors["member"] = ["Choose the member's work or personal email, or neither."]
        if not _has_recipient(config):
            errors["__all__"] = [NO_RECIPIENT]
        return errors

    def form_initial(self, config):
        config = _config(config)
        return {**config, "addresses": "\n".join(config["addresses"])}

    def config_from_form(self, form):
        return _config(form.cleaned_data)

    def lenient_config(self, form):
        return _config(super().lenient_config(form))

    def form_config(self, initial):
        return _config(initial)

    def read(self, action):
        return _config(action.config)

    def write(self, action, config):
        action.config = _config(config)
        return None

    def summary(self, config):
        config = _config(config)
        parts = []
        if config["manager"]:
            parts.append("the manager")
        if config["member"] == "work":
            parts.append("the member")
        elif config["member"] == "personal":
            parts.append("the member (personal email if set)")
        parts += config["addresses"]
        parts += [f"the {role} role" for role in config["roles"]]
        return f"email {_join(parts)}" if parts else "send an email (no recipient chosen yet)"

    def snapshot(self, config):
        config = _config(config)
        return {
            "Email to": self.summary(config).removeprefix("email "),
            "Email subject": config["subject"],
            "Email body": config["body"],
        }

    def admin_text(self, action):
        config = _config(action.config)
        return f"{self.summary(config)} · subject: {config['subject']}"

    def plan(self, *, items, context):
        return email_plan(items)

    def prepare(self, *, items, context):
        return email_prepare_many(items=items, context=context)

    def resume(self, log, interrupted):
        return email_job(log, interrupted)
