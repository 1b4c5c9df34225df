"""Factories for the asset tests, beside the shared ones in the root conftest."""

from __future__ import annotations

import itertools

from assets.models import MDMConnection

_seq = itertools.count(1)


def make_mdm_connection(**fields) -> MDMConnection:
    n = next(_seq)
    defaults = {"name": f"MDM {n}", "provider": MDMConnection.Provider.SIMULATOR}
    defaults.update(fields)
    return MDMConnection.objects.create(**defaults)
