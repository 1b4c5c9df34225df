"""Scheduled actions on the pages: the execution page and the member's Automated actions panel
say "Revoke licenses: scheduled for …" (the user's date format); "Run now" and "Cancel" on the
execution page for who may retry (403 otherwise), a device lock with the MDM permission, the MDM
feature and a one-time password as "Retry failed actions" asks; audited with who did it; and the
execution page's query budget with scheduled logs at two sizes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from assets.models import Asset
from assetsonar import roles
from assetsonar.locale_dates import format_datetime
from assetsonar.models import AuditEvent
from automations.models import ActionLog, Execution
from automations.tests.builder_factories import totp_code, totp_device
from automations.tests.delay_factories import delayed, delayed_webhook_automation, scheduled_log
from automations.tests.engine_factories import (
    fast_retries,
    make_connection,
    make_device,
    make_engine_automation,
    mdm_commands,
    use_sync_q,
)
from automations.tests.execution_factories import make_execution, make_log
from automations.tests.servers import WebhookReceiver
from automations.tests.test_executions_views import DETAIL_BUDGET
from conftest import make_entitlement, make_license, make_member, make_user
from licenses.models import Entitlement, License
from members.services import member_deactivate

pytestmark = pytest.mark.django_db

WEEK = timedelta(days=7)


@pytest.fixture(autouse=True)
def sync_q(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)
    fast_retries(settings)
    mdm_commands(enabled=True)


@pytest.fixture
def receiver():
    with WebhookReceiver() as hook:
        yield hook


@pytest.fixture
def deactivate(django_capture_on_commit_callbacks):
    def run(member):
        with django_capture_on_commit_callbacks(execute=True):
            member_deactivate(member=member, actor=None, reason="Last day")
        return Execution.objects.filter(member=member).latest("pk")

    return run


@pytest.fixture
def post(client, django_capture_on_commit_callbacks):
    def run(user, log, verb, **data):
        client.force_login(user)
        url = reverse("automations:execution_scheduled", args=[log.execution_id, log.pk, verb])
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, data)

    return run


@pytest.fixture
def mdm_manager(db):
    user = make_user("mona", roles.IT_MANAGER, roles.MDM_OPERATOR, first_name="Mona")
    return user


def delayed_revoke(member):
    make_entitlement(license=make_license(kind=License.Kind.USER), member=member)
    automation = make_engine_automation(user_based=True)
    delayed(automation, "revoke_licenses", WEEK)
    return automation


def delayed_lock(member):
    device = make_device(member, make_connection(), name="Leaver's laptop")
    automation = make_engine_automation(mdm=True)
    delayed(automation, "mdm_lock", timedelta(hours=2))
    return device


def test_execution_page_and_member_panel_say_what_is_scheduled_for_when(manager_client, deactivate):
    member = make_member(full_name="Sam Scheduled")
    delayed_revoke(member)
    execution = deactivate(member)
    log = scheduled_log(execution, "revoke_licenses")
    when = format_datetime(log.due_at)

    page = manager_client.get(reverse("automations:execution_detail", args=[execution.pk]))
    panel = manager_client.get(reverse("members:detail", args=[member.pk]))

    text = f'Revoke licenses: scheduled for <time datetime="{log.due_at:%Y-%m-%dT%H:%M:%S}'
    html = page.content.decode()
    assert text in html and f">{when}</time>" in html
    assert 'data-status="scheduled">Scheduled</span>' in html
    assert "1 action scheduled for " in html
    assert 'hx-trigger="every 2s"' not in html  # waiting days: no polling
    assert "Run now" in html and "Cancel" in html
    panel_html = panel.content.decode()
    assert text in panel_html and f">{when}</time>" in panel_html
    # In a German browser the date is written the German way.
    german = manager_client.get(
        reverse("automations:execution_detail", args=[execution.pk]),
        HTTP_ACCEPT_LANGUAGE="de",
    ).content.decode()
    assert f">{timezone.localtime(log.due_at):%d.%m.%Y %H:%M}</time>" in german


def test_run_now_runs_it_at_once_and_audits_who(it_manager, post, deactivate):
    member = make_member(full_name="Rita Runnow")
    delayed_revoke(member)
    execution = deactivate(member)
    log = scheduled_log(execution, "revoke_licenses")
    due = log.due_at

    response = post(it_manager, log, "run")

    assert response.status_code == 302
    assert response["Location"] == execution.get_absolute_url()
    assert Entitlement.objects.live().filter(member=member).count() == 0
    log.refresh_from_db()
    assert log.status == ActionLog.Status.SUCCEEDED
    assert log.insight.startswith(f"Run now by {it_manager.get_full_name()} at ")
    assert log.detail["scheduled_for"] == due.isoformat()
    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED
    audit = AuditEvent.objects.filter(actor=it_manager, message__contains="run now").get()
    assert f"execution {execution.pk}" in audit.message


def test_cancel_cancels_it_and_audits_who(it_manager, post, deactivate):
    member = make_member(full_name="Cass Cancel")
    delayed_revoke(member)
    execution = deactivate(member)
    log = scheduled_log(execution, "revoke_licenses")

    response = post(it_manager, log, "cancel")

    assert response.status_code == 302
    log.refresh_from_db()
    assert log.status == ActionLog.Status.CANCELLED
    assert log.insight.startswith(f"Cancelled by {it_manager.get_full_name()} on ")
    assert Entitlement.objects.live().filter(member=member).count() == 1
    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED
    assert AuditEvent.objects.filter(actor=it_manager, message__contains="cancelled").exists()
    # Cancelled is final: running it now is refused, saying why.
    again = post(it_manager, log, "run")
    assert again.status_code == 409
    assert "This action is cancelled already" in again.content.decode()


@pytest.mark.parametrize("verb", ["run", "cancel"])
def test_a_viewer_may_neither_run_nor_cancel(viewer, post, deactivate, client, verb):
    member = make_member()
    delayed_revoke(member)
    log = scheduled_log(deactivate(member), "revoke_licenses")

    assert post(viewer, log, verb).status_code == 403

    log.refresh_from_db()
    assert log.status == ActionLog.Status.SCHEDULED
    page = client.get(reverse("automations:execution_detail", args=[log.execution_id]))
    assert "Run now" not in page.content.decode()


def test_an_unknown_verb_is_404(it_manager, post, deactivate):
    member = make_member()
    delayed_revoke(member)
    log = scheduled_log(deactivate(member), "revoke_licenses")

    assert post(it_manager, log, "explode").status_code == 404


@pytest.mark.parametrize("verb", ["run", "cancel"])
def test_a_scheduled_lock_needs_the_mdm_permission(it_manager, post, deactivate, verb):
    member = make_member()
    delayed_lock(member)
    log = scheduled_log(deactivate(member), "mdm_lock")

    assert post(it_manager, log, verb).status_code == 403

    log.refresh_from_db()
    assert log.status == ActionLog.Status.SCHEDULED


def test_a_scheduled_lock_needs_the_mdm_feature(mdm_manager, post, deactivate):
    member = make_member()
    device = delayed_lock(member)
    log = scheduled_log(deactivate(member), "mdm_lock")
    mdm_commands(enabled=False)
    totp_device(mdm_manager)

    response = post(mdm_manager, log, "run", otp_token="000000")

    assert response.status_code == 200
    assert "Running a device lock needs the “MDM management commands” feature" in (
        response.content.decode()
    )
    log.refresh_from_db()
    assert log.status == ActionLog.Status.SCHEDULED
    device.refresh_from_db()
    assert device.lock_state != Asset.LockState.LOCKED


def test_a_scheduled_lock_asks_for_an_authenticator_first(mdm_manager, post, deactivate, client):
    member = make_member()
    delayed_lock(member)
    log = scheduled_log(deactivate(member), "mdm_lock")
    client.force_login(mdm_manager)

    page = client.get(reverse("automations:execution_detail", args=[log.execution_id]))
    assert "Set up an authenticator app" in page.content.decode()
    response = post(mdm_manager, log, "run")

    assert "needs a one-time password: set up an authenticator app first" in (
        response.content.decode()
    )
    log.refresh_from_db()
    assert log.status == ActionLog.Status.SCHEDULED


def test_a_scheduled_lock_runs_now_with_the_right_one_time_password(mdm_manager, post, deactivate):
    member = make_member()
    device = delayed_lock(member)
    execution = deactivate(member)
    log = scheduled_log(execution, "mdm_lock")
    phone = totp_device(mdm_manager)

    right = post(mdm_manager, log, "run", otp_token=totp_code(phone))

    assert right.status_code == 302, right.context and right.context.get("scheduled_error")
    device.refresh_from_db()
    assert device.lock_state == Asset.LockState.LOCKED
    log.refresh_from_db()
    assert log.status == ActionLog.Status.SUCCEEDED
    assert AuditEvent.objects.filter(
        actor=mdm_manager, message__contains="run now", message__endswith="one-time password."
    ).exists()


def test_a_scheduled_lock_is_not_run_with_a_wrong_one_time_password(mdm_manager, post, deactivate):
    member = make_member()
    device = delayed_lock(member)
    log = scheduled_log(deactivate(member), "mdm_lock")
    phone = totp_device(mdm_manager)
    wrong = "000000" if totp_code(phone) != "000000" else "111111"

    response = post(mdm_manager, log, "run", otp_token=wrong)

    assert response.status_code == 200
    assert response.context["scheduled_error"]["log"] == log.pk
    assert f'id="scheduled-{log.pk}-error"' in response.content.decode()
    log.refresh_from_db()
    assert log.status == ActionLog.Status.SCHEDULED
    device.refresh_from_db()
    assert device.lock_state != Asset.LockState.LOCKED


def test_a_scheduled_lock_is_cancelled_with_the_right_one_time_password(
    mdm_manager, post, deactivate
):
    member = make_member()
    device = delayed_lock(member)
    log = scheduled_log(deactivate(member), "mdm_lock")
    phone = totp_device(mdm_manager)

    assert post(mdm_manager, log, "cancel").status_code == 200  # no code: refused
    log.refresh_from_db()
    assert log.status == ActionLog.Status.SCHEDULED

    assert post(mdm_manager, log, "cancel", otp_token=totp_code(phone)).status_code == 302

    log.refresh_from_db()
    assert log.status == ActionLog.Status.CANCELLED
    device.refresh_from_db()
    assert device.lock_state != Asset.LockState.LOCKED


def test_run_now_of_a_webhook_sends_it(receiver, it_manager, post, deactivate):
    member = make_member()
    delayed_webhook_automation(receiver.url(), WEEK)
    log = scheduled_log(deactivate(member))

    post(it_manager, log, "run")

    assert len(receiver.requests) == 1


@pytest.mark.parametrize("size", [2, 20])
def test_execution_page_query_budget_with_scheduled_logs(
    client, django_assert_max_num_queries, size
):
    user = make_user("planner", roles.IT_MANAGER, roles.MDM_OPERATOR)
    totp_device(user)
    client.force_login(user)
    execution = make_execution(make_member(), status=Execution.Status.SCHEDULED, finished_at=None)
    due = timezone.now() + WEEK
    for n in range(size):
        kind = "mdm_lock" if n % 2 else "revoke_licenses"
        make_log(
            execution,
            kind,
            target_type=ActionLog.TargetType.SCHEDULE,
            status=ActionLog.Status.SCHEDULED,
            due_at=due + timedelta(hours=n),
            attempts=0,
            finished_at=None,
        )
        make_log(execution, "revoke_licenses")

    # One more for the "has an authenticator" check of a scheduled lock's form.
    with django_assert_max_num_queries(DETAIL_BUDGET + 1):
        response = client.get(reverse("automations:execution_detail", args=[execution.pk]))

    assert response.status_code == 200
    assert response.content.decode().count("Run now") == size
    assert response.content.decode().count('name="otp_token"') == size // 2


def test_the_executions_list_counts_and_filters_scheduled_ones(manager_client, deactivate):
    member = make_member(full_name="Lisa Listed")
    delayed_revoke(member)
    execution = deactivate(member)
    make_execution(make_member(), status=Execution.Status.SUCCEEDED)

    response = manager_client.get(reverse("automations:executions"), {"status": "scheduled"})

    assert [e.pk for e in response.context["page_obj"]] == [execution.pk]
    html = response.content.decode()
    assert 'data-status="scheduled">Scheduled</span>' in html
    assert "1 scheduled" in html
