"""One-time passwords when saving an MDM lock: the dialog, valid, wrong, reused and throttled
codes, the window of one step, enrolment (QR code, first code, back to the form with what was
typed), and the audit trail."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY

from assetsonar.models import AuditEvent
from automations import otp
from automations.models import AuthenticatorDevice, Automation
from automations.tests.builder_factories import (
    builder_data,
    make_automation,
    mdm_feature,
    totp_code,
    totp_device,
)

pytestmark = pytest.mark.django_db

CREATE = "/automations/new/"


@pytest.fixture
def operator_client(client, mdm_operator):
    mdm_feature()
    client.force_login(mdm_operator)
    return client


@pytest.fixture
def device(mdm_operator):
    return totp_device(mdm_operator)


def lock_post(**extra):
    return builder_data(
        name="Lock laptops",
        mdm={"message": "Return this laptop to IT", "phone": "+1 555 0100"},
        headers=[("X-Key", "typed-secret")],
        webhook={"url": "https://127.0.0.1/hooks/offboard"},
        **extra,
    )


def wrong_code(device) -> str:
    """A code no step of the window accepts."""
    window = {totp_code(device, steps=s) for s in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in window)


def dialog_error(response) -> str:
    match = re.search(
        r'<div class="alert alert-error" role="alert" id="otp-error">([^<]+)</div>', response.text
    )
    return match.group(1) if match else ""


def test_saving_a_new_mdm_lock_opens_the_code_dialog_and_keeps_what_was_typed(
    operator_client, device
):
    response = operator_client.post(CREATE, lock_post())

    assert response.status_code == 200
    text = response.text
    assert '<dialog id="otp-dialog"' in text and "data-open-on-load" in text
    assert "This change adds a device lock through MDM." in text
    assert 'name="otp_token"' in text
    assert 'value="Lock laptops"' in text
    assert "Return this laptop to IT</textarea>" in text
    assert 'value="typed-secret"' in text  # the header value survives the dialog round trip
    assert not Automation.objects.exists()


def test_a_valid_code_saves_and_marks_the_change_verified(operator_client, device, mdm_operator):
    response = operator_client.post(CREATE, lock_post(otp_token=totp_code(device)))

    assert response.status_code == 302
    automation = Automation.objects.get()
    assert automation.actions.get(kind="mdm_lock").config["message"] == "Return this laptop to IT"
    assert automation.changes.get().otp_verified
    event = AuditEvent.objects.get(action=AuditEvent.Action.OTP_VERIFIED)
    assert event.actor == mdm_operator
    assert "Lock laptops" in event.message


def test_a_wrong_code_says_so_and_saves_nothing(operator_client, device, mdm_operator):
    wrong = wrong_code(device)

    response = operator_client.post(CREATE, lock_post(otp_token=wrong))

    assert response.status_code == 200
    assert (
        dialog_error(response) == "That code is not right. Check your authenticator app and retry."
    )
    assert 'aria-invalid="true"' in response.text
    assert f'value="{wrong}"' not in response.text
    assert not Automation.objects.exists()
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.OTP_FAILED, actor=mdm_operator, message__contains="wrong code"
    ).exists()


@pytest.mark.parametrize("token", ["12345", "abcdef", "12 34 5x"])
def test_a_malformed_code_is_refused_without_counting_as_a_try(operator_client, device, token):
    response = operator_client.post(CREATE, lock_post(otp_token=token))

    assert dialog_error(response) == "The code is the 6 digits your authenticator app shows."
    device.refresh_from_db()
    assert device.throttling_failure_count == 0
    assert not Automation.objects.exists()


def test_a_code_cannot_be_used_twice(operator_client, device):
    code = totp_code(device)
    operator_client.post(CREATE, lock_post(otp_token=code))
    automation = Automation.objects.get()
    edit = reverse("automations:edit", args=[automation.pk])
    data = lock_post(otp_token=code, initial_conditions=1)
    data[next(key for key in data if key.endswith("-message"))] = "Changed message"
    data[next(key for key in data if key.endswith("-headers-INITIAL_FORMS"))] = "1"
    for i, action in enumerate(automation.actions.order_by("position")):
        data[f"actions-{i}-action_id"] = str(action.pk)

    response = operator_client.post(edit, data)

    assert "changes the MDM lock-screen message or phone number" in response.text
    assert (
        dialog_error(response)
        == "That code was already used. Wait for your app to show the next one."
    )
    assert automation.actions.get(kind="mdm_lock").config["message"] == "Return this laptop to IT"
    assert AuditEvent.objects.filter(message__contains="already used").exists()

    # A second later (the one-second lock after a failure has passed) the next code works.
    AuthenticatorDevice.objects.filter(pk=device.pk).update(
        throttling_failure_timestamp=timezone.now() - timedelta(seconds=2)
    )
    response = operator_client.post(edit, {**data, "otp_token": totp_code(device, steps=1)})
    assert response.status_code == 302
    assert automation.actions.get(kind="mdm_lock").config["message"] == "Changed message"


def test_repeated_failures_are_throttled_and_say_for_how_long(operator_client, device, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 60

    operator_client.post(CREATE, lock_post(otp_token=wrong_code(device)))
    response = operator_client.post(CREATE, lock_post(otp_token=totp_code(device)))

    message = dialog_error(response)
    assert re.fullmatch(r"Too many wrong codes\. Try again in (59|60) seconds\.", message), message
    assert not Automation.objects.exists()
    assert AuditEvent.objects.filter(message__contains="throttled").exists()


def test_throttling_grows_and_is_said_in_minutes(operator_client, device, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 60
    device.throttling_failure_count = 3
    device.throttling_failure_timestamp = timezone.now()
    device.save()

    response = operator_client.post(CREATE, lock_post(otp_token=totp_code(device)))

    assert dialog_error(response) == "Too many wrong codes. Try again in 4 minutes."


@pytest.mark.parametrize(("steps", "accepted"), [(-1, True), (1, True), (-2, False), (2, False)])
def test_the_window_is_one_step_either_side(operator_client, device, steps, accepted, monkeypatch):
    # Mid-step and frozen, so the test never straddles a step boundary.
    now = (int(time.time()) // 30) * 30 + 15
    monkeypatch.setattr(time, "time", lambda: now)
    response = operator_client.post(CREATE, lock_post(otp_token=totp_code(device, steps=steps)))

    assert Automation.objects.exists() is accepted, dialog_error(response)


def test_a_wide_stored_tolerance_or_learned_drift_does_not_widen_the_window(
    operator_client, mdm_operator
):
    device = totp_device(mdm_operator, tolerance=5, drift=3)

    operator_client.post(CREATE, lock_post(otp_token=totp_code(device, steps=3)))
    assert not Automation.objects.exists()

    device.refresh_from_db()
    device.throttling_failure_count = 0
    device.save()
    operator_client.post(CREATE, lock_post(otp_token=totp_code(device)))
    assert Automation.objects.exists()


def test_a_session_verified_earlier_is_not_enough(operator_client, device):
    session = operator_client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()

    response = operator_client.post(CREATE, lock_post())

    assert '<dialog id="otp-dialog"' in response.text
    assert not Automation.objects.exists()


def test_saves_that_leave_the_lock_unchanged_need_no_code(operator_client, device):
    automation = make_automation(name="Lock", mdm={"message": "Return", "phone": "+1 555 0100"})
    edit = reverse("automations:edit", args=[automation.pk])

    renamed = builder_data(
        automation=automation,
        name="Lock (renamed)",
        initial_conditions=1,
        mdm={"message": "Return", "phone": "+1 555 0100"},
    )
    assert operator_client.post(edit, renamed).status_code == 302

    removed = builder_data(automation=automation, name="Lock (renamed)", initial_conditions=1)
    assert operator_client.post(edit, removed).status_code == 302
    assert not automation.actions.filter(kind="mdm_lock").exists()
    assert not automation.changes.filter(otp_verified=True).exists()


def test_changing_the_phone_number_asks_for_a_code(operator_client, device):
    automation = make_automation(name="Lock", mdm={"message": "Return", "phone": "+1 555 0100"})

    response = operator_client.post(
        reverse("automations:edit", args=[automation.pk]),
        builder_data(
            automation=automation,
            name="Lock",
            initial_conditions=1,
            mdm={"message": "Return", "phone": "+1 555 0199"},
        ),
    )

    assert '<dialog id="otp-dialog"' in response.text
    assert automation.actions.get(kind="mdm_lock").config["phone"] == "+1 555 0100"


# --- No authenticator yet: enrol, then back to the form ------------------------------------------

PASSWORD = "pw-operator-Secret1"  # conftest.make_user's password for the "operator" fixture user


def test_without_an_authenticator_the_user_enrols_and_comes_back_to_the_form(
    operator_client, mdm_operator
):
    response = operator_client.post(CREATE, lock_post())

    assert response.status_code == 302
    parts = urlsplit(response.url)
    assert parts.path == reverse("automations:otp_enroll")
    next_url = parse_qs(parts.query)["next"][0]
    assert next_url == f"{CREATE}?restore=1"
    stash = operator_client.session[otp.STASH_KEY]
    assert "typed-secret" not in stash and "Lock laptops" not in stash  # encrypted

    # The password first: the page shows no key and makes no device before it.
    page = operator_client.get(response.url)
    assert page.status_code == 200
    assert 'name="password"' in page.text and "data:image/svg+xml" not in page.text
    assert not AuthenticatorDevice.objects.exists()
    reauth = operator_client.post(
        reverse("automations:otp_enroll"), {"next": next_url, "password": PASSWORD}
    )
    assert reauth.status_code == 302
    page = operator_client.get(reauth.url)
    assert 'src="data:image/svg+xml' in page.text
    pending = AuthenticatorDevice.objects.get(user=mdm_operator, confirmed=False)
    assert otp.secret_text(pending) in page.text
    assert pending.tolerance == 1

    wrong = operator_client.post(
        reverse("automations:otp_enroll"),
        {"otp_token": wrong_code(pending), "next": next_url, "password": PASSWORD},
    )
    assert "That code is not right" in wrong.text
    pending.throttling_failure_count = 0
    pending.save()

    no_password = operator_client.post(
        reverse("automations:otp_enroll"),
        {"otp_token": totp_code(pending), "next": next_url, "password": "not-my-password"},
    )
    assert "Your password is not right" in no_password.text
    pending.refresh_from_db()
    assert not pending.confirmed

    confirmed = operator_client.post(
        reverse("automations:otp_enroll"),
        {"otp_token": totp_code(pending), "next": next_url, "password": PASSWORD},
    )
    assert confirmed.status_code == 302 and confirmed.url == next_url
    pending.refresh_from_db()
    assert pending.confirmed
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.OTP_ENROLLED, actor=mdm_operator
    ).exists()

    restored = operator_client.get(next_url)
    text = restored.text
    assert 'value="Lock laptops"' in text
    assert "Return this laptop to IT</textarea>" in text
    assert 'value="typed-secret"' in text
    assert 'value="https://127.0.0.1/hooks/offboard"' in text
    assert '<dialog id="otp-dialog"' in text
    assert otp.STASH_KEY not in operator_client.session
    assert not Automation.objects.exists()

    saved = operator_client.post(CREATE, lock_post(otp_token=totp_code(pending, steps=1)))
    assert saved.status_code == 302
    assert Automation.objects.get().changes.get().otp_verified


def test_the_stash_is_only_restored_once_and_only_on_its_own_page(operator_client, mdm_operator):
    operator_client.post(CREATE, lock_post())
    totp_device(mdm_operator)

    other = make_automation(name="Other")
    page = operator_client.get(reverse("automations:edit", args=[other.pk]) + "?restore=1")
    assert "Lock laptops" not in page.text
    assert "Lock laptops" not in operator_client.get(f"{CREATE}?restore=1").text


def test_enrol_page_sends_an_enrolled_user_on_and_refuses_foreign_next_urls(
    operator_client, device
):
    response = operator_client.get(
        reverse("automations:otp_enroll"), {"next": "https://evil.example/"}
    )

    assert response.status_code == 302
    assert response.url == reverse("automations:list")


def test_enrol_page_reuses_the_pending_device_so_a_scanned_code_stays_valid(
    operator_client, mdm_operator
):
    operator_client.post(reverse("automations:otp_enroll"), {"password": PASSWORD})
    first = operator_client.get(reverse("automations:otp_enroll")).text
    second = operator_client.get(reverse("automations:otp_enroll")).text

    assert AuthenticatorDevice.objects.filter(user=mdm_operator).count() == 1
    key = otp.secret_text(AuthenticatorDevice.objects.get(user=mdm_operator))
    assert key in first and key in second
