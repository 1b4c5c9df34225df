"""The "Send an email" action kind against a real SMTP server on 127.0.0.1 (aiosmtpd,
assetsonar/tests/smtp_server.py): recipients, headers, both parts and the placeholders' values;
temporary replies (421, 451) and dropped connections retried through the real scheduling and
sweeper paths, permanent ones (550) not; unresolvable recipients skipped with the reason; a run
twice sends nothing twice; the builder's validation and preview; the registry's check."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from assetsonar import mail
from assetsonar.roles import IT_MANAGER
from automations.actions import REGISTRY
from automations.actions.base import check_kinds
from automations.engine.events import events_sweep
from automations.engine.runner import event_process
from automations.models import Action, ActionLog, Automation, Execution
from automations.tests.browser import needs_chromium
from automations.tests.builder_factories import action_rows, builder_data
from automations.tests.engine_factories import (
    fast_retries,
    make_engine_automation,
    run_due_schedules,
    use_sync_q,
)
from conftest import make_asset, make_entitlement, make_license, make_member, make_user
from licenses.models import Entitlement
from members.services import member_deactivate

pytestmark = pytest.mark.django_db

SUBJECT = "{{ member.full_name }} left ({{ devices.count }} devices)"
BODY = (
    "Hello {{ member.manager.first_name }},\n"
    "{{ member.full_name }} left: {{ member.deactivation_reason }}.\n"
    "Devices:\n{{ devices }}\nLicenses:\n{{ licenses }}\n{{ member.url }}\n"
)


@pytest.fixture(autouse=True)
def sync_q(request, monkeypatch, settings):
    # The tests with a real cluster (transactional) leave the tasks to it.
    if not request.node.get_closest_marker("django_db").kwargs.get("transaction"):
        use_sync_q(monkeypatch, settings)
    fast_retries(settings)
    settings.EMAIL_RETRY_DELAYS = (0,) * 6


@pytest.fixture
def deactivate(django_capture_on_commit_callbacks):
    def run(member):
        with django_capture_on_commit_callbacks(execute=True):
            member_deactivate(member=member, actor=None, reason="Last working day")
        return member

    return run


def email_automation(*, position: int = 5, revoke: bool = False, **config) -> Automation:
    automation = make_engine_automation(user_based=revoke)
    settings = {
        "manager": False,
        "member": "",
        "addresses": [],
        "roles": [],
        "subject": SUBJECT,
        "body": BODY,
        **config,
    }
    Action.objects.create(automation=automation, kind="email", position=position, config=settings)
    return automation


def leaver(**fields):
    manager = make_member(full_name="Alex Chen", email="alex.chen@example.com")
    member = make_member(full_name="Jordan Lee", manager=manager, **fields)
    return member


def email_logs():
    return list(ActionLog.objects.filter(action_kind="email").order_by("pk"))


def by_recipient(server):
    return {m.rcpt_tos[0]: m for m in server.messages}


# --- The registry ---------------------------------------------------------------------------


def test_the_kind_is_registered_after_the_seeds_three_and_passes_the_registry_check():
    assert list(REGISTRY)[:4] == ["webhook", "revoke_licenses", "mdm_lock", "email"]
    assert check_kinds() == []
    kind = REGISTRY["email"]
    assert (kind.label, kind.retry_setting) == ("Send an email", "EMAIL_RETRY_DELAYS")
    assert dict(ActionLog._meta.get_field("target_type").choices)["recipient"] == "Recipient"


# --- Sending ----------------------------------------------------------------------------------


def test_each_recipient_gets_one_message_with_headers_both_parts_and_the_placeholders(
    smtp_server, deactivate
):
    itm = Group.objects.get(name=IT_MANAGER)
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("ops", email="ops.lead@example.com")
    user.groups.add(itm)
    inactive = get_user_model().objects.create_user(
        "gone", email="gone@example.com", is_active=False
    )
    inactive.groups.add(itm)
    email_automation(
        manager=True,
        member="personal",
        addresses=["it-ops@example.com"],
        roles=[IT_MANAGER],
    )
    member = leaver(personal_email="jordan.home@example.net")
    laptop = make_asset(custodian=member, asset_tag="AT-0042", name="MacBook <Pro>")
    license = make_license(name="Figma", vendor="Figma")
    make_entitlement(license=license, member=member)

    deactivate(member)

    got = by_recipient(smtp_server)
    assert sorted(got) == [
        "alex.chen@example.com",
        "it-ops@example.com",
        "jordan.home@example.net",
        "ops.lead@example.com",
    ]
    logs = {log.target_label: log for log in email_logs()}
    for address, message in got.items():
        log = logs[address]
        assert (log.status, log.attempts, log.target_type) == ("succeeded", 1, "recipient")
        assert log.key.endswith(f":email:{address}")
        assert message.header(mail.KEY_HEADER) == log.key
        assert message.header("Message-ID") == mail.message_id_for(log.key)
        assert message.header("To") == address
        assert message.header("From") == "AssetSonar <assetsonar@example.com>"
        assert message.header("Auto-Submitted") == "auto-generated"
        assert message.header("Subject") == "Jordan Lee left (1 devices)"
        assert log.insight == (
            f"Sent to {address} through the mail server at 127.0.0.1:{smtp_server.port}."
        )
    text = got["alex.chen@example.com"].text
    assert "Hello Alex,\nJordan Lee left: Last working day.\n" in text
    assert f"{laptop.asset_tag} · MacBook <Pro>" in text
    assert "Licenses:\nFigma · Figma\n" in text
    assert f"/members/{member.pk}/" in text
    html = got["alex.chen@example.com"].html
    assert "MacBook &lt;Pro&gt;" in html and "<Pro>" not in html
    assert "Hello Alex,<br>" in html
    assert f'<a href="http://localhost:8000/members/{member.pk}/">' in html
    assert Execution.objects.get().status == Execution.Status.SUCCEEDED


def test_licenses_listed_are_those_held_at_the_event_even_after_revoke_licenses(
    smtp_server, deactivate
):
    # The email stands first, the revocation after it: the fast path prepares the revocation
    # first (the registry's order), and the email still lists the seat.
    email_automation(position=0, revoke=True, addresses=["it-ops@example.com"])
    member = leaver()
    license = make_license(name="Figma", vendor="Figma")
    make_entitlement(license=license, member=member)

    deactivate(member)

    assert Entitlement.objects.get().revoked_at is not None
    (message,) = smtp_server.messages
    assert "Licenses:\nFigma · Figma\n" in message.text


def test_the_work_email_is_used_without_a_personal_one(smtp_server, deactivate):
    email_automation(member="personal")
    member = deactivate(leaver(email="jordan.lee@example.com"))
    assert [m.rcpt_tos for m in smtp_server.messages] == [["jordan.lee@example.com"]]
    assert email_logs()[0].target_label == member.email


def test_a_recipient_that_cannot_be_resolved_is_a_skipped_log_with_the_reason(
    smtp_server, deactivate
):
    email_automation(manager=True, roles=["Viewer"], addresses=["it-ops@example.com"])

    deactivate(make_member(full_name="Jordan Lee"))

    logs = {log.target_label: log for log in email_logs()}
    assert logs["Manager"].status == "skipped"
    assert logs["Manager"].insight == "No manager recorded for Jordan Lee."
    assert logs["Viewer"].status == "skipped"
    assert logs["Viewer"].insight == "No active user with an email address has the role “Viewer”."
    assert logs["it-ops@example.com"].status == "succeeded"
    assert [m.rcpt_tos for m in smtp_server.messages] == [["it-ops@example.com"]]
    assert Execution.objects.get().status == Execution.Status.SUCCEEDED


def test_a_manager_without_email_is_skipped_with_the_reason(smtp_server, deactivate):
    email_automation(manager=True)
    manager = make_member(full_name="Alex Chen", email="")
    deactivate(make_member(full_name="Jordan Lee", manager=manager))
    (log,) = email_logs()
    assert (log.status, log.insight) == (
        "skipped",
        "The manager Alex Chen of Jordan Lee has no email address recorded.",
    )
    assert smtp_server.messages == []


def test_a_task_run_twice_sends_no_mail_twice(smtp_server, deactivate):
    email_automation(manager=True, addresses=["it-ops@example.com"])
    member = deactivate(leaver())
    execution = Execution.objects.get()
    assert len(smtp_server.messages) == 2

    # The same event's task again (redelivered by django-q2), and the execution run again.
    from automations.models import Event

    Event.objects.filter(pk=execution.event_id).update(status=Event.Status.PENDING)
    event_process(event_id=execution.event_id)
    from automations.engine.runner import execution_resume

    Execution.objects.filter(pk=execution.pk).update(status=Execution.Status.RUNNING)
    execution_resume(execution_id=execution.pk)

    assert len(smtp_server.messages) == 2
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [
        "alex.chen@example.com",
        "it-ops@example.com",
    ]
    assert [log.attempts for log in email_logs()] == [1, 1]
    assert member.pk


@pytest.mark.parametrize(
    ("stage", "reply"),
    [("rcpt", "421 4.7.0 Too many connections"), ("data", "451 4.3.0 Try again later")],
)
def test_temporary_replies_are_retried_through_the_scheduler_then_sent(
    smtp_server, deactivate, stage, reply
):
    smtp_server.reply(stage, reply, times=1)
    email_automation(addresses=["it-ops@example.com"])

    deactivate(leaver())

    (log,) = email_logs()
    code = reply.split()[0]
    assert (log.status, log.attempts) == (ActionLog.Status.RETRYING, 1)
    assert f"answered {code}" in log.insight and "(temporary): will retry." in log.insight
    assert "Attempt 1 of 7; next try at" in log.insight
    assert Schedule.objects.filter(func="automations.tasks.retry_action").count() == 1
    assert smtp_server.messages == []
    assert Execution.objects.get().status == Execution.Status.RUNNING

    assert run_due_schedules() == 1

    log.refresh_from_db()
    assert (log.status, log.attempts) == (ActionLog.Status.SUCCEEDED, 2)
    (message,) = smtp_server.messages
    assert message.header(mail.KEY_HEADER) == log.key
    assert [a["outcome"] for a in log.detail["attempt_log"]] == ["temporary", "sent"]
    assert Execution.objects.get().status == Execution.Status.SUCCEEDED


def test_a_retry_waits_on_its_schedule_and_the_sweeper_sends_it_once_the_clock_passed_it(
    smtp_server, deactivate, settings
):
    settings.EMAIL_RETRY_DELAYS = (600, 1800)
    smtp_server.drop("data", times=1)
    email_automation(addresses=["it-ops@example.com"])

    deactivate(leaver())

    (log,) = email_logs()
    assert log.status == ActionLog.Status.RETRYING
    assert "closed the connection mid-transaction" in log.insight
    assert "Attempt 1 of 3" in log.insight
    assert log.next_attempt_at > timezone.now() + timedelta(minutes=9)
    # Not due yet: neither the scheduler nor the sweeper sends it.
    assert run_due_schedules() == 0
    assert events_sweep()["actions"] == 0
    assert smtp_server.messages == []

    # The clock moves past the retry time and the one-off schedule got lost: the sweeper
    # dispatches the retry (the resume path).
    Schedule.objects.filter(func="automations.tasks.retry_action").delete()
    ActionLog.objects.filter(pk=log.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=5)
    )
    assert events_sweep()["actions"] == 1

    log.refresh_from_db()
    assert (log.status, log.attempts) == (ActionLog.Status.SUCCEEDED, 2)
    assert len(smtp_server.messages) == 1
    assert Execution.objects.get().status == Execution.Status.SUCCEEDED


def test_a_permanent_refusal_fails_at_once_with_the_insight(smtp_server, deactivate):
    smtp_server.reply("rcpt", "550 5.1.1 No such user here")
    email_automation(addresses=["nobody@example.com", "it-ops@example.com"])

    deactivate(leaver())

    logs = {log.target_label: log for log in email_logs()}
    failed = logs["nobody@example.com"]
    assert (failed.status, failed.attempts) == (ActionLog.Status.FAILED, 1)
    assert failed.insight == (
        "The mail server refused the recipient permanently: 550 5.1.1 No such user here. "
        "Not retried: the refusal is permanent."
    )
    assert not Schedule.objects.filter(func="automations.tasks.retry_action").exists()
    execution = Execution.objects.get()
    assert execution.status == Execution.Status.FAILED
    assert "550 5.1.1 No such user here" in execution.insight


def test_temporary_failures_give_up_after_the_last_attempt(smtp_server, deactivate, settings):
    settings.EMAIL_RETRY_DELAYS = (0, 0)
    smtp_server.reply("mail", "421 4.3.2 Service not available")
    email_automation(addresses=["it-ops@example.com"])

    deactivate(leaver())
    run_due_schedules()

    (log,) = email_logs()
    assert (log.status, log.attempts) == (ActionLog.Status.FAILED, 3)
    assert "Gave up after 3 attempts" in log.insight
    assert "421 4.3.2 Service not available" in log.insight


def test_nothing_listening_is_temporary(deactivate, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", 1, False
    settings.EMAIL_RETRY_DELAYS = (3600,)
    email_automation(addresses=["it-ops@example.com"])
    deactivate(leaver())
    (log,) = email_logs()
    assert log.status == ActionLog.Status.RETRYING
    assert "connection refused" in log.insight


def test_console_backend_prints_the_mail_and_says_so(deactivate, settings, capsys):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    email_automation(manager=True)
    deactivate(leaver())
    (log,) = email_logs()
    assert log.status == ActionLog.Status.SUCCEEDED
    assert log.insight.startswith("Printed to the worker's log for alex.chen@example.com")
    out = capsys.readouterr().out
    assert "To: alex.chen@example.com" in out and "Subject: Jordan Lee left" in out


# --- Where people see it --------------------------------------------------------------------


def test_execution_page_and_member_panel_show_the_emails_by_recipient(
    smtp_server, deactivate, manager_client
):
    smtp_server.reply("rcpt", "550 5.1.1 No such user here", times=1)
    email_automation(manager=True, addresses=["it-ops@example.com"])
    member = deactivate(leaver())
    execution = Execution.objects.get()

    html = manager_client.get(reverse("automations:execution_detail", args=[execution.pk])).text
    assert html.count("Send an email") >= 2
    assert "alex.chen@example.com" in html and "it-ops@example.com" in html
    assert "Recipient" in html
    assert "Email to alex.chen@example.com" in html
    assert "550 5.1.1 No such user here" in html

    panel = manager_client.get(reverse("members:detail", args=[member.pk])).text
    assert "alex.chen@example.com" in panel and "it-ops@example.com" in panel


@pytest.mark.parametrize("recipients", [1, 12])
def test_execution_page_query_budget_does_not_grow_with_recipients(
    smtp_server, deactivate, manager_client, django_assert_max_num_queries, recipients
):
    email_automation(addresses=[f"it{n}@example.com" for n in range(recipients)])
    deactivate(leaver())
    execution = Execution.objects.get()
    assert len(smtp_server.messages) == recipients
    url = reverse("automations:execution_detail", args=[execution.pk])
    manager_client.get(url)  # the session and permission caches warm up
    with django_assert_max_num_queries(14):
        html = manager_client.get(url).text
    assert html.count("Email to it") == recipients


# --- The builder ------------------------------------------------------------------------------

CREATE = reverse("automations:create")


def email_row(**fields) -> dict:
    settings = {
        "manager": "on",
        "subject": SUBJECT,
        "body": BODY,
        **fields,
    }
    return {k: v for k, v in settings.items() if v is not None}


def post(client, **fields):
    data = builder_data(revoke=None)
    data.update(action_rows(("email", email_row(**fields))))
    return client.post(CREATE, data)


def test_builder_saves_an_email_and_its_summary(manager_client):
    response = post(
        manager_client,
        addresses="it-ops@example.com, IT-OPS@example.com\nhr@example.com",
        roles=[IT_MANAGER],
        member="personal",
    )
    assert response.status_code == 302, response.text[:3000]
    action = Action.objects.get(kind="email")
    assert action.config == {
        "manager": True,
        "member": "personal",
        "addresses": ["it-ops@example.com", "hr@example.com"],
        "roles": [IT_MANAGER],
        "subject": SUBJECT,
        "body": BODY,
    }
    kind = REGISTRY["email"]
    assert kind.summary({"manager": True, "addresses": ["it-ops@example.com"]}) == (
        "email the manager and it-ops@example.com"
    )
    assert kind.summary(action.config) == (
        "email the manager, the member (personal email if set), it-ops@example.com, "
        "hr@example.com and the IT Manager role"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"manager": None},
            "Choose at least one recipient: the manager, the member, an address or the users "
            "of a role.",
        ),
        ({"addresses": "it-ops@, ok@example.com"}, "“it-ops@” is not a valid email address."),
        ({"subject": ""}, "Enter the subject."),
        ({"body": "  "}, "Enter the body of the email."),
        (
            {"body": "Hi {{ member.fullname }}"},
            "Unknown placeholder {{ member.fullname }} on line 1. "
            "Did you mean {{ member.full_name }}?",
        ),
        ({"body": "Hi {{ member.full_name }"}, "“{{” on line 1 is not closed with “}}”."),
        ({"subject": "Bye }} now"}, "“}}” on line 1 closes no “{{”"),
    ],
)
def test_builder_refuses_bad_settings_with_a_clear_message(manager_client, fields, message):
    response = post(manager_client, **fields)
    assert response.status_code == 200
    assert message.replace("“", "&ldquo;") in response.text or message in _unescape(response.text)
    assert not Automation.objects.exists()


def test_an_unknown_placeholder_lists_the_known_ones(manager_client):
    html = _unescape(post(manager_client, body="{{ member.shoe_size }}").text)
    assert "Known placeholders: {{ member.full_name }}, {{ member.email }}" in html


def test_service_side_validation_refuses_what_the_form_would(manager_client):
    kind = REGISTRY["email"]
    errors = kind.clean_config(
        {"subject": "{{ nope }}", "body": "x", "addresses": ["bad"], "roles": ["Root"]},
        previous=None,
    )
    assert errors["subject"][0] == "Unknown placeholder {{ nope }} on line 1."
    assert errors["addresses"] == ["“bad” is not a valid email address."]
    assert errors["roles"] == ["Unknown role: Root."]
    assert kind.clean_config({"subject": "x", "body": "y"}, previous=None) == {
        "__all__": [
            "Choose at least one recipient: the manager, the member, an address or the users "
            "of a role."
        ]
    }


def test_builder_card_previews_the_message_on_the_sample_member_and_lists_placeholders(
    manager_client,
):
    html = manager_client.post(CREATE, builder_data(revoke=None, action_op="add:email")).text
    assert 'data-kind="email"' in html
    assert 'id="actions-0-email-preview"' in html
    text = _unescape(html)
    assert "Jordan Rivera has left: devices and licenses" in text
    assert "AT-00318 · MacBook Pro 14" in text
    assert "{{ member.manager.first_name }}" in text  # the catalogue
    assert "Hello Alex," in text


def test_the_live_preview_follows_the_card_through_the_actions_endpoint(manager_client):
    data = builder_data(revoke=None)
    data.update(
        action_rows(
            (
                "email",
                email_row(
                    subject="Bye {{ member.first_name }}", body="<b>{{ member.department }}</b>"
                ),
            )
        )
    )
    data["action_op"] = ""
    html = manager_client.post(
        reverse("automations:builder_actions"), data, HTTP_HX_REQUEST="true"
    ).text
    preview = re.search(r'id="actions-0-email-preview".*?</details>', html, re.S).group(0)
    assert "Bye Jordan" in preview
    # The plain-text part as written, the HTML part escaped.
    assert "&lt;b&gt;Engineering&lt;/b&gt;" in preview
    data["actions-0-body"] = "Hi {{ member.nope }}"
    html = manager_client.post(
        reverse("automations:builder_actions"), data, HTTP_HX_REQUEST="true"
    ).text
    preview = _unescape(
        re.search(r'id="actions-0-email-preview".*?</details>', html, re.S).group(0)
    )
    assert "Unknown placeholder {{ member.nope }} on line 1." in preview


def _unescape(html: str) -> str:
    import html as _html

    return _html.unescape(html)


# --- The real django-q2 worker ------------------------------------------------------------------


def _worker(command: str, log, env: dict[str, str]):
    import subprocess
    import sys

    from django.conf import settings as django_settings

    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
            [sys.executable, "manage.py", command],
            cwd=django_settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.django_db(transaction=True)
def test_a_real_cluster_sends_the_email_through_the_smtp_server(smtp_server, tmp_path):
    import signal

    from automations.tests.test_qcluster import cluster_env, finished_execution, stop, wait_until

    email_automation(manager=True, addresses=["it-ops@example.com"])
    member = leaver()
    log = tmp_path / "qcluster.log"
    env = {
        **cluster_env(),
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_server.port),
        "EMAIL_USE_TLS": "false",
        "DEFAULT_FROM_EMAIL": "AssetSonar <assetsonar@example.com>",
    }
    process = _worker("qcluster", log, env)
    try:
        member_deactivate(member=member, actor=None, reason="Last working day")
        execution = wait_until(finished_execution, log, "the execution")
    finally:
        stop(process, signal.SIGKILL)

    assert execution.status == Execution.Status.SUCCEEDED
    got = by_recipient(smtp_server)
    assert sorted(got) == ["alex.chen@example.com", "it-ops@example.com"]
    for log_row in email_logs():
        assert got[log_row.target_label].header(mail.KEY_HEADER) == log_row.key
    assert "Hello Alex," in got["alex.chen@example.com"].text


@pytest.mark.django_db(transaction=True)
def test_without_email_host_the_worker_prints_the_mail_to_its_log(tmp_path):
    import signal

    from automations.tests.test_qcluster import cluster_env, finished_execution, stop, wait_until

    email_automation(manager=True)
    member = leaver()
    log = tmp_path / "worker.log"
    process = _worker("worker", log, {**cluster_env(), "EMAIL_HOST": ""})
    try:
        member_deactivate(member=member, actor=None, reason="Last working day")
        wait_until(finished_execution, log, "the execution")
        wait_until(lambda: "Hello Alex," in log.read_text(errors="replace"), log, "the mail")
    finally:
        stop(process, signal.SIGTERM)

    (row,) = email_logs()
    assert row.insight.startswith("Printed to the worker's log for alex.chen@example.com")
    output = log.read_text(errors="replace")
    assert "To: alex.chen@example.com" in output
    assert mail.KEY_HEADER in output and row.key in output


def test_django_admin_shows_the_email_action_and_its_logs_by_recipient(
    smtp_server, deactivate, admin_client
):
    automation = email_automation(manager=True, addresses=["it-ops@example.com"])
    deactivate(leaver())
    execution = Execution.objects.get()

    page = admin_client.get(reverse("admin:automations_automation_change", args=[automation.pk]))
    assert page.status_code == 200
    assert "email the manager and it-ops@example.com" in page.text
    page = admin_client.get(reverse("admin:automations_execution_change", args=[execution.pk]))
    assert page.status_code == 200
    assert "alex.chen@example.com" in page.text and "it-ops@example.com" in page.text
    row = ActionLog.objects.get(target_label="it-ops@example.com")
    page = admin_client.get(reverse("admin:automations_actionlog_change", args=[row.pk]))
    assert page.status_code == 200
    assert "Recipient" in page.text and "Send an email" in page.text


@needs_chromium
@pytest.mark.django_db(transaction=True)
def test_the_card_previews_as_you_type_in_chromium(live_server, browser):
    from django.apps import apps

    from assetsonar import roles as portal_roles
    from automations.tests.browser import screenshot, settled, wait_until

    portal_roles.sync_roles(apps)
    make_user("itm", IT_MANAGER)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "itm")
    page.fill("#id_password", "pw-itm-Secret1")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/automations/new/")
    page.wait_for_selector("#builder-form")

    page.click('button[value="add:email"]')
    page.wait_for_selector('[data-kind="email"] .email-preview-subject')
    settled(page)
    assert "Jordan Rivera has left" in page.inner_text(".email-preview-subject")

    page.fill('[data-kind="email"] input[name$="-subject"]', "Bye {{ member.first_name }}")
    page.fill('[data-kind="email"] textarea[name$="-body"]', "<b>{{ member.department }}</b>")
    page.locator('[data-kind="email"] textarea[name$="-body"]').blur()
    wait_until(
        page,
        "() => (document.querySelector('.email-preview-subject') || {}).textContent "
        "=== 'Bye Jordan'",
    )
    settled(page)
    assert page.inner_text(".email-preview-html") == "<b>Engineering</b>"  # shown as text
    assert page.inner_text(".email-preview-text") == "<b>Engineering</b>"
    screenshot(page, "builder-email.png")

    page.fill('[data-kind="email"] textarea[name$="-body"]', "Hi {{ member.nope }}")
    page.locator('[data-kind="email"] textarea[name$="-body"]').blur()
    wait_until(page, "() => document.querySelector('.email-preview ul.errorlist') !== null")
    assert "Unknown placeholder {{ member.nope }} on line 1." in page.inner_text(".email-preview")
    assert errors == []


def test_the_automation_page_describes_the_email(manager_client):
    automation = email_automation(manager=True, member="personal", addresses=["it-ops@example.com"])
    html = manager_client.get(automation.get_absolute_url()).text
    assert "<li>The member's manager</li>" in html
    assert "The member (personal email if set, else work email)" in html
    assert "<li>it-ops@example.com</li>" in html
    assert "{{ member.full_name }} left ({{ devices.count }} devices)" in html
