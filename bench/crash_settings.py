"""Settings for bench/crashes.py: the real settings, with the recovery times shortened so that
three crashes take minutes, not the production lease and sweeper times (a 20 s worker timeout, so
a 30 s lease; the sweeper re-dispatches an event 40 s after its last dispatch)."""

import os
from datetime import timedelta

from assetsonar.settings import *  # noqa: F403

AUTOMATIONS_REDISPATCH_AFTER = timedelta(seconds=40)
# The fake Intune serves its own sign-in endpoint.
MDM_INTUNE_LOGIN_URL = os.environ.get("BENCH_INTUNE_LOGIN_URL", "https://login.microsoftonline.com")
