"""The Django admin's sign-in asks staff who set up an authenticator for its code."""

from __future__ import annotations

import pytest
from django.urls import reverse

from assetsonar.models import AuditEvent
from automations.tests.builder_factories import totp_code, totp_device
from conftest import make_user

pytestmark = pytest.mark.django_db

PASSWORD = "pw-support-Secret1"


def sign_in(client, **fields):
    data = {"username": "support", "password": PASSWORD, "next": "/admin/"}
    data.update(fields)
    return client.post(reverse("admin:login"), data)


def test_admin_sign_in_shows_the_code_field(client):
    response = client.get(reverse("admin:login"))

    assert 'name="otp_token"' in response.text
    assert "Required if you have set up an authenticator app." in response.text


def test_staff_without_an_authenticator_sign_in_with_their_password(client, support_staff):
    response = sign_in(client)

    assert response.status_code == 302 and response.url == "/admin/"
    assert client.get("/admin/").status_code == 200


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "Enter the 6-digit code from your authenticator app."),
        ("wrong", "The code is the 6 digits your authenticator app shows."),
    ],
)
def test_staff_with_an_authenticator_need_its_code(client, support_staff, token, message):
    totp_device(support_staff)

    response = sign_in(client, otp_token=token)

    assert response.status_code == 200
    assert message in response.text
    assert "_auth_user_id" not in client.session


def test_a_wrong_code_is_refused_and_audited(client, support_staff):
    device = totp_device(support_staff)
    window = {totp_code(device, steps=s) for s in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222") if c not in window)

    response = sign_in(client, otp_token=wrong)

    assert "That code is not right" in response.text
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.OTP_FAILED, message__contains="Django admin sign-in"
    ).exists()


def test_the_right_code_signs_staff_in_and_verifies_the_session(client, support_staff):
    device = totp_device(support_staff)

    response = sign_in(client, otp_token=totp_code(device))

    assert response.status_code == 302 and response.url == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert AuditEvent.objects.filter(action=AuditEvent.Action.OTP_VERIFIED).exists()


def test_staff_with_an_authenticator_signed_in_elsewhere_must_still_give_the_code(
    client, support_staff
):
    totp_device(support_staff)
    client.force_login(support_staff)  # e.g. the portal's sign-in page, which asks no code

    response = client.get("/admin/")

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))
    assert "your authenticator code" in client.get(response.url).text


def test_non_staff_cannot_use_the_admin_whatever_their_code(client):
    user = make_user("plain")
    device = totp_device(user)

    response = client.post(
        reverse("admin:login"),
        {"username": "plain", "password": "pw-plain-Secret1", "otp_token": totp_code(device)},
    )

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
