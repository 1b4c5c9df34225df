"""Settings for the test suite: the real settings, with test-only conveniences switched on."""

import os

os.environ["ASSETSONAR_TESTING"] = "1"

from assetsonar.settings import *  # noqa: E402,F403

# Tests open 127.0.0.1 for their own webhook receivers and MDM servers (never in production).
OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # noqa: F405
WEBHOOK_ALLOW_HTTP = True
