"""Assets (devices), their custody history, and the MDM connections that manage them."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse

from assetsonar import crypto


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


class Asset(models.Model):
    """A device. While `status` is "in custody" it has a custodian; otherwise none."""

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
        IN_REPAIR = "in_repair", "In repair"
        LOST = "lost", "Lost"
        RETIRED = "retired", "Retired"

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
                    models.Q(status="in_custody", custodian__isnull=False)
                    | (~models.Q(status="in_custody") & models.Q(custodian__isnull=True))
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
        return reverse("assets:detail", args=[self.pk])

    # What an MDM can lock: computers, phones and tablets with an operating system.
    LOCKABLE_CATEGORIES = frozenset({"laptop", "desktop", "phone", "tablet"})

    @property
    def is_lockable(self) -> bool:
        """A device an MDM lock applies to (not a monitor, an accessory, or one with no OS)."""
        return self.category in self.LOCKABLE_CATEGORIES and self.platform != self.Platform.NONE

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
