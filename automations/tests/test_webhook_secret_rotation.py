"""Rotating a webhook's signing secret: for a grace period (WEBHOOK_SECRET_GRACE_HOURS, 24 h by
default, shown on the page) each delivery carries two signatures in `webhook-signature`, one per
secret, so a receiver with either accepts it; then only the new secret signs. Checked by the
standardwebhooks verifier against a real receiver on 127.0.0.1. The old secret stays encrypted
and is never shown."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from automations import services
from automations.models import Action
from automations.tests.engine_factories import SECRET, make_engine_automation, use_sync_q
from automations.tests.servers import WebhookReceiver
from conftest import make_member
from members.services import member_deactivate

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)
    with WebhookReceiver() as hook:
        yield hook


@pytest.fixture
def deactivate(django_capture_on_commit_callbacks):
    def run():
        with django_capture_on_commit_callbacks(execute=True):
            member_deactivate(member=make_member(), actor=None, reason="Last working day")

    return run


def webhook_of(automation) -> Action:
    return automation.actions.get(kind="webhook")


def test_during_the_grace_period_both_secrets_sign(receiver, deactivate):
    automation = make_engine_automation(webhook_url=receiver.url())
    new = services.automation_rotate_secret(automation=automation, actor=None)

    deactivate()

    (request,) = receiver.requests
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    # A receiver that still has the old secret accepts it, and so does one with the new.
    assert Webhook(SECRET).verify(request.body, request.headers)["type"] == "member.deactivated"
    assert Webhook(new).verify(request.body, request.headers)["type"] == "member.deactivated"


def test_after_the_grace_period_only_the_new_secret_signs(receiver, deactivate):
    automation = make_engine_automation(webhook_url=receiver.url())
    new = services.automation_rotate_secret(automation=automation, actor=None)
    # 24 hours later.
    Action.objects.filter(pk=webhook_of(automation).pk).update(
        previous_secret_until=timezone.now() - timedelta(seconds=1)
    )

    deactivate()

    (request,) = receiver.requests
    assert " " not in request.headers["webhook-signature"]
    Webhook(new).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(request.body, request.headers)


def test_the_grace_period_is_24_hours_by_default_and_configurable(settings):
    automation = make_engine_automation(webhook_url="https://127.0.0.1/hook")
    services.automation_rotate_secret(automation=automation, actor=None)
    until = webhook_of(automation).previous_secret_until
    assert abs(until - (timezone.now() + timedelta(hours=24))) < timedelta(minutes=1)

    settings.WEBHOOK_SECRET_GRACE_HOURS = 0
    new = services.automation_rotate_secret(automation=automation, actor=None)
    webhook = webhook_of(automation)
    assert webhook.previous_secret_until is None
    assert webhook.signing_secrets() == [new]


def test_a_second_rotation_drops_the_oldest_secret():
    automation = make_engine_automation(webhook_url="https://127.0.0.1/hook")
    middle = services.automation_rotate_secret(automation=automation, actor=None)
    newest = services.automation_rotate_secret(automation=automation, actor=None)

    assert webhook_of(automation).signing_secrets() == [newest, middle]


def test_the_page_shows_the_grace_period_and_never_the_old_secret(manager_client):
    automation = make_engine_automation(webhook_url="https://127.0.0.1/hook")
    url = reverse("automations:rotate_secret", args=[automation.pk])

    before = manager_client.get(automation.get_absolute_url()).text
    assert "For 24 hours each request is signed with both" in " ".join(before.split())

    response = manager_client.post(url, follow=True)
    text = " ".join(response.content.decode().split())
    assert "The old one keeps signing beside it for 24 h" in text
    assert "The previous secret also signs until" in text
    assert SECRET not in text
    again = manager_client.get(automation.get_absolute_url()).text
    assert 'id="previous-secret-note"' in again and SECRET not in again

    # Stored encrypted only.
    webhook = webhook_of(automation)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT previous_secret_encrypted FROM automations_action WHERE id = %s",
            [webhook.pk],
        )
        (stored,) = cursor.fetchone()
    assert stored and SECRET not in stored
    assert webhook.signing_secrets()[1] == SECRET


def test_the_admin_says_the_previous_secret_still_signs_without_showing_it(admin_client):
    automation = make_engine_automation(webhook_url="https://127.0.0.1/hook")
    new = services.automation_rotate_secret(automation=automation, actor=None)

    page = admin_client.get(reverse("admin:automations_automation_change", args=[automation.pk]))

    text = page.content.decode()
    assert "the previous one also signs until" in text
    assert SECRET not in text and new not in text
