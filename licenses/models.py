"""Software licenses and the entitlements that give their seats to members and devices."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from assetsonar.links import pk_url


class License(models.Model):
    """A software license with a number of seats. Seats used are the live entitlements."""

    class Kind(models.TextChoices):
        USER = "user", "User-based"
        CLOUD = "cloud", "Cloud user-based (SaaS)"
        DEVICE = "device", "Device-based"

    name = models.CharField("software name", max_length=150)
    vendor = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.USER)
    seats = models.PositiveIntegerField(help_text="How many entitlements the license allows.")
    expires_on = models.DateField(null=True, blank=True)
    cost = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text="Annual cost."
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Live entitlements, kept by the services that give and revoke them (licenses/tallies.py)
    # in the same transaction, under this row's lock: the biggest license has as many as there
    # are members. A plain save() never writes it; `manage.py recount` recomputes it.
    seats_used = models.IntegerField(default=0, editable=False)

    COUNTER_FIELDS = ("seats_used",)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["name", "vendor"],
                name="license_name_vendor_unique",
                violation_error_message="A license with this name and vendor already exists.",
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=["user", "cloud", "device"]), name="license_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        # As Member.save(): a stale instance must not overwrite the count.
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name not in self.COUNTER_FIELDS
            ]
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return pk_url("licenses:detail", self.pk)

    @property
    def is_user_based(self) -> bool:
        return self.kind in (self.Kind.USER, self.Kind.CLOUD)


class EntitlementQuerySet(models.QuerySet):
    def live(self):
        return self.filter(revoked_at__isnull=True)


class Entitlement(models.Model):
    """A license seat given to a member (user-based and cloud), to an asset (device-based), or to
    a member on a specific asset (user-machine). Revoked, never deleted: the history stays.
    """

    class Target(models.TextChoices):
        USER = "user", "Member"
        DEVICE = "device", "Device"
        USER_MACHINE = "user_machine", "Member on a device"

    license = models.ForeignKey(License, on_delete=models.PROTECT, related_name="entitlements")
    member = models.ForeignKey(
        "members.Member",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="entitlements",
    )
    asset = models.ForeignKey(
        "assets.Asset", null=True, blank=True, on_delete=models.PROTECT, related_name="entitlements"
    )
    assigned_at = models.DateTimeField()
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_reason = models.CharField(max_length=500, blank=True)

    objects = EntitlementQuerySet.as_manager()

    class Meta:
        ordering = ["-assigned_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(member__isnull=False) | models.Q(asset__isnull=False),
                name="entitlement_has_target",
                violation_error_message="An entitlement needs a member, a device, or both.",
            ),
            models.UniqueConstraint(
                fields=["license", "member"],
                condition=models.Q(revoked_at__isnull=True, asset__isnull=True),
                name="entitlement_live_user_unique",
                violation_error_message="This member already holds this license.",
            ),
            models.UniqueConstraint(
                fields=["license", "asset"],
                condition=models.Q(revoked_at__isnull=True, member__isnull=True),
                name="entitlement_live_device_unique",
                violation_error_message="This device already holds this license.",
            ),
            models.UniqueConstraint(
                fields=["license", "member", "asset"],
                condition=models.Q(
                    revoked_at__isnull=True, member__isnull=False, asset__isnull=False
                ),
                name="entitlement_live_user_machine_unique",
                violation_error_message="This member already holds this license on this device.",
            ),
        ]
        indexes = [
            # Seat counts and the license page's live list: an index-only scan of one license's
            # live rows, newest first, whatever the number of revoked ones.
            models.Index(
                fields=["license", "-id"],
                condition=models.Q(revoked_at__isnull=True),
                name="entitlement_live_by_license",
            ),
            # The license page's revoked history, newest first: the id settles rows revoked in
            # the same instant (a bulk revocation) without sorting them.
            models.Index(
                fields=["license", "-revoked_at", "-id"],
                condition=models.Q(revoked_at__isnull=False),
                name="entitlement_revoked_by_license",
            ),
            models.Index(fields=["license", "revoked_at"]),
            models.Index(fields=["member", "revoked_at"]),
            models.Index(fields=["asset", "revoked_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.license} → {self.target_label}"

    @property
    def target(self) -> str:
        if self.member_id and self.asset_id:
            return self.Target.USER_MACHINE
        return self.Target.USER if self.member_id else self.Target.DEVICE

    @property
    def target_label(self) -> str:
        if self.member_id and self.asset_id:
            return f"{self.member} on {self.asset}"
        return str(self.member if self.member_id else self.asset)

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None
