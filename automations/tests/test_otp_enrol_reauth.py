"""The enrolment page shows the pending authenticator secret only after the password, never to a
session alone, and no browser or proxy may keep it."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from automations import otp
from automations.models import AuthenticatorDevice
from automations.views import otp as otp_views

pytestmark = pytest.mark.django_db

ENROL = reverse("automations:otp_enroll")
PASSWORD = "pw-operator-Secret1"  # conftest.make_user's password for the "operator" user


@pytest.fixture
def operator_client(client, mdm_operator):
    client.force_login(mdm_operator)
    return client


def shows_a_secret(text: str) -> bool:
    return "data:image/svg+xml" in text or 'id="otp-secret"' in text


def test_a_signed_in_session_alone_does_not_see_the_pending_secret(operator_client, mdm_operator):
    # A device left pending by an earlier visit: its key must not be shown without the password.
    pending = otp.pending_device(mdm_operator)

    page = operator_client.get(ENROL)

    assert page.status_code == 200
    assert not shows_a_secret(page.text)
    assert otp.secret_text(pending) not in page.text
    assert 'autocomplete="current-password"' in page.text
    assert "no-store" in page["Cache-Control"]


def test_a_wrong_password_shows_no_secret_and_is_audited(operator_client, mdm_operator):
    page = operator_client.post(ENROL, {"password": "not-mine"})

    assert "Your password is not right" in page.text
    assert not shows_a_secret(page.text)
    assert not AuthenticatorDevice.objects.exists()
    assert "no-store" in page["Cache-Control"]


def test_the_right_password_opens_the_secret_for_ten_minutes(
    operator_client, mdm_operator, monkeypatch
):
    answer = operator_client.post(ENROL, {"password": PASSWORD})
    assert answer.status_code == 302

    page = operator_client.get(answer.url)
    device = AuthenticatorDevice.objects.get(user=mdm_operator)
    assert otp.secret_text(device) in page.text
    assert "no-store" in page["Cache-Control"]

    later = time.time() + otp_views.REAUTH_MAX_AGE + 1
    monkeypatch.setattr(time, "time", lambda: later)
    page = operator_client.get(ENROL)
    assert not shows_a_secret(page.text)
    assert otp.secret_text(device) not in page.text
    # Nor can a code be confirmed without the password again.
    confirm = operator_client.post(ENROL, {"otp_token": "123456"})
    assert "Enter your password again" in confirm.text
    device.refresh_from_db()
    assert not device.confirmed


def test_the_password_opening_the_secret_belongs_to_the_user_who_entered_it(
    client, mdm_operator, it_manager
):
    client.force_login(mdm_operator)
    client.post(ENROL, {"password": PASSWORD})
    session = client.session
    mark = session[otp_views.REAUTH_KEY]
    client.force_login(it_manager)
    session = client.session
    session[otp_views.REAUTH_KEY] = mark
    session.save()

    assert not shows_a_secret(client.get(ENROL).text)
