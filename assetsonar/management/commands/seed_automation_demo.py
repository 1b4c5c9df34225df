"""Demo data for offboarding: an MDM simulator connection with most devices enrolled, the
automation "Offboard leavers" with the seed's three actions and an email to the member's manager,
and MDM commands switched on, so that deactivating any demo member shows the whole story (licenses
revoked, devices locked, a webhook attempted, the manager told, everything in the execution log,
on the member and on the asset). Also a "Member's last working day" automation, "Heads-up before
the last day" (the manager is emailed two days before, at 09:00 the member's time), and six
active members with a last working day 3 to 28 days ahead, so Upcoming offboardings shows what
will run and when.

The email. Without EMAIL_HOST the portal uses Django's console backend, so the demo's mails are
printed to the output of `manage.py worker` (the process that runs the automations) and the log
says "Printed to the worker's log … not sent". A member without a manager gets a skipped row
"No manager recorded for …". An "Offboard leavers" automation made by an earlier version of this
command is left as it is (no email is added to it).

    manage.py seed_automation_demo                        # after seed_demo; safe to run again
    manage.py seed_automation_demo --webhook-url https://hooks.example.com/offboarding

The webhook. The demo has no HR system to call, and the portal refuses (SSRF protection) to send
to its own machine unless an administrator allows the network (OUTBOUND_ALLOWED_NETWORKS). So the
demo webhook points at the portal's own address, and its delivery fails at once, not after hours
of retries, with the insight "The URL was refused: “127.0.0.1” resolves to 127.0.0.1, a …
loopback … address …". The other actions are independent of it: the execution ends "Partially
failed" with the licenses revoked and the devices locked, which also shows the failure insight
and the "Retry failed actions" button. Give a real receiver with --webhook-url (or in the
builder) to see a delivery succeed.

Idempotent: the connection, the enrolments and the automation are created only where missing;
an automation someone already edited is left as it is. Rows are written directly (like
seed_demo): the builder's service would, rightly, refuse the loopback URL and ask for a one-time
password for the device lock, neither of which a seed can give.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from assets.models import Asset, MDMConnection
from assetsonar import roles
from assetsonar.models import PortalSettings
from automations import services
from automations.actions import REGISTRY, ActionSpec
from automations.models import Action, Automation, AutomationChange
from automations.triggers import MEMBER_DEACTIVATED, MEMBER_LAST_WORKING_DAY
from members.models import Member

CONNECTION_NAME = "Demo MDM (simulator)"
AUTOMATION_NAME = "Offboard leavers"
DEFAULT_WEBHOOK_URL = "http://127.0.0.1:8000/hooks/hr-offboarding"
LOCK_MESSAGE = "This device belongs to Northwind. It was locked because its user left: call IT."
LOCK_PHONE = "+1 555 0100"
LOCKABLE_CATEGORIES = [Asset.Category.LAPTOP, Asset.Category.PHONE, Asset.Category.TABLET]
LOCKABLE_PLATFORMS = [
    Asset.Platform.MACOS,
    Asset.Platform.WINDOWS,
    Asset.Platform.IOS,
    Asset.Platform.IPADOS,
    Asset.Platform.ANDROID,
]
HEADS_UP_NAME = "Heads-up before the last day"
# Days from today of the demo leavers' last working days.
LEAVER_DAYS_AHEAD = (3, 5, 9, 14, 21, 28)
HEADS_UP_EMAIL = {
    "manager": True,
    "member": "",
    "addresses": [],
    "roles": [],
    "subject": "{{ member.full_name }} leaves on {{ member.last_working_day }}",
    "body": (
        "Hello {{ member.manager.first_name }},\n\n"
        "{{ member.full_name }}'s last working day is {{ member.last_working_day }}. Please "
        "collect these devices on that day ({{ devices.count }}):\n{{ devices }}\n\n"
        "Details: {{ member.url }}\n"
    ),
}

DEMO_EMAIL = {
    "manager": True,
    "member": "",
    "addresses": [],
    "roles": [],
    "subject": "{{ member.full_name }} has left: devices and licenses",
    "body": (
        "Hello {{ member.manager.first_name }},\n\n"
        "{{ member.full_name }} ({{ member.title }}, {{ member.department }}) was deactivated "
        "in AssetSonar: {{ member.deactivation_reason }}.\n\n"
        "Their licenses were revoked and their devices locked. Please collect these devices "
        "({{ devices.count }}):\n{{ devices }}\n\n"
        "Licenses they held ({{ licenses.count }}):\n{{ licenses }}\n\n"
        "Details: {{ member.url }}\n"
    ),
}
# One lockable device in this many stays unenrolled, so the demo also shows the "Device is not
# enrolled in an MDM" insight.
UNENROLLED_EVERY = 8


class Command(BaseCommand):
    help = (
        "Add the offboarding demo: an MDM simulator connection with enrolled devices, the "
        '"Offboard leavers" automation (licenses, lock, webhook, email to the manager), and MDM '
        "commands switched on."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--webhook-url",
            default=DEFAULT_WEBHOOK_URL,
            help="Where the demo automation's webhook goes (default: the portal itself, which "
            "the SSRF protection refuses, so the delivery fails with a clear insight).",
        )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        connection = self._connection()
        enrolled = self._enrol(connection)
        automation, created = self._automation(options["webhook_url"])
        heads_up = self._heads_up()
        leaving = self._leavers()
        portal = PortalSettings.load()
        if not portal.mdm_commands_enabled:
            portal.mdm_commands_enabled = True
            portal.save()
        self.stdout.write(
            f"Offboarding demo: MDM connection “{connection.name}”, {enrolled} device"
            f"{'s' if enrolled != 1 else ''} newly enrolled, automation “{automation.name}” "
            f"{'created' if created else 'already there'}, MDM commands on; “{heads_up.name}” "
            f"for {leaving} member{'s' if leaving != 1 else ''} with a last working day ahead."
        )

    def _connection(self) -> MDMConnection:
        """The demo's simulator connection: an existing simulator (seed_demo makes one) or a
        new one."""
        connection = (
            MDMConnection.objects.filter(provider=MDMConnection.Provider.SIMULATOR, is_active=True)
            .order_by("pk")
            .first()
        )
        if connection is None:
            connection, _ = MDMConnection.objects.get_or_create(
                name=CONNECTION_NAME,
                defaults={"provider": MDMConnection.Provider.SIMULATOR, "is_active": True},
            )
        return connection

    def _enrol(self, connection: MDMConnection) -> int:
        """Enrol the laptops, phones and tablets in custody that no MDM manages yet, but one in
        UNENROLLED_EVERY."""
        candidates = list(
            Asset.objects.filter(
                status=Asset.Status.IN_CUSTODY,
                mdm_connection__isnull=True,
                category__in=LOCKABLE_CATEGORIES,
                platform__in=LOCKABLE_PLATFORMS,
            ).order_by("pk")
        )
        chosen = [asset for asset in candidates if asset.pk % UNENROLLED_EVERY]
        for asset in chosen:
            asset.mdm_connection = connection
            asset.mdm_device_id = f"sim-{asset.asset_tag.lower()}"
        Asset.objects.bulk_update(chosen, ["mdm_connection", "mdm_device_id"], batch_size=1000)
        return len(chosen)

    def _heads_up(self) -> Automation:
        """A "Member's last working day" automation: the manager is told two days before, at
        09:00 the member's time (Upcoming offboardings and the member page show it planned)."""
        existing = Automation.objects.filter(name__iexact=HEADS_UP_NAME).first()
        if existing is not None:
            return existing
        spec = services.AutomationSpec(
            name=HEADS_UP_NAME,
            description="Two days before a leaver's last day: tell their manager what to collect.",
            trigger_module="members",
            trigger_event=MEMBER_LAST_WORKING_DAY,
            trigger_options={"offset_days": -2, "at": "09:00"},
            actions=(ActionSpec("email", HEADS_UP_EMAIL),),
        )
        return write_spec(spec)

    def _leavers(self) -> int:
        """Give a few active members a last working day in the coming weeks (only when nobody
        has one yet, so a second run changes nothing). Returns how many have one ahead."""
        from members.selectors import company_time_zone, company_today

        today = company_today(company_time_zone())
        ahead = Member.objects.filter(status=Member.Status.ACTIVE, last_working_day__gte=today)
        if not ahead.exists():
            chosen = list(
                Member.objects.filter(status=Member.Status.ACTIVE, manager__isnull=False)
                .order_by("pk")
                .values_list("pk", flat=True)[: len(LEAVER_DAYS_AHEAD) * 7 : 7]
            )
            for pk, days in zip(chosen, LEAVER_DAYS_AHEAD, strict=False):
                Member.objects.filter(pk=pk).update(last_working_day=today + timedelta(days=days))
        return ahead.count()

    def _automation(self, webhook_url: str) -> tuple[Automation, bool]:
        existing = Automation.objects.filter(name__iexact=AUTOMATION_NAME).first()
        if existing is not None:
            return existing, False
        spec = services.AutomationSpec(
            name=AUTOMATION_NAME,
            description=(
                "When anyone leaves: take back every license seat, lock their devices through "
                "the MDM, and tell the HR system."
            ),
            trigger_module="members",
            trigger_event=MEMBER_DEACTIVATED,
            # Licenses first, then the lock, then the webhook, then the manager's email.
            actions=(
                ActionSpec(
                    "revoke_licenses",
                    {"user_based": True, "user_machine": True, "device_based": True},
                ),
                ActionSpec("mdm_lock", {"message": LOCK_MESSAGE, "phone": LOCK_PHONE}),
                ActionSpec("webhook", {"url": webhook_url, "method": "POST", "headers": {}}),
                ActionSpec("email", DEMO_EMAIL),
            ),
        )
        # Device returns (issue 9), after the actions above: ask for the laptops and phones
        # back, a reminder every 3 days, the IT Manager role told after 2 reminders.
        spec = replace(
            spec,
            actions=(
                *spec.actions,
                ActionSpec(
                    "device_return",
                    {
                        "categories": [Asset.Category.LAPTOP, Asset.Category.PHONE],
                        "reminder_every_days": 3,
                        "max_reminders": 2,
                        "escalate_to": [],
                        "escalate_to_role": roles.IT_MANAGER,
                    },
                ),
            ),
        )
        return write_spec(spec), True


def write_spec(spec: services.AutomationSpec) -> Automation:
    """Write a demo automation with its actions and its "created" history row. Written here
    rather than by automation_create: the demo has no user to pass the MDM gate and its
    one-time password."""
    automation = Automation.objects.create(
        name=spec.name,
        description=spec.description,
        trigger_module=spec.trigger_module,
        trigger_event=spec.trigger_event,
        trigger_options=spec.trigger_options,
    )
    for position, item in enumerate(spec.actions):
        action = Action(automation=automation, kind=item.kind, position=position)
        REGISTRY[item.kind].write(action, item.config)
        action.save()
    AutomationChange.objects.create(
        automation=automation,
        automation_name=automation.name,
        kind=AutomationChange.Kind.CREATED,
        diff=services.diff(None, spec),
    )
    return automation
