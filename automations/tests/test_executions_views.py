"""The Executions view and the execution page: what they show, their filters, who may see and
retry what, and their fixed query budgets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp

from assets.tests.factories import make_mdm_connection
from assetsonar import roles
from assetsonar.models import AuditEvent
from automations.models import Action, ActionLog, AuthenticatorDevice, Execution
from automations.tests.builder_factories import mdm_feature
from automations.tests.execution_factories import (
    make_automation,
    make_execution,
    make_log,
    make_mdm_command,
    make_webhook_attempt,
)
from conftest import make_asset, make_member, make_user

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "execution-results"}


def _execution_with_every_outcome(member=None, automation=None, **fields) -> Execution:
    member = member or make_member()
    execution = make_execution(
        member, automation, status=Execution.Status.PARTIALLY_FAILED, **fields
    )
    make_log(execution, "revoke_licenses", status=ActionLog.Status.SUCCEEDED)
    make_log(execution, "revoke_licenses", status=ActionLog.Status.SUCCEEDED)
    make_log(
        execution,
        "webhook",
        status=ActionLog.Status.FAILED,
        insight="Webhook endpoint answered 503 on 7 attempts over 5 hours",
    )
    make_log(
        execution,
        "mdm_lock",
        status=ActionLog.Status.SKIPPED,
        insight="Device is not enrolled in an MDM",
    )
    return execution


# --- Executions list --------------------------------------------------------------------------


def test_execution_list_shows_automation_member_status_and_action_counts(manager_client):
    member = make_member(full_name="Lena Leaver", email="lena@example.com")
    execution = _execution_with_every_outcome(member)

    response = manager_client.get(reverse("automations:executions"))

    assert response.status_code == 200
    row = response.context["page_obj"][0]
    assert row == execution
    assert (row.succeeded_count, row.failed_count, row.skipped_count) == (2, 1, 1)
    html = response.content.decode()
    assert "Lena Leaver" in html
    assert execution.automation_name in html
    assert "Partially failed" in html
    assert reverse("automations:execution_detail", args=[execution.pk]) in html
    assert reverse("automations:list") in html  # the "Automations" tab
    assert "2.4 s" in html  # duration


def test_execution_list_filters_by_automation_status_member_and_date(manager_client):
    first, second = make_automation(name="Offboard leavers"), make_automation(name="Notify HR")
    lena = make_member(full_name="Lena Leaver", email="lena@example.com")
    otto = make_member(full_name="Otto Other", email="otto@corp.example")
    ok = make_execution(lena, first)
    failed = make_execution(otto, second, status=Execution.Status.FAILED)
    old = make_execution(otto, first)
    Execution.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    url = reverse("automations:executions")

    def shown(**params) -> set[int]:
        response = manager_client.get(url, params)
        assert response.status_code == 200
        return {e.pk for e in response.context["page_obj"]}

    assert shown() == {ok.pk, failed.pk, old.pk}
    assert shown(automation=first.pk) == {ok.pk, old.pk}
    assert shown(status="failed") == {failed.pk}
    assert shown(member="LEAVER") == {ok.pk}
    assert shown(member="corp.example") == {failed.pk, old.pk}
    assert shown(member_id=otto.pk) == {failed.pk, old.pk}
    today = timezone.localdate()
    assert shown(date_from=(today - timedelta(days=1)).isoformat()) == {ok.pk, failed.pk}
    assert shown(date_to=(today - timedelta(days=30)).isoformat()) == {old.pk}
    assert shown(automation=first.pk, member="otto") == {old.pk}


def test_execution_list_htmx_request_gets_only_the_results(manager_client):
    _execution_with_every_outcome()

    response = manager_client.get(reverse("automations:executions"), {"status": "failed"}, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="execution-results"')
    assert "<html" not in html
    assert "No executions match these filters." in html
    assert "HX-Request" in response["Vary"]


def test_execution_list_is_paginated(manager_client):
    member = make_member()
    automation = make_automation()
    for _ in range(55):
        make_execution(member, automation)

    first = manager_client.get(reverse("automations:executions"))
    second = manager_client.get(reverse("automations:executions"), {"page": 2})

    assert len(first.context["page_obj"]) == 50
    assert len(second.context["page_obj"]) == 5
    assert "Page 1 of 2" in first.content.decode()


def test_execution_pages_need_sign_in_and_the_view_permission(client):
    execution = _execution_with_every_outcome()
    urls = [
        reverse("automations:executions"),
        reverse("automations:execution_detail", args=[execution.pk]),
        reverse("automations:member_actions_panel", args=[execution.member_id]),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("login")), url

    client.force_login(make_user("nobody"))
    for url in urls:
        assert client.get(url).status_code == 403, url


def test_viewer_can_read_the_execution_log_but_gets_no_retry_button(viewer_client):
    execution = _execution_with_every_outcome()

    assert viewer_client.get(reverse("automations:executions")).status_code == 200
    response = viewer_client.get(reverse("automations:execution_detail", args=[execution.pk]))

    assert response.status_code == 200
    assert "Retry failed actions" not in response.content.decode()


# --- Execution page ----------------------------------------------------------------------------


def test_execution_page_shows_each_action_target_insight_and_webhook_attempts(manager_client):
    member = make_member(full_name="Lena Leaver")
    execution = make_execution(member, status=Execution.Status.PARTIALLY_FAILED)
    webhook = make_log(
        execution,
        "webhook",
        status=ActionLog.Status.RETRYING,
        target_label="https://hooks.example.com/offboarding",
        insight="Webhook endpoint answered 503; retrying",
        attempts=2,
        next_attempt_at=timezone.now() + timedelta(minutes=2),
    )
    make_webhook_attempt(webhook, 1, status_code=503, response_excerpt="upstream down")
    make_webhook_attempt(webhook, 2, status_code=None, error="Timed out after 10 s")
    connection = make_mdm_connection(name="Jamf prod", provider="jamf")
    asset = make_asset(custodian=member, mdm_connection=connection, mdm_device_id="42")
    lock = make_log(
        execution,
        "mdm_lock",
        asset=asset,
        target_label=str(asset),
        status=ActionLog.Status.FAILED,
        insight="Jamf Pro rejected the API token (HTTP 401)",
        detail={"remedy": "Update the connection's client secret."},
    )
    make_mdm_command(lock, status="failed", vendor_command_id="", sent_at=None)

    response = manager_client.get(reverse("automations:execution_detail", args=[execution.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Lena Leaver" in html
    assert "Member is deactivated" in html
    assert "Waiting to retry" in html and "Next attempt" in html
    assert "HTTP 503" in html and "upstream down" in html and "Timed out after 10 s" in html
    assert "[redacted]" in html
    assert "Jamf Pro rejected the API token (HTTP 401)" in html
    assert "Update the connection&#x27;s client secret." in html
    assert reverse("assets:detail", args=[asset.pk]) in html
    assert "Jamf prod" in html


def test_unlock_pin_button_only_for_users_allowed_to_see_pins(manager_client, client, mdm_operator):
    member = make_member()
    execution = make_execution(member)
    asset = make_asset(custodian=member, mdm_connection=make_mdm_connection(), mdm_device_id="d-1")
    command = make_mdm_command(make_log(execution, "mdm_lock", asset=asset))
    url = reverse("automations:execution_detail", args=[execution.pk])
    pin_url = reverse("automations:mdm_command_pin", args=[command.pk])

    manager_html = manager_client.get(url).content.decode()
    client.force_login(mdm_operator)
    operator_html = client.get(url).content.decode()

    assert pin_url not in manager_html
    assert pin_url in operator_html
    # The PIN itself is never on the page; it is fetched (and audited) on request.
    assert "246810" not in operator_html
    assert "cmd-" in operator_html


# --- Retry -------------------------------------------------------------------------------------


def _failed_mdm_execution():
    member = make_member()
    execution = make_execution(member, status=Execution.Status.FAILED)
    asset = make_asset(
        custodian=member, mdm_connection=make_mdm_connection(), mdm_device_id="dev-9"
    )
    make_log(execution, "mdm_lock", asset=asset, status=ActionLog.Status.FAILED)
    return execution


def _confirmed_device(user) -> AuthenticatorDevice:
    return AuthenticatorDevice.objects.create(user=user, name="Phone", confirmed=True)


def _current_code(device: AuthenticatorDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def test_retry_is_refused_without_the_manager_permission(viewer_client):
    execution = _execution_with_every_outcome()

    response = viewer_client.post(reverse("automations:execution_retry", args=[execution.pk]))

    assert response.status_code == 403


def test_retry_needs_get_to_be_refused(manager_client):
    execution = _execution_with_every_outcome()

    response = manager_client.get(reverse("automations:execution_retry", args=[execution.pk]))

    assert response.status_code == 405


def test_succeeded_execution_cannot_be_retried(manager_client):
    execution = make_execution(make_member(), status=Execution.Status.SUCCEEDED)

    page = manager_client.get(reverse("automations:execution_detail", args=[execution.pk]))
    response = manager_client.post(reverse("automations:execution_retry", args=[execution.pk]))

    assert "Retry failed actions" not in page.content.decode()
    assert response.status_code == 302
    followed = manager_client.get(response.url).content.decode()
    assert "only failed or partially failed executions can be retried" in followed


def test_retrying_mdm_actions_is_refused_to_managers_without_the_mdm_role(manager_client):
    execution = _failed_mdm_execution()

    page = manager_client.get(reverse("automations:execution_detail", args=[execution.pk]))
    response = manager_client.post(reverse("automations:execution_retry", args=[execution.pk]))

    assert "only an MDM Operator can retry them" in page.content.decode()
    assert response.status_code == 403
    assert "MDM Operator" in response.content.decode()


def test_retrying_mdm_actions_asks_operators_without_an_authenticator_to_enrol(
    client, mdm_operator
):
    mdm_feature()
    client.force_login(mdm_operator)
    execution = _failed_mdm_execution()

    response = client.post(
        reverse("automations:execution_retry", args=[execution.pk]), {"otp_token": "123456"}
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "set up an authenticator app first" in html
    assert reverse("automations:otp_enroll") in html
    execution.refresh_from_db()
    assert execution.status == Execution.Status.FAILED


def test_retrying_mdm_actions_with_a_wrong_code_is_refused_and_audited(client, mdm_operator):
    mdm_feature()
    client.force_login(mdm_operator)
    device = _confirmed_device(mdm_operator)
    execution = _failed_mdm_execution()
    wrong = f"{(int(_current_code(device)) + 1) % 1_000_000:06d}"

    response = client.post(
        reverse("automations:execution_retry", args=[execution.pk]),
        {"otp_token": wrong},
        HTTP_HX_REQUEST="true",
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="retry-form">')
    assert "That code is not right" in html
    assert AuditEvent.objects.filter(action=AuditEvent.Action.OTP_FAILED).exists()
    assert not ActionLog.objects.filter(
        execution=execution, status__in=["pending", "running", "retrying"]
    ).exists()


def test_retrying_mdm_actions_with_a_valid_code_requeues_the_failed_actions(client, mdm_operator):
    mdm_feature()
    client.force_login(mdm_operator)
    device = _confirmed_device(mdm_operator)
    execution = _failed_mdm_execution()

    response = client.post(
        reverse("automations:execution_retry", args=[execution.pk]),
        {"otp_token": _current_code(device)},
    )

    assert response.status_code == 302
    assert response.url == reverse("automations:execution_detail", args=[execution.pk])
    assert AuditEvent.objects.filter(action=AuditEvent.Action.OTP_VERIFIED).exists()
    execution.refresh_from_db()
    assert execution.status == Execution.Status.RUNNING
    assert execution.logs.get().status == ActionLog.Status.RETRYING
    page = client.get(response.url).content.decode()
    assert "1 failed action is queued to run again." in page


def test_retrying_mdm_actions_is_refused_while_the_portal_switch_is_off(client, mdm_operator):
    mdm_feature(on=False)
    client.force_login(mdm_operator)
    device = _confirmed_device(mdm_operator)
    execution = _failed_mdm_execution()

    response = client.post(
        reverse("automations:execution_retry", args=[execution.pk]),
        {"otp_token": _current_code(device)},
        HTTP_HX_REQUEST="true",
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "“MDM management commands” feature, which is switched off" in html
    assert "An administrator can switch it on in Django admin › Portal settings." in html
    execution.refresh_from_db()
    assert execution.status == Execution.Status.FAILED
    assert execution.logs.get().status == ActionLog.Status.FAILED
    # The code was not checked, so it is still unused.
    assert not AuditEvent.objects.filter(
        action__in=[AuditEvent.Action.OTP_VERIFIED, AuditEvent.Action.OTP_FAILED]
    ).exists()
    device.refresh_from_db()
    assert device.last_t == -1


def test_retrying_without_mdm_actions_needs_no_code(manager_client):
    member = make_member()
    execution = make_execution(member, status=Execution.Status.FAILED)
    make_log(execution, "webhook", status=ActionLog.Status.FAILED)
    make_log(execution, "mdm_lock", status=ActionLog.Status.SKIPPED)

    response = manager_client.post(
        reverse("automations:execution_retry", args=[execution.pk]), HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    assert reverse("automations:execution_detail", args=[execution.pk]) in response["HX-Location"]
    execution.refresh_from_db()
    assert execution.status == Execution.Status.RUNNING
    statuses = dict(execution.logs.values_list("action_kind", "status"))
    assert statuses == {"webhook": "retrying", "mdm_lock": "skipped"}


def test_retrying_a_dead_lettered_execution_that_locks_devices_needs_the_mdm_gate(
    manager_client,
):
    from automations.models import Event

    member = make_member()
    automation = make_automation()
    Action.objects.create(automation=automation, kind="mdm_lock", config={"message": "x"})
    execution = make_execution(member, automation, status=Execution.Status.FAILED)
    Event.objects.filter(pk=execution.event_id).update(status=Event.Status.DEAD)
    # The lock was never claimed: no MDM log, yet a retry would claim and send it.
    make_log(execution, "webhook", status=ActionLog.Status.FAILED)

    response = manager_client.post(reverse("automations:execution_retry", args=[execution.pk]))

    assert response.status_code == 403
    execution.refresh_from_db()
    assert execution.status == Execution.Status.FAILED


# --- Query budgets -----------------------------------------------------------------------------

# Session, user, user and group permissions, the automation filter's choices, count (capped),
# page, the page's action counts.
LIST_BUDGET = 9  # +1: the navigation's approvals count
# Session, user, user and group permissions, the execution, its logs, their webhook attempts.
DETAIL_BUDGET = 8  # +1: the navigation's approvals count


def _populate(size: int) -> Execution:
    automations = [make_automation(), make_automation()]
    members = [make_member() for _ in range(3)]
    for n in range(size):
        _execution_with_every_outcome(members[n % 3], automations[n % 2])
    execution = make_execution(members[0], automations[0], status=Execution.Status.FAILED)
    connection = make_mdm_connection()
    for n in range(size):
        webhook = make_log(execution, "webhook", status=ActionLog.Status.FAILED)
        make_webhook_attempt(webhook, 1, status_code=500)
        make_webhook_attempt(webhook, 2, status_code=502)
        asset = make_asset(mdm_connection=connection, mdm_device_id=f"q-{size}-{n}")
        make_mdm_command(make_log(execution, "mdm_lock", asset=asset))
    return execution


@pytest.mark.parametrize("size", [2, 30])
def test_execution_list_query_budget(manager_client, django_assert_max_num_queries, size):
    _populate(size)

    with django_assert_max_num_queries(LIST_BUDGET):
        response = manager_client.get(reverse("automations:executions"), {"member": "Member"})
    with django_assert_max_num_queries(LIST_BUDGET):
        manager_client.get(reverse("automations:executions"), {"status": "failed"}, **HTMX)

    assert response.status_code == 200
    assert len(response.context["page_obj"]) == min(size + 1, 50)


@pytest.mark.parametrize("size", [2, 30])
def test_execution_detail_query_budget(client, django_assert_max_num_queries, size):
    user = make_user("budget", roles.IT_MANAGER, roles.MDM_OPERATOR)
    _confirmed_device(user)
    client.force_login(user)
    execution = _populate(size)

    # One more for the "has an authenticator" check the retry form makes.
    with django_assert_max_num_queries(DETAIL_BUDGET + 1):
        response = client.get(reverse("automations:execution_detail", args=[execution.pk]))

    assert response.status_code == 200
    assert len(response.context["logs"]) == 2 * size


@pytest.mark.parametrize(
    ("status", "polls"),
    [
        (Execution.Status.PENDING, True),
        (Execution.Status.RUNNING, True),
        (Execution.Status.SUCCEEDED, False),
        (Execution.Status.FAILED, False),
    ],
)
def test_execution_page_reloads_itself_only_while_the_execution_runs(manager_client, status, polls):
    execution = make_execution(make_member(), status=status)
    url = reverse("automations:execution_detail", args=[execution.pk])

    page = manager_client.get(url).content.decode()
    part = manager_client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="execution-live")

    assert ('hx-trigger="every 2s"' in page) is polls
    html = part.content.decode()
    assert html.lstrip().startswith('<div id="execution-live"')
    assert "<html" not in html
    assert ('hx-trigger="every 2s"' in html) is polls
