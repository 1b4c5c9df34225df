"""Assets (devices), their custody history, and the MDM connections that manage them."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower

from assetsonar import crypto
from assetsonar.links import pk_url


class MDMConnection(models.Model):
    """A connection to a mobile-device-management service, configured by an administrator.

    Credentials are stored encrypted (`credentials_encrypted`, a JSON object encrypted as a whole)
    and are never shown again once saved.
    """

    class Provider(models.TextChoices):
        JAMF = "jamf", "Jamf Pro"
        INTUNE = "intune", "Microsoft Intune"
        KANDJI = "kandji", "Kandji"
        SIMULATOR = "simulator", "Simulator (demo)"

    name = models.CharField(max_length=100, unique=True)
    provider = models.CharField(max_length=20, choices=Provider.choices)
    base_url = models.URLField(
        "base URL",
        blank=True,
        help_text="Jamf: https://yourcompany.jamfcloud.com · Kandji: https://yourcompany.api.kandji.io"
        " · Intune: https://graph.microsoft.com (default)",
    )
    credentials_encrypted = models.TextField(blank=True, editable=False)
    is_active = models.BooleanField(default=True)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_message = models.CharField(max_length=500, blank=True)
    max_concurrent_requests = models.PositiveSmallIntegerField(
        "simultaneous requests",
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(64)],
        help_text="The most requests in flight to this MDM at once, over all workers "
        "(assets/mdm/throttle.py). Jamf Pro asks for at most 5.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "MDM connection"
        ordering = ["name"]
        permissions = [
            ("execute_mdm_commands", "Can execute MDM commands (lock devices)"),
            ("view_unlock_pin", "Can view device unlock PINs"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_provider_display()})"

    def get_credentials(self) -> dict:
        import json

        raw = crypto.decrypt(self.credentials_encrypted)
        return json.loads(raw) if raw else {}

    def set_credentials(self, values: dict) -> None:
        import json

        self.credentials_encrypted = crypto.encrypt(json.dumps(values)) if values else ""

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials_encrypted)


# The statuses in which someone holds an asset: it has a custodian and an open custody record.
# Everything that means "held by someone" asks this (Asset.CUSTODY_STATUSES), not IN_CUSTODY alone.
CUSTODY_STATUSES = ("in_custody", "return_requested")


class Asset(models.Model):
    """A device. While `status` is "in custody" or "return requested" (CUSTODY_STATUSES) it has a
    custodian; otherwise none."""

    class Category(models.TextChoices):
        LAPTOP = "laptop", "Laptop"
        DESKTOP = "desktop", "Desktop"
        PHONE = "phone", "Phone"
        TABLET = "tablet", "Tablet"
        MONITOR = "monitor", "Monitor"
        OTHER = "other", "Other"

    class Platform(models.TextChoices):
        MACOS = "macos", "macOS"
        WINDOWS = "windows", "Windows"
        IOS = "ios", "iOS"
        IPADOS = "ipados", "iPadOS"
        ANDROID = "android", "Android"
        CHROMEOS = "chromeos", "ChromeOS"
        LINUX = "linux", "Linux"
        NONE = "none", "None"

    class Status(models.TextChoices):
        AVAILABLE = "available", "Available"
        IN_CUSTODY = "in_custody", "In custody"
        # Still in the custodian's custody (custodian and custody record unchanged), with an
        # open ReturnRequest: the device is on its way back (assets/returns.py).
        RETURN_REQUESTED = "return_requested", "Return requested"
        IN_REPAIR = "in_repair", "In repair"
        LOST = "lost", "Lost"
        RETIRED = "retired", "Retired"

    CUSTODY_STATUSES = CUSTODY_STATUSES

    class LockState(models.TextChoices):
        UNLOCKED = "unlocked", "Not locked"
        PENDING = "pending", "Lock pending"
        LOCKED = "locked", "Locked"
        FAILED = "failed", "Lock failed"

    # Unique case-insensitively (the constraint below); this index serves ordering and prefixes.
    asset_tag = models.CharField(max_length=40, db_index=True)
    name = models.CharField(max_length=150)
    category = models.CharField(max_length=20, choices=Category.choices, default=Category.LAPTOP)
    platform = models.CharField(max_length=20, choices=Platform.choices, default=Platform.NONE)
    manufacturer = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=100, blank=True)
    serial_number = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.AVAILABLE)
    custodian = models.ForeignKey(
        "members.Member",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="assets_in_custody",
    )
    mdm_connection = models.ForeignKey(
        MDMConnection,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="assets",
        verbose_name="MDM connection",
    )
    mdm_device_id = models.CharField(
        "MDM device ID", max_length=100, blank=True, help_text="The device's id in the MDM."
    )
    lock_state = models.CharField(
        max_length=20, choices=LockState.choices, default=LockState.UNLOCKED, editable=False
    )
    locked_at = models.DateTimeField(null=True, blank=True, editable=False)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["asset_tag"]
        constraints = [
            # Case-insensitive: "as-000030" beside "AS-000030" is the same label on a device, and
            # vendors print serials in either case. Migration 0002 resolved existing repeats.
            models.UniqueConstraint(
                Lower("asset_tag"),
                name="asset_tag_unique_ci",
                violation_error_message="Another asset already has this asset tag.",
            ),
            models.UniqueConstraint(
                Lower("serial_number"),
                condition=~models.Q(serial_number=""),
                name="asset_serial_unique_ci",
                violation_error_message="Another asset already has this serial number.",
            ),
            models.UniqueConstraint(
                fields=["mdm_connection", "mdm_device_id"],
                condition=~models.Q(mdm_device_id=""),
                name="asset_mdm_device_unique",
                violation_error_message=(
                    "Another asset is already enrolled with this MDM device ID."
                ),
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(status__in=CUSTODY_STATUSES, custodian__isnull=False)
                    | (~models.Q(status__in=CUSTODY_STATUSES) & models.Q(custodian__isnull=True))
                ),
                name="asset_custodian_iff_in_custody",
                violation_error_message="An asset has a custodian exactly when it is in custody.",
            ),
            models.CheckConstraint(
                condition=models.Q(mdm_connection__isnull=False) | models.Q(mdm_device_id=""),
                name="asset_mdm_device_needs_connection",
                violation_error_message="An MDM device ID needs an MDM connection.",
            ),
        ]
        indexes = [models.Index(fields=["status", "asset_tag"])]

    def __str__(self) -> str:
        return f"{self.asset_tag} · {self.name}"

    def get_absolute_url(self) -> str:
        return pk_url("assets:detail", self.pk)

    # What an MDM can lock: computers, phones and tablets with an operating system.
    LOCKABLE_CATEGORIES = frozenset({"laptop", "desktop", "phone", "tablet"})

    @property
    def is_lockable(self) -> bool:
        """A device an MDM lock applies to (not a monitor, an accessory, or one with no OS)."""
        return self.category in self.LOCKABLE_CATEGORIES and self.platform != self.Platform.NONE

    @property
    def is_held(self) -> bool:
        """Someone holds it (in custody, or in custody with a return requested)."""
        return self.status in self.CUSTODY_STATUSES

    @property
    def is_mdm_enrolled(self) -> bool:
        return self.mdm_connection_id is not None and bool(self.mdm_device_id)


class CustodyRecord(models.Model):
    """One check-out of an asset to a member, closed by its check-in. History is never deleted."""

    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="custody_records")
    member = models.ForeignKey(
        "members.Member", on_delete=models.PROTECT, related_name="custody_records"
    )
    checked_out_at = models.DateTimeField()
    checked_out_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    checked_in_at = models.DateTimeField(null=True, blank=True)
    checked_in_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-checked_out_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["asset"],
                condition=models.Q(checked_in_at__isnull=True),
                name="custody_one_open_record_per_asset",
            ),
        ]
        indexes = [models.Index(fields=["member", "-checked_out_at"])]

    def __str__(self) -> str:
        return f"{self.asset} → {self.member}"


class MDMCommand(models.Model):
    """A command sent (or to be sent) to a device through its MDM connection (the automations
    engine sends the locks; the asset page and the MDM admin read them).

        The unlock PIN is generated and stored (encrypted) before the command is sent and reused on
        retry, so the device and the record always agree.
    """

    class Kind(models.TextChoices):
        LOCK = "lock", "Lock device"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        FAILED = "failed", "Failed"

    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="mdm_commands")
    connection = models.ForeignKey(MDMConnection, on_delete=models.PROTECT, related_name="commands")
    # The automation's log of the lock (a string reference: assets imports nothing from
    # automations; the engine that writes these rows is above this app).
    log = models.OneToOneField(
        "automations.ActionLog",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="mdm_command",
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.LOCK)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    pin_encrypted = models.TextField(blank=True, editable=False)
    vendor_command_id = models.CharField(max_length=200, blank=True)
    message = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    response_excerpt = models.CharField(max_length=1024, blank=True)

    class Meta:
        # Created by the automations app; moved here (state only) so that assets/ reads it
        # without importing from automations/.
        db_table = "automations_mdmcommand"
        verbose_name = "MDM command"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["asset", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.asset_id}: {self.status}"

    # A device's lock while its command is in one of these: a second lock reuses it (and its
    # PIN) instead of sending another.
    LIVE_STATUSES = (Status.PENDING, Status.SENT, Status.ACKNOWLEDGED)

    @property
    def pin_on_device(self) -> bool:
        """Whether a PIN is stored and the device has it: the lock reached the MDM. A PIN kept
        for a lock that failed or was never sent (reused if it is tried again) is not shown."""
        return bool(self.pin_encrypted) and self.status in (
            self.Status.SENT,
            self.Status.ACKNOWLEDGED,
        )

    def get_pin(self) -> str:
        return crypto.decrypt(self.pin_encrypted)

    def set_pin(self, pin: str) -> None:
        self.pin_encrypted = crypto.encrypt(pin)


# --- Device returns (assets/returns.py) ------------------------------------------------------
# Kept in one block of its own.


class ReturnRequest(models.Model):
    """A request that a member hand back one device in their custody.

    Opened by `assets.returns.return_requests_open` (an automation's "Request the return of
    devices" action, usually): the asset goes to "return requested" and keeps its custodian. The
    member and their manager are told; reminders follow every `reminder_every_days` days until the
    device is checked in; after `max_reminders` reminders the request escalates once to
    `escalate_to_emails` and the users of the role `escalate_to_role`. Checking the asset in closes
    it; so do cancelling it and reactivating the member. At most one open request per asset.

    `source_execution_id` names the automation execution that opened it as a plain integer (no
    foreign key: assets sit below automations); `source_key` makes opening idempotent.
    """

    class ClosedReason(models.TextChoices):
        CHECKED_IN = "checked_in", "Checked in"
        CANCELLED = "cancelled", "Cancelled"
        MEMBER_REACTIVATED = "member_reactivated", "Member reactivated"

    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="return_requests")
    member = models.ForeignKey(
        "members.Member", on_delete=models.PROTECT, related_name="return_requests"
    )
    requested_at = models.DateTimeField()
    requested_by = models.CharField(max_length=150, blank=True, help_text="Who or what asked.")
    source_label = models.CharField(max_length=300, blank=True)
    source_key = models.CharField(max_length=200, blank=True, editable=False)
    source_execution_id = models.BigIntegerField(null=True, blank=True)
    reminder_every_days = models.PositiveSmallIntegerField(
        default=7, validators=[MinValueValidator(1), MaxValueValidator(365)]
    )
    max_reminders = models.PositiveSmallIntegerField(default=3, validators=[MaxValueValidator(50)])
    escalate_to_emails = models.JSONField(default=list, blank=True)
    escalate_to_role = models.CharField(max_length=150, blank=True)
    # Subject and body templates that replace the defaults, by "<kind>.<recipient>" (e.g.
    # "reminder.member"): the placeholder language of assetsonar/placeholders.py.
    messages = models.JSONField(default=dict, blank=True)
    reminders_sent = models.PositiveSmallIntegerField(default=0)
    last_reminded_at = models.DateTimeField(null=True, blank=True)
    # When the next reminder (or the escalation) is due; NULL once nothing more is due.
    next_reminder_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_reason = models.CharField(max_length=30, choices=ClosedReason.choices, blank=True)
    closed_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["asset"],
                condition=models.Q(closed_at__isnull=True),
                name="return_one_open_request_per_asset",
                violation_error_message="This asset already has an open return request.",
            ),
            models.UniqueConstraint(
                fields=["source_key"],
                condition=~models.Q(source_key=""),
                name="return_source_key_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(closed_at__isnull=True, closed_reason="")
                | (models.Q(closed_at__isnull=False) & ~models.Q(closed_reason="")),
                name="return_closed_has_reason",
            ),
        ]
        indexes = [
            # The sweep's due rows (returns_remind_due) and the dashboard's overdue count.
            models.Index(
                fields=["next_reminder_at"],
                condition=models.Q(closed_at__isnull=True),
                name="return_open_next_reminder",
            ),
            models.Index(
                fields=["-requested_at", "-id"],
                condition=models.Q(closed_at__isnull=True),
                name="return_open_by_requested",
            ),
            # The Returns view's "overdue" filter and the dashboard's count of overdue returns.
            models.Index(
                fields=["-requested_at", "-id"],
                condition=models.Q(closed_at__isnull=True)
                & (models.Q(reminders_sent__gt=0) | models.Q(escalated_at__isnull=False)),
                name="return_overdue_by_requested",
            ),
            models.Index(fields=["member", "-requested_at"], name="return_by_member"),
        ]

    def __str__(self) -> str:
        return f"Return of {self.asset_id} by {self.member_id}"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    # Open and past its first reminder, or escalated: as a query (selectors, dashboard).
    OVERDUE = models.Q(closed_at__isnull=True) & (
        models.Q(reminders_sent__gt=0) | models.Q(escalated_at__isnull=False)
    )

    @property
    def is_overdue(self) -> bool:
        """Open and past its first reminder (or escalated)."""
        return self.is_open and (self.reminders_sent > 0 or self.escalated_at is not None)


class ReturnMail(models.Model):
    """One email about device returns to one recipient: the outbox row of the notice, a
    reminder or the escalation. Written in the transaction that makes it due, sent after it
    (assets.returns.returns_send_pending); `key` is unique, so an email is made once and, once
    sent, never sent again. A temporary failure is retried by the next sweep; a permanent one is
    kept with the insight."""

    class Kind(models.TextChoices):
        NOTICE = "notice", "Return requested"
        REMINDER = "reminder", "Reminder"
        ESCALATION = "escalation", "Escalation"

    class Recipient(models.TextChoices):
        MEMBER = "member", "Member"
        MANAGER = "manager", "Manager"
        ESCALATION = "escalation", "Escalation contact"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Not sent"

    key = models.CharField(max_length=200, unique=True)
    # The first request the email is about (it lists every device of `request_ids`).
    request = models.ForeignKey(ReturnRequest, on_delete=models.CASCADE, related_name="mails")
    request_ids = models.JSONField(default=list)
    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    number = models.PositiveSmallIntegerField(default=0, help_text="The reminder's number.")
    recipient = models.CharField(max_length=20, choices=Recipient.choices)
    to = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=300)
    text = models.TextField()
    html = models.TextField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    insight = models.CharField(max_length=500, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(
                fields=["status", "id"],
                condition=models.Q(status__in=["pending", "sending"]),
                name="return_mail_unsent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.to or self.get_recipient_display()}"
