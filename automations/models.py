"""Automations (what should happen on a member event) and their executions (what did happen).

Builder side: Automation → Condition rows + Action rows (any kinds of automations.actions, in
the IT manager's order).
Engine side: Event (one per member status transition) → Execution (one per matching automation)
→ ActionLog (one per action and target, with an idempotency key) → WebhookAttempt / MDMCommand.
"""

from __future__ import annotations

import json
import uuid
from binascii import unhexlify
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.plugins.otp_totp.models import TOTPDevice, default_key

from assetsonar import crypto
from assetsonar.links import pk_url


class Automation(models.Model):
    """A rule an IT manager built: when <trigger> fires for a member matching <conditions>,
    run <actions>. The trigger is a (module, event) pair from `automations.triggers.REGISTRY`."""

    class Match(models.TextChoices):
        ALL = "all", "Match all conditions"
        ANY = "any", "Match any condition"

    name = models.CharField(max_length=150)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    trigger_module = models.CharField(max_length=40, default="members")
    trigger_event = models.CharField(max_length=60, default="member.deactivated", db_index=True)
    # The trigger's own settings, checked by its registry entry (`TriggerEvent.options`): the
    # last working day's {"offset_days": -2, "at": "09:00"}; {} for triggers without any.
    trigger_options = models.JSONField(default=dict, blank=True)
    match = models.CharField(max_length=3, choices=Match.choices, default=Match.ALL)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="automation_name_unique_ci",
                violation_error_message="An automation with this name already exists.",
            )
        ]
        indexes = [models.Index(fields=["trigger_event", "enabled"])]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return pk_url("automations:detail", self.pk)


class Condition(models.Model):
    """One "field operator value" row. Field and operator keys come from
    `automations.conditions.FIELDS`; `value` is JSON (a string, a number, or a list for
    "is any of")."""

    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="conditions")
    position = models.PositiveSmallIntegerField(default=0)
    field = models.CharField(max_length=40)
    operator = models.CharField(max_length=20)
    value = models.JSONField(default=None, null=True, blank=True)

    class Meta:
        ordering = ["automation", "position", "id"]

    def __str__(self) -> str:
        return f"{self.field} {self.operator} {self.value!r}"


def _kind_choices() -> list[tuple[str, str]]:
    # Read from the registry when asked (a callable, so migrations never embed the kinds).
    from automations.actions import kind_choices

    return kind_choices()


def _target_type_choices() -> list[tuple[str, str]]:
    # ActionLog.TargetType, and the target types action kinds add (ActionKind.target_types).
    from automations.actions import REGISTRY

    choices = dict(ActionLog.TargetType.choices)
    for kind in REGISTRY.values():
        choices.update(getattr(kind, "target_types", {}))
    return list(choices.items())


class Action(models.Model):
    """One action of an automation: a kind from `automations.actions.REGISTRY` and its settings.

    An automation may hold several actions of one kind (two webhooks: HR and ticketing), in the
    order the IT manager set (`position`): the order of the builder, the automation page, the
    execution log and the member's Automated actions panel, and the order the engine prepares
    them in. Device locks are still sent first, in a pool of their own (a slow webhook receiver
    must never delay a lock); among the other actions of one execution the order is also the
    order they are sent in (see engine/runner.py).

    - `config`: the kind's settings (JSON), never a secret;
    - `secrets_encrypted`: the kind's secret settings (the webhook's headers), one encrypted JSON
      object (assetsonar.crypto);
    - `secret_encrypted` … `previous_secret_until`: the signing secret of a kind that signs what
      it sends (the webhook), with the previous one during the grace period after a rotation;
    - `disabled_at`: set when the receiver said it is gone (a webhook's 410), until a new
      destination is saved;
    - `continue_on_error`: off means "stop the remaining actions of this automation if this one
      fails" (they are logged as skipped, naming this action);
    - `delay`: how long after the trigger it runs (zero: immediately; at most 365 days). A
      delayed action is logged as scheduled and run by django-q2's scheduler when due
      (engine/scheduled.py). A property of every kind, not of a kind's settings.
    """

    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="actions")
    kind = models.CharField(max_length=40, choices=_kind_choices)
    position = models.PositiveSmallIntegerField(default=0)
    continue_on_error = models.BooleanField(
        default=True,
        help_text="Off: if this action fails, the remaining actions of the automation are skipped.",
    )
    delay = models.DurationField(
        default=timedelta(0), help_text="How long after the trigger it runs (0: immediately)."
    )
    config = models.JSONField(default=dict, blank=True)
    secrets_encrypted = models.TextField(blank=True, editable=False)
    secret_encrypted = models.TextField(blank=True, editable=False)
    secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    # After a rotation the previous secret signs too (a second signature in the same header)
    # until this time, so receivers can switch over without rejecting deliveries.
    previous_secret_encrypted = models.TextField(blank=True, editable=False)
    previous_secret_until = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when the receiver answered 410 Gone."
    )

    class Meta:
        ordering = ["automation", "position", "id"]

    def __str__(self) -> str:
        return self.get_kind_display()

    @property
    def delay_label(self) -> str:
        """The delay in words: "immediately", "after 2 hours", "after 7 days"."""
        from automations import delays

        return delays.label(self.delay)

    @property
    def is_delayed(self) -> bool:
        return bool(self.delay and self.delay > timedelta(0))

    @property
    def kind_def(self):
        """The kind's plug-in (automations.actions.REGISTRY), or None for an unknown kind."""
        from automations.actions import get_kind

        return get_kind(self.kind)

    def get_secret_config(self) -> dict[str, Any]:
        raw = crypto.decrypt(self.secrets_encrypted)
        return json.loads(raw) if raw else {}

    def set_secret_config(self, values: dict[str, Any]) -> None:
        self.secrets_encrypted = crypto.encrypt(json.dumps(values)) if values else ""

    def get_secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted)

    def set_secret(self, secret: str) -> None:
        self.secret_encrypted = crypto.encrypt(secret)

    def previous_secret_signs(self, now: datetime | None = None) -> bool:
        """True while the grace period after a rotation lasts."""
        return bool(
            self.previous_secret_encrypted
            and self.previous_secret_until
            and self.previous_secret_until > (now or timezone.now())
        )

    def signing_secrets(self, now: datetime | None = None) -> list[str]:
        """The secrets a delivery is signed with: the current one, and the previous one during
        the grace period after a rotation."""
        secrets = [self.get_secret()] if self.secret_encrypted else []
        if secrets and self.previous_secret_signs(now):
            secrets.append(crypto.decrypt(self.previous_secret_encrypted))
        return secrets


def action_order_key() -> tuple:
    """ORDER BY expressions putting action logs in their actions' order (the builder's
    positions); logs of a deleted action last, in the order they were recorded."""
    return (models.F("action__position").asc(nulls_last=True), "action_id")


class AutomationChange(models.Model):
    """History of an automation: who created, changed, enabled, disabled or deleted it, and
    what changed (a JSON diff). Kept after the automation is deleted (automation set NULL)."""

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        CHANGED = "changed", "Changed"
        ENABLED = "enabled", "Enabled"
        DISABLED = "disabled", "Disabled"
        DUPLICATED = "duplicated", "Duplicated"
        DELETED = "deleted", "Deleted"
        SECRET_ROTATED = "secret_rotated", "Signing secret rotated"

    automation = models.ForeignKey(
        Automation, null=True, blank=True, on_delete=models.SET_NULL, related_name="changes"
    )
    automation_name = models.CharField(max_length=150)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)
    diff = models.JSONField(default=dict, blank=True)
    otp_verified = models.BooleanField(default=False)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.automation_name}: {self.get_kind_display()}"


class Event(models.Model):
    """A member status transition, written in the same transaction as the status change, or a
    timed trigger that came due ("Member's last working day", automations/lastday.py).

    A timed event names the one automation it is for (`automation`) and has a `key` (automation,
    member, day, offset), unique, so it fires once; its `occurred_at` is when it was due.

    `member_snapshot` is the member as it was at the event (conditions are evaluated against it).
    The dispatcher claims events; `attempts` counts task runs (committed before any side effect),
    so an event whose task keeps dying goes to the dead-letter state after MAX_ATTEMPTS.
    """

    MAX_ATTEMPTS = 5

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        DEAD = "dead", "Dead-lettered"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=60, db_index=True)
    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="events")
    occurred_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    member_snapshot = models.JSONField(default=dict)
    automation = models.ForeignKey(
        Automation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_dispatched_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [models.Index(fields=["status", "last_dispatched_at"])]

    def __str__(self) -> str:
        return f"{self.kind} · {self.member_id} · {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class Execution(models.Model):
    """One run of one automation for one event."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        # Nothing runs now, but delayed actions are due later (engine/scheduled.py).
        SCHEDULED = "scheduled", "Scheduled"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIALLY_FAILED = "partially_failed", "Partially failed"
        FAILED = "failed", "Failed"

    automation = models.ForeignKey(
        Automation, null=True, blank=True, on_delete=models.SET_NULL, related_name="executions"
    )
    automation_name = models.CharField(max_length=150)
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="executions")
    member = models.ForeignKey(
        "members.Member", on_delete=models.PROTECT, related_name="executions"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    insight = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "automation"], name="execution_once_per_event")
        ]
        indexes = [
            models.Index(fields=["status", "-created_at"]),
            models.Index(fields=["member", "-created_at"]),
            models.Index(fields=["automation", "-created_at"]),
            # The Executions list, and its keyset pages past the counted ones.
            models.Index(fields=["-created_at", "-id"], name="execution_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.automation_name} for {self.member_id} ({self.status})"

    def get_absolute_url(self) -> str:
        return pk_url("automations:execution_detail", self.pk)

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    @property
    def is_finished(self) -> bool:
        return self.status in (
            self.Status.SUCCEEDED,
            self.Status.PARTIALLY_FAILED,
            self.Status.FAILED,
        )


class ActionLog(models.Model):
    """One action on one target in one execution: an entitlement revoked, a device locked, a
    webhook delivered. `key` (event, automation, action, target) is claimed before acting, so a
    task that runs twice never acts twice.

    A delayed action has one more log per execution (target "scheduled"): scheduled until
    `due_at`, then succeeded ("Ran at …", how late) when its run started, or cancelled (the
    member was reactivated, or someone cancelled it) — see engine/scheduled.py."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Waiting to retry"
        SCHEDULED = "scheduled", "Scheduled"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        CANCELLED = "cancelled", "Cancelled"

    class TargetType(models.TextChoices):
        ENTITLEMENT = "entitlement", "Entitlement"
        ASSET = "asset", "Device"
        WEBHOOK = "webhook", "Webhook"
        MEMBER = "member", "Member"
        # A delayed action's scheduled run (engine/scheduled.py).
        SCHEDULE = "schedule", "Scheduled run"

    key = models.CharField(max_length=200, unique=True)
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="logs")
    action = models.ForeignKey(
        Action, null=True, blank=True, on_delete=models.SET_NULL, related_name="logs"
    )
    action_kind = models.CharField(max_length=40, choices=_kind_choices)
    target_type = models.CharField(max_length=20, choices=_target_type_choices)
    target_label = models.CharField(max_length=300)
    entitlement = models.ForeignKey(
        "licenses.Entitlement",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="action_logs",
    )
    asset = models.ForeignKey(
        "assets.Asset", null=True, blank=True, on_delete=models.PROTECT, related_name="action_logs"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    insight = models.CharField(max_length=500, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A delayed action's scheduled log: when it is due (the event's time + the delay).
    due_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["execution", "id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["status", "due_at"], name="actionlog_due"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_kind_display()} → {self.target_label}: {self.status}"


class WebhookAttempt(models.Model):
    """One HTTP attempt of a webhook delivery (the ActionLog is the delivery)."""

    log = models.ForeignKey(ActionLog, on_delete=models.CASCADE, related_name="webhook_attempts")
    number = models.PositiveSmallIntegerField()
    at = models.DateTimeField(auto_now_add=True)
    url = models.URLField(max_length=500)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    request_headers = models.JSONField(default=dict, blank=True, help_text="Secrets redacted.")
    response_headers = models.JSONField(default=dict, blank=True, help_text="Secrets redacted.")
    response_excerpt = models.CharField(max_length=1024, blank=True)

    class Meta:
        ordering = ["log", "number"]
        constraints = [
            models.UniqueConstraint(fields=["log", "number"], name="webhook_attempt_number_unique")
        ]

    def __str__(self) -> str:
        return f"Attempt {self.number}: {self.status_code or self.error}"


def new_encrypted_key() -> str:
    """A fresh TOTP secret (20 random bytes, hex, as django-otp makes them), encrypted."""
    return crypto.encrypt(default_key())


class AuthenticatorDevice(TimestampMixin, ThrottlingMixin, Device):
    """A user's authenticator app (TOTP), with its shared secret encrypted at rest.

    django-otp's own TOTPDevice keeps the secret as plain hex in `key`; this model has the same
    fields and behaviour except that the hex secret is Fernet-encrypted in `key_encrypted`
    (`assetsonar.crypto`, so FIELD_ENCRYPTION_KEYS rotation applies) and only `bin_key` decrypts
    it. The algorithm is not rewritten: `verify_token` (tolerance, `last_t` replay protection,
    drift sync, throttling), `config_url` and the throttle factor are TOTPDevice's own functions,
    which read the secret only through `bin_key`. Being a `Device` in an installed app, it is
    seen by django-otp's OTPMiddleware, `devices_for_user` and `match_token`.
    """

    key_encrypted = models.TextField(editable=False, default=new_encrypted_key)
    step = models.PositiveSmallIntegerField(default=30, help_text="The time step in seconds.")
    t0 = models.BigIntegerField(
        default=0, help_text="The Unix time at which to begin counting steps."
    )
    digits = models.PositiveSmallIntegerField(
        choices=[(6, 6), (8, 8)], default=6, help_text="The number of digits to expect in a token."
    )
    tolerance = models.PositiveSmallIntegerField(
        default=1, help_text="The number of time steps in the past or future to allow."
    )
    drift = models.SmallIntegerField(
        default=0,
        help_text="The number of time steps the prover is known to deviate from our clock.",
    )
    last_t = models.BigIntegerField(
        default=-1,
        help_text="The time step of the latest verified token; the next must be at a later one.",
    )

    class Meta(Device.Meta):
        verbose_name = "authenticator app"

    @property
    def bin_key(self) -> bytes:
        """The secret as bytes, decrypted on every use and never kept on the instance."""
        return unhexlify(crypto.decrypt(self.key_encrypted))

    verify_token = TOTPDevice.verify_token
    get_throttle_factor = TOTPDevice.get_throttle_factor
    config_url = TOTPDevice.config_url
    _read_str_from_settings = TOTPDevice._read_str_from_settings


# --- Approvals (the "Require approval" action kind, automations/actions/approval.py) ---------


class Approval(models.Model):
    """One request for a person's decision: a "Require approval" step of one execution, which
    holds the actions after it (the engine's held logs) until an approver decides, the request
    expires (`expires_at`) or the member is reactivated (cancelled). `approvers` is who may
    decide, resolved when the step ran; `needs_mdm`: a held action locks devices, so approving
    needs the MDM permission and a one-time password."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for a decision"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="approvals")
    action = models.ForeignKey(
        Action, null=True, blank=True, on_delete=models.SET_NULL, related_name="approvals"
    )
    # The approval step's own log (target type "approval").
    log = models.OneToOneField(
        ActionLog, null=True, blank=True, on_delete=models.SET_NULL, related_name="approval"
    )
    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="approvals")
    approvers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="approvals_to_decide", blank=True
    )
    note = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    requested_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="approvals_decided",
    )
    decided_by_name = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(max_length=1000, blank=True)
    needs_mdm = models.BooleanField(default=False)
    # user id → the Message-ID of the mail sent to that approver (nothing is mailed twice).
    notified = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "action"], name="approval_once_per_step")
        ]
        indexes = [models.Index(fields=["status", "-requested_at"])]
        permissions = [
            ("decide_approval", "Can see the Approvals inbox of every approval request"),
        ]

    def __str__(self) -> str:
        return f"Approval {self.pk} for {self.member_id} ({self.status})"

    def get_absolute_url(self) -> str:
        return pk_url("automations:approval_detail", self.pk)

    @property
    def is_pending(self) -> bool:
        return self.status == self.Status.PENDING
