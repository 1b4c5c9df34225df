"""Members are employee records (not portal logins)."""

from __future__ import annotations

import functools
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower, Trim, Upper

from assetsonar.links import pk_url


def validate_time_zone(value: str) -> None:
    """An IANA time zone name that zoneinfo knows ("Europe/Berlin"); blank is allowed."""
    if not value:
        return
    if value not in _zone_names():
        raise ValidationError(
            "“%(value)s” is not a time zone name; use an IANA name such as Europe/Berlin or "
            "America/New_York.",
            code="invalid_time_zone",
            params={"value": value},
        )


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def time_zone_choices() -> list[str]:
    """Every IANA zone name, sorted, for the member form's select."""
    return sorted(_zone_names())


def zone(name: str) -> ZoneInfo:
    """The ZoneInfo of a validated name; UTC for a name this machine's tz database lacks."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def day_end(day: date, time_zone: str) -> datetime:
    """The instant a calendar day ends in a zone: the next day's local midnight, as an aware
    datetime in that zone (23:00 UTC on 25 Oct 2026 in Europe/Berlin, a 25-hour day). Built from
    the next day's midnight, so a day of 23 or 25 hours ends when it really ends."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone(time_zone))


class MemberQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status=Member.Status.ACTIVE)

    def deactivated(self):
        return self.filter(status=Member.Status.DEACTIVATED)


class Member(models.Model):
    """An employee whose devices and software the IT team keeps track of.

    `status` changes only through `save()` (never `update()`), so the post_save receiver that turns
    a deactivation into an automation event sees every transition. `loaded_status` is the status
    the row had when it was read from the database, set in `from_db`.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DEACTIVATED = "deactivated", "Deactivated"

    class EmploymentType(models.TextChoices):
        FULL_TIME = "full_time", "Full-time"
        PART_TIME = "part_time", "Part-time"
        CONTRACTOR = "contractor", "Contractor"
        INTERN = "intern", "Intern"
        TEMPORARY = "temporary", "Temporary"

    full_name = models.CharField(max_length=150)
    email = models.EmailField(max_length=254)
    employee_id = models.CharField("employee ID", max_length=40, blank=True)
    department = models.CharField(max_length=100, blank=True, db_index=True)
    location = models.CharField(max_length=100, blank=True, db_index=True)
    title = models.CharField(max_length=150, blank=True)
    manager = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports"
    )
    employment_type = models.CharField(
        max_length=20, choices=EmploymentType.choices, default=EmploymentType.FULL_TIME
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    deactivated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    deactivation_reason = models.CharField(max_length=500, blank=True)
    # Who deactivated the member when it was not a portal user: "SCIM · Okta production". Kept
    # as text, like AuditEvent.actor_name, so it survives the token's deletion.
    deactivated_by_name = models.CharField(max_length=150, blank=True)
    # Identity-provider fields, written by SCIM provisioning (provisioning/): the IdP's own id
    # for the person, its login name when that is not the email address, and the name parts it
    # sends (full_name stays the name the portal shows).
    external_id = models.CharField("external ID", max_length=255, blank=True, db_index=True)
    scim_user_name = models.CharField("SCIM user name", max_length=254, blank=True)
    given_name = models.CharField(max_length=150, blank=True)
    family_name = models.CharField(max_length=150, blank=True)
    # Set by a SCIM DELETE: the member is deactivated and no longer served over SCIM (404), but
    # keeps their record, assets and history.
    scim_hidden_at = models.DateTimeField("hidden from SCIM at", null=True, blank=True)
    # Scheduled offboarding (README "Scheduled offboarding: the last working day").
    last_working_day = models.DateField(
        null=True,
        blank=True,
        help_text="The member's last day at work. Leave empty when no leave date is known.",
    )
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        validators=[validate_time_zone],
        help_text="Where the member works, for the end of their last working day. Leave empty "
        "for the company's time zone.",
    )
    deactivate_on_last_day = models.BooleanField(
        "deactivate at the end of the last working day",
        default=True,
        help_text="Deactivate the member automatically when their last working day ends in "
        "their time zone; the deactivation automations then run.",
    )
    personal_email = models.EmailField(
        "personal email",
        max_length=254,
        blank=True,
        help_text="A private address, e.g. for mail after the member has left. Optional.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Denormalised counts, kept by the services that change them (members/tallies.py) in the
    # same transaction, under the row lock of what changed: the list, its `holding=1` filter and
    # the dashboard read them instead of counting assets and entitlements per member. A plain
    # save() never writes them (see save()); `manage.py recount` recomputes them.
    assets_count = models.IntegerField(default=0, editable=False)
    live_entitlements_count = models.IntegerField(default=0, editable=False)

    objects = MemberQuerySet.as_manager()

    COUNTER_FIELDS = ("assets_count", "live_entitlements_count")

    # The status the row had when it was read (see from_db); None for a new, unsaved member.
    loaded_status: str | None = None

    class Meta:
        ordering = ["full_name", "id"]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                name="member_email_unique_ci",
                violation_error_message="Another member already has this email address.",
            ),
            models.UniqueConstraint(
                fields=["employee_id"],
                condition=~models.Q(employee_id=""),
                name="member_employee_id_unique",
                violation_error_message="Another member already has this employee ID.",
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(status="active", deactivated_at__isnull=True)
                    | models.Q(status="deactivated", deactivated_at__isnull=False)
                ),
                name="member_deactivated_at_matches_status",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["active", "deactivated"]), name="member_status_valid"
            ),
            models.UniqueConstraint(
                Lower("scim_user_name"),
                condition=~models.Q(scim_user_name=""),
                name="member_scim_user_name_unique_ci",
                violation_error_message="Another member already has this user name.",
            ),
        ]
        # Also, on PostgreSQL only: trigram GIN indexes on UPPER(full_name) and UPPER(email) for
        # the substring search, created in migration 0002 because SQLite cannot build them.
        indexes = [
            models.Index(fields=["status", "full_name"]),
            models.Index(Lower("email"), name="member_email_lower"),
            # The list by name (and a short term's prefix range). It carries the searched
            # columns, so the first page of a search walks the index alone (index-only, its
            # filter on the carried columns) and fetches only its 50 rows: at 1M members a
            # broad term ("patel", one in 40) read ~3,300 table pages for its 50 matches.
            # PostgreSQL only: SQLite ignores `include`.
            models.Index(
                Lower("full_name"),
                F("id"),
                name="member_name_search",
                include=["full_name", "email", "employee_id"],
            ),
            # One per ?sort= of the list (members/selectors.SORTS): the page, a keyset page beyond
            # the counted ones and a filter on the leading column are all range scans.
            models.Index(F("department"), Lower("full_name"), F("id"), name="member_dept_name"),
            models.Index(F("location"), Lower("full_name"), F("id"), name="member_loc_name"),
            # A department and a status together, by name (the list's filter bar): exact range
            # scans whatever the share of each status in the department.
            models.Index(
                F("department"),
                F("status"),
                Lower("full_name"),
                F("id"),
                name="member_dept_status_name",
            ),
            models.Index(F("status"), Lower("full_name"), F("id"), name="member_status_lname"),
            models.Index(fields=["created_at", "id"], name="member_created"),
            # ?holding=1 and the dashboard's "deactivated but still holding" (a small share).
            models.Index(
                Lower("full_name"),
                F("id"),
                name="member_holding_name",
                condition=Q(assets_count__gt=0) | Q(live_entitlements_count__gt=0),
            ),
            models.Index(
                F("deactivated_at").desc(),
                F("id").desc(),
                name="member_deactivated_holding",
                condition=Q(status="deactivated")
                & (Q(assets_count__gt=0) | Q(live_entitlements_count__gt=0)),
            ),
            # An automation's "Who it would run for now" (automations/conditions.condition_q):
            # department and location compared trimmed and case-insensitively.
            models.Index(Upper(Trim("department")), name="member_department_ci"),
            models.Index(Upper(Trim("location")), name="member_location_ci"),
            # SCIM filters: `name.familyName eq` and `meta.lastModified gt` (incremental sync).
            models.Index(Lower("family_name"), name="member_family_name_lower"),
            models.Index(fields=["updated_at", "id"], name="member_updated_at"),
            # Upcoming offboardings (a date range, sorted by date) and its dashboard card.
            models.Index(
                F("last_working_day"),
                Lower("full_name"),
                F("id"),
                name="member_last_day",
                condition=Q(last_working_day__isnull=False),
            ),
            # members_deactivate_due: the active members whose day may have ended, never a scan.
            models.Index(
                F("last_working_day"),
                name="member_last_day_due",
                condition=Q(status="active", deactivate_on_last_day=True)
                & Q(last_working_day__isnull=False),
            ),
        ]
        permissions = [("deactivate_member", "Can deactivate and reactivate members")]

    def __str__(self) -> str:
        return self.full_name

    def save(self, *args, **kwargs):
        # An instance read before a check-out or a revocation holds stale counts; saving it
        # whole would overwrite the fresh ones. Counts are only ever written by F() updates.
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name not in self.COUNTER_FIELDS
            ]
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return pk_url("members:detail", self.pk)

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        if "status" in field_names:
            instance.loaded_status = values[field_names.index("status")]
        return instance

    def refresh_from_db(self, using=None, fields=None, from_queryset=None):
        super().refresh_from_db(using=using, fields=fields, from_queryset=from_queryset)
        if fields is None or "status" in fields:
            self.loaded_status = self.status

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    def effective_time_zone(self, company_time_zone: str) -> str:
        """The member's own zone, or the company's when they have none."""
        return self.time_zone or company_time_zone

    def last_day_ends_at(self, company_time_zone: str) -> datetime | None:
        """When the last working day ends, in the member's zone; None without one."""
        if self.last_working_day is None:
            return None
        return day_end(self.last_working_day, self.effective_time_zone(company_time_zone))

    @property
    def email_domain(self) -> str:
        return self.email.rpartition("@")[2].lower()
