"""Authenticator apps move from django-otp's TOTPDevice, which keeps the shared secret as plain
hex, to automations.AuthenticatorDevice, which keeps it encrypted (assetsonar.crypto). Every
existing device is copied with its secret encrypted and its state (confirmed, last_t, drift,
throttling, timestamps) intact, then the plain row is deleted. Sessions verified with an old
device id (otp_totp.totpdevice/<id>) stop counting as verified, so staff with an authenticator
sign in to the Django admin once more."""

import automations.models
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from assetsonar import crypto

# Copied as they are; `key` becomes `key_encrypted`, and the timestamps are set afterwards because
# `created_at` is auto_now_add.
STATE_FIELDS = (
    "user_id",
    "name",
    "confirmed",
    "step",
    "t0",
    "digits",
    "tolerance",
    "drift",
    "last_t",
    "throttling_failure_timestamp",
    "throttling_failure_count",
)


def encrypt_totp_devices(apps, schema_editor):
    """Copy every TOTPDevice into AuthenticatorDevice with its secret encrypted, then delete it."""
    plain_model = apps.get_model("otp_totp", "TOTPDevice")
    encrypted_model = apps.get_model("automations", "AuthenticatorDevice")
    for plain in plain_model.objects.order_by("id"):
        device = encrypted_model.objects.create(
            key_encrypted=crypto.encrypt(plain.key),
            **{field: getattr(plain, field) for field in STATE_FIELDS},
        )
        encrypted_model.objects.filter(pk=device.pk).update(
            created_at=plain.created_at, last_used_at=plain.last_used_at
        )
        plain.delete()


def decrypt_authenticator_devices(apps, schema_editor):
    """Undo: give django-otp's TOTPDevice its plain rows back, so that rolling back does not
    silently drop every enrolment (staff with an authenticator would then reach the admin with a
    password alone)."""
    plain_model = apps.get_model("otp_totp", "TOTPDevice")
    encrypted_model = apps.get_model("automations", "AuthenticatorDevice")
    for device in encrypted_model.objects.order_by("id"):
        plain = plain_model.objects.create(
            key=crypto.decrypt(device.key_encrypted),
            **{field: getattr(device, field) for field in STATE_FIELDS},
        )
        plain_model.objects.filter(pk=plain.pk).update(
            created_at=device.created_at, last_used_at=device.last_used_at
        )
        device.delete()


class Migration(migrations.Migration):

    dependencies = [
        ('automations', '0003_sweeper_schedule'),
        ('otp_totp', '0003_add_timestamps'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='AuthenticatorDevice',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(help_text='The human-readable name of this device.', max_length=64)),
                ('confirmed', models.BooleanField(default=True, help_text='Is this device ready for use?')),
                ('throttling_failure_timestamp', models.DateTimeField(blank=True, default=None, help_text='A timestamp of the last failed verification attempt. Null if last attempt succeeded.', null=True)),
                ('throttling_failure_count', models.PositiveIntegerField(default=0, help_text='Number of successive failed attempts.')),
                ('created_at', models.DateTimeField(auto_now_add=True, help_text='The date and time when this device was initially created in the system.', null=True)),
                ('last_used_at', models.DateTimeField(blank=True, help_text='The most recent date and time this device was used.', null=True)),
                ('key_encrypted', models.TextField(default=automations.models.new_encrypted_key, editable=False)),
                ('step', models.PositiveSmallIntegerField(default=30, help_text='The time step in seconds.')),
                ('t0', models.BigIntegerField(default=0, help_text='The Unix time at which to begin counting steps.')),
                ('digits', models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6, help_text='The number of digits to expect in a token.')),
                ('tolerance', models.PositiveSmallIntegerField(default=1, help_text='The number of time steps in the past or future to allow.')),
                ('drift', models.SmallIntegerField(default=0, help_text='The number of time steps the prover is known to deviate from our clock.')),
                ('last_t', models.BigIntegerField(default=-1, help_text='The time step of the latest verified token; the next must be at a later one.')),
                ('user', models.ForeignKey(help_text='The user that this device belongs to.', on_delete=django.db.models.deletion.CASCADE, to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'authenticator app',
                'abstract': False,
            },
        ),
        migrations.RunPython(encrypt_totp_devices, decrypt_authenticator_devices),
    ]
