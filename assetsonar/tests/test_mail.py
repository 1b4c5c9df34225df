"""Sending one email (assetsonar/mail.py) to a real SMTP server on 127.0.0.1
(assetsonar/tests/smtp_server.py), and what each way of failing is called."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time

import pytest
from django.conf import settings as django_settings

from assetsonar import mail
from assetsonar.mail import KEY_HEADER, Outcome, send_message
from assetsonar.placeholders import member_context, render_message
from assetsonar.tests.smtp_server import SMTPTestServer
from conftest import make_asset, make_entitlement, make_license, make_member


def _send(**overrides):
    fields = {
        "to": "sam.okafor@example.com",
        "subject": "Offboarding",
        "text": "Plain body",
        "html": "<p>HTML body</p>",
        "key": "exec-1:action-2:member",
    }
    fields.update(overrides)
    return send_message(**fields)


@pytest.mark.django_db
def test_a_rendered_message_arrives_with_its_headers_recipient_both_parts_and_values(
    smtp_server,
):
    manager = make_member(full_name="Morgan Lee", email="morgan.lee@example.com")
    member = make_member(
        full_name="Zoë <Müller> & Co", email="zoe.mueller@example.com", manager=manager
    )
    make_asset(
        asset_tag="AT-00318", name="MacBook Pro 14", serial_number="C02ZK1", custodian=member
    )
    make_entitlement(license=make_license(name="Figma", vendor="Figma"), member=member)
    rendered = render_message(
        subject="Offboarding {{ member.full_name }} ({{ devices.count }} devices)",
        body=(
            "Hello {{ member.manager.first_name }},\n\n{{ member.full_name }} leaves us.\n"
            "Devices:\n{{ devices }}\nLicenses:\n{{ licenses }}\n{{ member.url }}"
        ),
        context=member_context(member_id=member.pk, portal_url="https://assets.example.com"),
    )

    result = send_message(
        to=manager.email,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        key=f"exec-7:action-3:manager:{manager.pk}",
        reply_to=["it-ops@example.com"],
    )

    assert result.outcome is Outcome.SENT and result.sent and not result.retry
    assert result.insight == (
        f"Sent to morgan.lee@example.com through the mail server at 127.0.0.1:{smtp_server.port}."
    )
    [received] = smtp_server.messages
    assert received.mail_from == "assetsonar@example.com"
    assert received.rcpt_tos == ["morgan.lee@example.com"]
    assert received.header("From") == "AssetSonar <assetsonar@example.com>"
    assert received.header("To") == "morgan.lee@example.com"
    assert received.header("Reply-To") == "it-ops@example.com"
    assert received.header("Subject") == "Offboarding Zoë <Müller> & Co (1 devices)"
    assert received.header("Message-ID") == result.message_id
    assert result.message_id == mail.message_id_for(f"exec-7:action-3:manager:{manager.pk}")
    assert result.message_id.endswith("@example.com>")
    assert received.header(KEY_HEADER) == f"exec-7:action-3:manager:{manager.pk}"
    assert received.header("Auto-Submitted") == "auto-generated"
    assert received.message.get_content_type() == "multipart/alternative"
    url = f"https://assets.example.com/members/{member.pk}/"
    assert received.text == (
        "Hello Morgan,\n\nZoë <Müller> & Co leaves us.\nDevices:\n"
        "AT-00318 · MacBook Pro 14 · C02ZK1\nLicenses:\nFigma · Figma\n" + url
    )
    assert received.html.startswith("<!DOCTYPE html>")
    assert (
        "Hello Morgan,<br>\n<br>\nZoë &lt;Müller&gt; &amp; Co leaves us.<br>\nDevices:<br>\n"
        "AT-00318 · MacBook Pro 14 · C02ZK1<br>\nLicenses:<br>\nFigma · Figma<br>\n"
        f'<a href="{url}">{url}</a>'
    ) in received.html
    assert "<Müller>" not in received.html


def test_a_message_without_html_is_plain_text_only_and_the_subject_one_line(smtp_server):
    result = _send(html=None, subject="Two\r\nlines\nBcc: x@example.com")
    assert result.sent
    [received] = smtp_server.messages
    assert received.message.get_content_type() == "text/plain"
    assert received.html is None
    assert received.text == "Plain body\n"
    assert received.header("Subject") == "Two lines Bcc: x@example.com"
    assert received.header("Bcc") is None
    assert received.rcpt_tos == ["sam.okafor@example.com"]


def test_every_attempt_with_one_key_has_one_message_id(smtp_server):
    smtp_server.reply("rcpt", "451 4.3.0 Mailbox busy, try later", times=1)
    first = _send(key="exec-9:action-1:manager")
    second = _send(key="exec-9:action-1:manager")
    other = _send(key="exec-9:action-1:member")
    assert (first.outcome, second.outcome, other.outcome) == (
        Outcome.TEMPORARY,
        Outcome.SENT,
        Outcome.SENT,
    )
    assert first.message_id == second.message_id != other.message_id
    assert [m.header("Message-ID") for m in smtp_server.messages] == [
        second.message_id,
        other.message_id,
    ]


@pytest.mark.parametrize(
    ("stage", "reply", "outcome", "insight"),
    [
        (
            "rcpt",
            "421 4.3.0 Service shutting down",
            Outcome.TEMPORARY,
            "The mail server answered 421 4.3.0 Service shutting down (temporary): will retry.",
        ),
        (
            "rcpt",
            "451 4.3.0 Mailbox busy",
            Outcome.TEMPORARY,
            "The mail server answered 451 4.3.0 Mailbox busy (temporary): will retry.",
        ),
        (
            "rcpt",
            "550 5.1.1 no such user",
            Outcome.PERMANENT,
            "The mail server refused the recipient permanently: 550 5.1.1 no such user.",
        ),
        (
            "data",
            "451 4.7.1 Greylisted, come back later",
            Outcome.TEMPORARY,
            "The mail server answered 451 4.7.1 Greylisted, come back later (temporary): will "
            "retry.",
        ),
        (
            "data",
            "421 4.4.2 Timeout, closing",
            Outcome.TEMPORARY,
            "The mail server answered 421 4.4.2 Timeout, closing (temporary): will retry.",
        ),
        (
            "rcpt",
            "450 4.2.1 Mailbox temporarily unavailable",
            Outcome.TEMPORARY,
            "The mail server answered 450 4.2.1 Mailbox temporarily unavailable (temporary): "
            "will retry.",
        ),
        (
            "data",
            "554 5.7.0 Transaction failed",
            Outcome.PERMANENT,
            "The mail server refused it permanently: 554 5.7.0 Transaction failed.",
        ),
        (
            "data",
            "550 5.7.1 Message rejected as spam",
            Outcome.PERMANENT,
            "The mail server refused it permanently: 550 5.7.1 Message rejected as spam.",
        ),
        (
            "mail",
            "553 5.7.1 Sender address rejected: not owned by user",
            Outcome.PERMANENT,
            "The mail server refused the sender address permanently: 553 5.7.1 Sender address "
            "rejected: not owned by user.",
        ),
        (
            "mail",
            "452 4.3.1 Insufficient system storage",
            Outcome.TEMPORARY,
            "The mail server answered 452 4.3.1 Insufficient system storage (temporary): will "
            "retry.",
        ),
    ],
)
def test_each_reply_is_classified(smtp_server, stage, reply, outcome, insight):
    result = _send()
    assert result.sent  # the same message goes through when the server does not object
    smtp_server.reply(stage, reply)

    result = _send()

    assert result.outcome is outcome
    assert result.retry is (outcome is Outcome.TEMPORARY)
    assert result.insight == insight
    assert result.smtp_code == int(reply[:3])
    assert result.smtp_reply == reply[4:]
    assert len(smtp_server.messages) == 1  # only the first
    assert (stage, "reply") in [(s, what) for s, _, what in smtp_server.commands]


@pytest.mark.parametrize(
    ("stage", "reset"), [("rcpt", False), ("data", False), ("rcpt", True), ("data", True)]
)
def test_a_connection_dropped_mid_transaction_is_temporary(smtp_server, stage, reset):
    smtp_server.drop(stage, reset=reset)
    result = _send()
    assert result.outcome is Outcome.TEMPORARY
    assert result.insight.startswith(
        f"The mail server at 127.0.0.1:{smtp_server.port} closed the connection mid-transaction"
    )
    assert result.insight.endswith(": will retry.")
    if reset and stage == "rcpt":
        assert "reset" in result.insight.lower()
    assert result.smtp_code is None
    assert smtp_server.messages == []


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_server_that_stops_answering_times_out_within_email_timeout(smtp_server, stage):
    smtp_server.hang(stage)
    started = time.monotonic()
    result = _send()
    elapsed = time.monotonic() - started
    assert result.outcome is Outcome.TEMPORARY
    assert result.insight == (
        f"The mail server at 127.0.0.1:{smtp_server.port} did not answer within 2 s: will retry."
    )
    assert 1.5 < elapsed < 4
    assert smtp_server.messages == []


def test_a_server_that_never_greets_times_out(settings):
    listener = socket.create_server(("127.0.0.1", 0))  # listens, never accepts nor greets
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", listener.getsockname()[1]
        settings.EMAIL_USE_TLS, settings.EMAIL_TIMEOUT = False, 1
        result = _send()
    finally:
        listener.close()
    assert result.outcome is Outcome.TEMPORARY
    assert result.insight.endswith("did not answer within 1 s: will retry.")
    assert result.duration_ms < 3000


def test_connection_refused_is_temporary(settings):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", port, False
    result = _send()
    assert result.outcome is Outcome.TEMPORARY
    assert result.insight == (
        f"Could not connect to the mail server at 127.0.0.1:{port} (connection refused): "
        "will retry."
    )


def test_starttls_asked_of_a_server_without_it_is_permanent(smtp_server, settings):
    settings.EMAIL_USE_TLS = True
    result = _send()
    assert result.outcome is Outcome.PERMANENT
    assert result.insight == (
        f"The mail server at 127.0.0.1:{smtp_server.port} does not offer what the settings ask "
        "(STARTTLS extension not supported by server.): check EMAIL_USE_TLS, EMAIL_PORT and "
        "EMAIL_HOST_USER."
    )


def test_tls_on_a_port_that_speaks_plain_smtp_is_permanent(smtp_server, settings):
    settings.EMAIL_USE_SSL = True
    result = _send()
    assert result.outcome is Outcome.PERMANENT
    assert result.insight == (
        f"TLS with the mail server at 127.0.0.1:{smtp_server.port} failed (WRONG_VERSION_NUMBER): "
        "check EMAIL_PORT, EMAIL_USE_TLS and EMAIL_USE_SSL."
    )


def test_a_certificate_that_cannot_be_trusted_is_permanent(settings):
    server = SMTPTestServer(starttls=True).start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
        settings.EMAIL_USE_TLS, settings.EMAIL_USE_SSL = True, False
        result = _send()
    finally:
        server.stop()
    assert result.outcome is Outcome.PERMANENT
    assert result.insight == (
        f"The mail server at 127.0.0.1:{server.port} has a certificate that cannot be trusted "
        "(self-signed certificate): check EMAIL_HOST."
    )
    assert server.messages == []


def test_sign_in_with_the_right_password_sends(smtp_server, settings):
    smtp_server.require_auth("mailer@example.com", "correct-Horse-42")
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = (
        "mailer@example.com",
        "correct-Horse-42",
    )
    assert _send().sent
    assert smtp_server.logins == [("mailer@example.com", "correct-Horse-42")]
    assert len(smtp_server.messages) == 1


def test_a_refused_sign_in_is_permanent_and_the_password_is_never_logged(
    smtp_server, settings, caplog
):
    smtp_server.require_auth("mailer@example.com", "correct-Horse-42")
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "mailer@example.com", "wrong-Pass-77"
    with caplog.at_level(logging.DEBUG):
        result = _send()
    assert result.outcome is Outcome.PERMANENT
    assert result.insight.startswith("The mail server refused the sign-in (535 ")
    assert result.insight.endswith("check EMAIL_HOST_USER and EMAIL_HOST_PASSWORD.")
    # Tried (smtplib tries each method the server offers: PLAIN, then LOGIN).
    assert set(smtp_server.logins) == {("mailer@example.com", "wrong-Pass-77")}
    assert "wrong-Pass-77" not in caplog.text
    assert "wrong-Pass-77" not in repr(result)
    assert result.insight in caplog.text  # the outcome is logged, the secret is not


def test_without_sign_in_a_server_that_wants_one_refuses_permanently(smtp_server):
    smtp_server.require_auth("mailer@example.com", "correct-Horse-42")
    result = _send()
    assert result.outcome is Outcome.PERMANENT
    assert result.insight == (
        "The mail server refused the sender address permanently: 530 5.7.0 Authentication required."
    )


@pytest.mark.parametrize(
    ("to", "insight"),
    [
        ("", "No email address to send to."),
        ("  ", "No email address to send to."),
        ("not-an-address", "“not-an-address” is not a valid email address: not sent."),
        ("a@example.com, b@example.com", "“a@example.com, b@example.com” is not a valid email"),
        ("a@example.com\r\nBcc: b@example.com", "is not a valid email address: not sent."),
    ],
)
def test_an_address_that_is_not_one_is_permanent_and_never_sent(smtp_server, to, insight):
    result = _send(to=to)
    assert result.outcome is Outcome.PERMANENT
    assert insight in result.insight
    assert smtp_server.commands == []


@pytest.mark.parametrize("key", ["", "has space", "line\nbreak", "x" * 201, "naïve"])
def test_a_key_that_cannot_be_a_header_is_a_programming_error(key):
    with pytest.raises(ValueError, match="idempotency key"):
        _send(key=key)


def test_the_console_backend_prints_the_message_and_says_it_was_not_sent(settings, capsys):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    result = _send()
    assert result.outcome is Outcome.SENT
    assert result.insight == (
        "Printed to the worker's log for sam.okafor@example.com, not sent: EMAIL_HOST is not set "
        "(console backend)."
    )
    printed = capsys.readouterr().out
    assert "To: sam.okafor@example.com" in printed
    assert f"{KEY_HEADER}: exec-1:action-2:member" in printed
    assert "Plain body" in printed and "<p>HTML body</p>" in printed


def test_the_test_server_records_what_it_refused_and_forgets_rules_on_accept():
    server = SMTPTestServer().start()
    try:
        server.reply("rcpt", "550 5.1.1 no such user")
        server.accept()
        assert server._take_rule("rcpt") is None
        with pytest.raises(ValueError, match="stage must be one of"):
            server.reply("helo", "500 no")
    finally:
        server.stop()


# --- Settings from the environment -----------------------------------------------------------


def _settings_in_a_fresh_process(**env):
    code = (
        "from django.conf import settings as s; "
        "print(s.EMAIL_BACKEND, s.EMAIL_HOST or '-', s.EMAIL_PORT, s.EMAIL_USE_TLS, "
        "s.EMAIL_USE_SSL, s.EMAIL_TIMEOUT, s.DEFAULT_FROM_EMAIL, s.PORTAL_URL, sep='|')"
    )
    base = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "assetsonar.settings",
        "DEBUG": "true",
        "LOCAL_DEMO": "",
        "DATABASE_URL": "",
    }
    return subprocess.run(  # noqa: S603 - our interpreter
        [sys.executable, "-c", code],
        cwd=django_settings.BASE_DIR,
        env={**base, **env},
        capture_output=True,
        text=True,
    )


def test_mail_settings_come_from_the_environment_with_the_console_backend_by_default():
    default = _settings_in_a_fresh_process()
    assert default.stdout.strip() == (
        "django.core.mail.backends.console.EmailBackend|-|587|True|False|10|"
        "AssetSonar <assetsonar@localhost>|http://localhost:8000"
    )
    smtp = _settings_in_a_fresh_process(
        EMAIL_HOST="smtp.example.com",
        EMAIL_PORT="465",
        EMAIL_USE_TLS="false",
        EMAIL_USE_SSL="true",
        EMAIL_TIMEOUT="5",
        DEFAULT_FROM_EMAIL="IT <it@example.com>",
        PORTAL_URL="https://assets.example.com/",
    )
    assert smtp.stdout.strip() == (
        "django.core.mail.backends.smtp.EmailBackend|smtp.example.com|465|False|True|5|"
        "IT <it@example.com>|https://assets.example.com"
    )
    both = _settings_in_a_fresh_process(EMAIL_USE_SSL="true")
    assert both.returncode != 0
    assert "EMAIL_USE_TLS (STARTTLS, port 587) and EMAIL_USE_SSL" in both.stderr
    bad_url = _settings_in_a_fresh_process(PORTAL_URL="assets.example.com")
    assert "PORTAL_URL must start with https://" in bad_url.stderr
