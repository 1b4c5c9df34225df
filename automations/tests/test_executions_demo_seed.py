"""seed_automation_demo: the offboarding demo it adds, that running it again changes nothing, and
that deactivating a demo member then tells the whole story in the execution log."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from assets.models import Asset, MDMConnection, ReturnRequest
from assetsonar.models import PortalSettings
from automations.models import Automation, Execution
from automations.tests.engine_factories import use_sync_q
from conftest import make_asset, make_entitlement, make_license, make_member
from members.services import member_deactivate

pytestmark = pytest.mark.django_db


def _company():
    lena = make_member(full_name="Lena Leaver")
    laptops = [make_asset(custodian=lena) for _ in range(3)]
    make_asset(custodian=lena, category=Asset.Category.MONITOR, platform=Asset.Platform.NONE)
    make_entitlement(license=make_license(), member=lena)
    return lena, laptops


def test_seed_adds_connection_enrolments_automation_and_switches_mdm_on(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    _company()

    call_command("seed_automation_demo", stdout=StringIO())

    connection = MDMConnection.objects.get(name="Demo MDM (simulator)")
    assert connection.provider == MDMConnection.Provider.SIMULATOR
    enrolled = Asset.objects.filter(mdm_connection=connection)
    assert enrolled.count() >= 2
    assert all(a.mdm_device_id.startswith("sim-") for a in enrolled)
    assert not Asset.objects.filter(category=Asset.Category.MONITOR, mdm_connection__isnull=False)
    automation = Automation.objects.get(name="Offboard leavers")
    assert automation.enabled and automation.trigger_event == "member.deactivated"
    assert list(automation.actions.order_by("position").values_list("kind", flat=True)) == [
        "revoke_licenses",
        "mdm_lock",
        "webhook",
        "email",
        "device_return",
    ]
    assert automation.actions.get(kind="email").config["manager"] is True
    assert automation.actions.get(kind="webhook").get_secret().startswith("whsec_")
    assert automation.changes.count() == 1
    assert PortalSettings.load().mdm_commands_enabled


def test_seed_is_idempotent():
    _company()
    call_command("seed_automation_demo", stdout=StringIO())
    before = (
        list(Asset.objects.values_list("pk", "mdm_connection_id", "mdm_device_id")),
        list(Automation.objects.values_list("pk", "name")),
        MDMConnection.objects.count(),
    )

    call_command("seed_automation_demo", stdout=StringIO())

    after = (
        list(Asset.objects.values_list("pk", "mdm_connection_id", "mdm_device_id")),
        list(Automation.objects.values_list("pk", "name")),
        MDMConnection.objects.count(),
    )
    assert after == before


def test_deactivating_a_demo_member_revokes_locks_and_explains_the_refused_webhook(
    settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    use_sync_q(monkeypatch, settings)
    lena, laptops = _company()
    call_command("seed_automation_demo", stdout=StringIO())

    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=lena, actor=None, reason="Left the company")

    execution = Execution.objects.get(member=lena)
    statuses = dict(execution.logs.values_list("action_kind", "status").distinct())
    assert execution.status == Execution.Status.PARTIALLY_FAILED
    assert statuses["revoke_licenses"] == "succeeded"
    assert execution.logs.filter(action_kind="mdm_lock", status="succeeded").exists()
    assert statuses["webhook"] == "failed"
    assert "The URL was refused" in execution.insight
    assert "OUTBOUND_ALLOWED_NETWORKS" in execution.insight
    # The device return, after the other actions: the laptops asked back, not the monitor.
    returns = execution.logs.filter(action_kind="device_return")
    assert sorted(returns.values_list("asset_id", flat=True)) == sorted(a.pk for a in laptops)
    assert set(returns.values_list("status", flat=True)) == {"succeeded"}
    request = ReturnRequest.objects.filter(member=lena).first()
    assert (request.reminder_every_days, request.max_reminders) == (3, 2)
    assert request.escalate_to_role == "IT Manager"


def test_the_demo_emails_the_manager_and_prints_the_mail_when_no_mail_server_is_set(
    settings, monkeypatch, django_capture_on_commit_callbacks, capsys
):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    use_sync_q(monkeypatch, settings)
    lena, _ = _company()
    lena.manager = make_member(full_name="Max Manager", email="max.manager@example.com")
    lena.save(update_fields=["manager"])
    call_command("seed_automation_demo", stdout=StringIO())

    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=lena, actor=None, reason="Left the company")

    log = Execution.objects.get(member=lena).logs.get(action_kind="email")
    assert (log.status, log.target_label) == ("succeeded", "max.manager@example.com")
    assert log.insight.startswith("Printed to the worker's log for max.manager@example.com")
    out = capsys.readouterr().out
    assert "To: max.manager@example.com" in out
    assert "Subject: Lena Leaver has left: devices and licenses" in out
    assert "Hello Max," in out


def test_the_demo_email_to_a_member_without_manager_is_skipped_with_the_reason(
    settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    use_sync_q(monkeypatch, settings)
    lena, _ = _company()
    call_command("seed_automation_demo", stdout=StringIO())
    with django_capture_on_commit_callbacks(execute=True):
        member_deactivate(member=lena, actor=None, reason="Left the company")
    log = Execution.objects.get(member=lena).logs.get(action_kind="email")
    assert (log.status, log.insight) == ("skipped", "No manager recorded for Lena Leaver.")


def test_seed_plans_a_few_last_working_days_and_a_heads_up_automation():
    from datetime import timedelta

    from automations import lastday
    from automations.models import Action
    from members.models import Member
    from members.selectors import company_time_zone, company_today

    boss = make_member(full_name="Boss")
    staff = [make_member(full_name=f"Staff {n}", manager=boss) for n in range(50)]

    call_command("seed_automation_demo", stdout=StringIO())
    days = dict(
        Member.objects.filter(last_working_day__isnull=False).values_list("pk", "last_working_day")
    )
    call_command("seed_automation_demo", stdout=StringIO())  # a second run changes nothing

    today = company_today(company_time_zone())
    assert sorted(d - today for d in days.values()) == [
        timedelta(days=n) for n in (3, 5, 9, 14, 21, 28)
    ]
    assert set(days) <= {m.pk for m in staff}  # members with a manager to tell
    assert days == dict(
        Member.objects.filter(last_working_day__isnull=False).values_list("pk", "last_working_day")
    )
    heads_up = Automation.objects.get(name="Heads-up before the last day")
    assert heads_up.trigger_event == lastday.KEY
    assert heads_up.trigger_options == {"offset_days": -2, "at": "09:00"}
    (email,) = Action.objects.filter(automation=heads_up)
    assert email.kind == "email" and email.config["manager"] is True
    assert Automation.objects.filter(name="Heads-up before the last day").count() == 1
