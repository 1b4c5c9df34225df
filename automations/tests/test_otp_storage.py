"""Authenticator secrets at rest: the database never holds them in plain text (nor does the
admin show them), verification keeps django-otp's TOTP semantics, and the migration moves
django-otp's plain TOTPDevice rows over, encrypted."""

from __future__ import annotations

import importlib
import time
from base64 import b32encode
from binascii import unhexlify
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.apps import apps as django_apps
from django.contrib import admin
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_otp import devices_for_user, match_token
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from assetsonar import crypto
from automations import otp
from automations.models import AuthenticatorDevice
from automations.tests.builder_factories import totp_code, totp_device

pytestmark = pytest.mark.django_db

migration = importlib.import_module("automations.migrations.0004_authenticatordevice")

KEY_HEX = "3132333435363738393031323334353637383930"  # RFC 6238's test secret


def secret_forms(device: AuthenticatorDevice) -> list[str]:
    """Every way the secret could be written down: hex, base32 (as in the QR code and as shown
    for typing in, upper and lower case)."""
    key = device.bin_key
    b32 = b32encode(key).decode().rstrip("=")
    return [key.hex(), key.hex().upper(), b32, b32.lower(), otp.secret_text(device)]


def raw_rows() -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {AuthenticatorDevice._meta.db_table}")  # noqa: S608 (our table name)
        return repr(cursor.fetchall())


@pytest.fixture
def frozen_mid_step(monkeypatch):
    """Time stands still in the middle of a 30 s step, so no test straddles a step boundary."""
    now = (int(time.time()) // 30) * 30 + 15
    monkeypatch.setattr(time, "time", lambda: now)
    return now


def test_the_database_never_holds_the_secret_in_plain_text(client, mdm_operator):
    client.force_login(mdm_operator)
    client.post(reverse("automations:otp_enroll"), {"password": "pw-operator-Secret1"})
    page = client.get(reverse("automations:otp_enroll")).text
    device = AuthenticatorDevice.objects.get(user=mdm_operator)
    assert otp.secret_text(device) in page  # shown to its owner while enrolling...

    rows = raw_rows()
    assert device.key_encrypted in rows
    for form in secret_forms(device):
        assert form not in rows  # ...but stored only encrypted
    assert not TOTPDevice.objects.exists()


def test_each_device_gets_its_own_random_secret(mdm_operator, it_manager):
    one, two = totp_device(mdm_operator), totp_device(it_manager)

    assert len(one.bin_key) == 20
    assert one.bin_key != two.bin_key
    assert one.key_encrypted != two.key_encrypted


def test_a_rotated_encryption_key_still_decrypts_older_secrets(mdm_operator, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    try:
        settings.FIELD_ENCRYPTION_KEYS = [old]
        crypto._fernet.cache_clear()
        device = totp_device(mdm_operator)
        key = device.bin_key

        settings.FIELD_ENCRYPTION_KEYS = [new, old]
        crypto._fernet.cache_clear()
        assert AuthenticatorDevice.objects.get(pk=device.pk).bin_key == key
    finally:
        crypto._fernet.cache_clear()


def test_the_qr_code_url_is_django_otps_own(mdm_operator, settings):
    settings.OTP_TOTP_ISSUER = "AssetSonar"
    device = totp_device(mdm_operator, key_encrypted=crypto.encrypt(KEY_HEX))
    plain = TOTPDevice(user=mdm_operator, name="Authenticator app", key=KEY_HEX)

    assert device.config_url == plain.config_url
    assert device.config_url.startswith("otpauth://totp/AssetSonar%3Aoperator?secret=GEZDGNBV")


# --- Verification: django-otp's semantics on the encrypted secret -------------------------------


def test_a_valid_code_verifies_once_and_records_its_step(mdm_operator, frozen_mid_step):
    device = totp_device(mdm_operator)
    code = totp_code(device)

    assert device.verify_token(code)
    device.refresh_from_db()
    assert device.last_t == TOTP(device.bin_key).t()
    assert device.last_used_at is not None

    assert not device.verify_token(code)  # last_t: the same code is refused the second time


def test_a_wrong_code_is_refused_and_throttles_even_the_right_one(mdm_operator, frozen_mid_step):
    device = totp_device(mdm_operator)
    window = {totp_code(device, steps=s) for s in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222") if c not in window)

    assert not device.verify_token(wrong)
    device.refresh_from_db()
    assert device.throttling_failure_count == 1
    assert not device.verify_token(totp_code(device))  # within the one-second wait
    assert device.verify_is_allowed()[0] is False

    device.throttling_failure_timestamp = timezone.now() - timedelta(seconds=3)
    device.save()
    assert device.verify_token(totp_code(device))
    device.refresh_from_db()
    assert device.throttling_failure_count == 0


@pytest.mark.parametrize(("steps", "accepted"), [(-1, True), (1, True), (-2, False), (2, False)])
def test_one_step_either_side_is_accepted_and_two_are_not(
    mdm_operator, frozen_mid_step, steps, accepted
):
    device = totp_device(mdm_operator)

    result = otp.verify(user=mdm_operator, token=totp_code(device, steps=steps), purpose="a test")

    assert result.ok is accepted


def test_django_otp_finds_the_device_and_matches_its_codes(mdm_operator, frozen_mid_step):
    device = totp_device(mdm_operator)

    assert list(devices_for_user(mdm_operator)) == [device]
    assert match_token(mdm_operator, totp_code(device)) == device
    assert device.persistent_id == f"automations.authenticatordevice/{device.pk}"


# --- Admin -----------------------------------------------------------------------------------


def test_the_admin_never_shows_the_secret_and_cannot_add_a_device(admin_client, mdm_operator):
    device = totp_device(mdm_operator)
    pages = [
        admin_client.get(reverse("admin:automations_authenticatordevice_changelist")),
        admin_client.get(reverse("admin:automations_authenticatordevice_change", args=[device.pk])),
    ]

    for page in pages:
        assert page.status_code == 200
        assert "operator" in page.text
        for form in [*secret_forms(device), device.key_encrypted]:
            assert form not in page.text
        assert "otpauth://" not in page.text
    add = admin_client.get(reverse("admin:automations_authenticatordevice_add"))
    assert add.status_code == 403
    assert not admin.site.is_registered(TOTPDevice)


# --- The migration from django-otp's TOTPDevice --------------------------------------------------


def test_the_migration_moves_plain_devices_over_encrypted(mdm_operator, frozen_mid_step):
    created = timezone.now() - timedelta(days=90)
    plain = TOTPDevice.objects.create(
        user=mdm_operator,
        name="Phone",
        key=KEY_HEX,
        confirmed=True,
        tolerance=1,
        drift=1,
        last_t=1234,
        throttling_failure_count=2,
        throttling_failure_timestamp=created,
    )
    TOTPDevice.objects.filter(pk=plain.pk).update(created_at=created, last_used_at=created)
    TOTPDevice.objects.create(user=mdm_operator, name="Half set up", confirmed=False)

    migration.encrypt_totp_devices(django_apps, None)

    assert not TOTPDevice.objects.exists()
    device, pending = AuthenticatorDevice.objects.order_by("id")
    assert device.bin_key == unhexlify(KEY_HEX)
    assert KEY_HEX not in raw_rows()
    assert (device.user, device.name, device.confirmed) == (mdm_operator, "Phone", True)
    assert (device.tolerance, device.drift, device.last_t) == (1, 1, 1234)
    assert (device.throttling_failure_count, device.throttling_failure_timestamp) == (2, created)
    assert (device.created_at, device.last_used_at) == (created, created)
    assert (pending.name, pending.confirmed) == ("Half set up", False)

    # The code the user's app already shows works, and the admin sign-in finds the device.
    device.throttling_failure_count = 0
    device.save()
    assert otp.confirmed_device(mdm_operator) == device
    assert otp.verify(user=mdm_operator, token=totp_code(device), purpose="a test").ok


def test_the_migration_can_be_reversed(mdm_operator):
    device = totp_device(mdm_operator, key_encrypted=crypto.encrypt(KEY_HEX), last_t=99)

    migration.decrypt_authenticator_devices(django_apps, None)

    assert not AuthenticatorDevice.objects.exists()
    plain = TOTPDevice.objects.get()
    assert (plain.key, plain.last_t, plain.confirmed) == (KEY_HEX, 99, True)
    assert plain.created_at == device.created_at
