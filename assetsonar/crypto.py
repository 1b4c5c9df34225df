"""Encryption at rest for secrets the portal must be able to read back (MDM credentials, PINs).

Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`. Keys come from FIELD_ENCRYPTION_KEYS (comma
separated, first one encrypts, all decrypt, so keys can be rotated); without it a key is derived
from SECRET_KEY.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


@cache
def _fernet() -> MultiFernet:
    keys = list(settings.FIELD_ENCRYPTION_KEYS)
    if not keys:
        digest = hashlib.sha256(
            b"assetsonar-field-encryption:" + settings.SECRET_KEY.encode()
        ).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key.encode()) for key in keys])


def encrypt(plaintext: str) -> str:
    """Encrypt a string; empty stays empty so "not set" is visible without decrypting."""
    if not plaintext:
        return ""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError(
            "A stored secret cannot be decrypted: SECRET_KEY or FIELD_ENCRYPTION_KEYS changed."
        ) from exc
