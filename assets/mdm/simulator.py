"""The built-in simulator provider for the demo: no network, instant success.

A device id starting with "fail-" fails, so the demo can show each kind of failure:
"fail-auth…" (401), "fail-notfound…" (404), "fail-retry…" (503, retryable), anything else
"fail-…" (a permanent refusal).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from assets.mdm.base import Connector, FoundLock, LockResult, MDMError


class SimulatorConnector(Connector):
    vendor = "The MDM simulator"
    credential_name = "demo credentials"
    credential_fix = "update the demo credentials"
    # As Apple's DeviceLock: a PIN on macOS only.
    pin_platforms = frozenset({"macos"})

    def test_connection(self) -> str:
        return "The simulator is ready (it makes no network calls)."

    def _lock(
        self, *, device_id: str, pin: str, message: str, phone: str, platform: str
    ) -> LockResult:
        if device_id.startswith("fail-"):
            raise self._failure(device_id)
        return LockResult(
            command_id=f"sim-{uuid.uuid4().hex[:12]}",
            status="acknowledged",
            raw='{"simulated": true, "status": "Acknowledged"}',
            pin_sent=bool(pin),
        )

    def _find_lock(self, *, device_id: str, platform: str, since: datetime) -> FoundLock | None:
        # The simulator keeps no record, so it cannot tell: the engine then sends again (no
        # device is involved).
        raise MDMError("The MDM simulator keeps no command history.", kind="permanent")

    def _failure(self, device_id: str) -> MDMError:
        name = self.connection.name
        if device_id.startswith("fail-auth"):
            return MDMError(
                f"The MDM simulator rejected the demo credentials (HTTP 401): update the "
                f"credentials of connection “{name}”.",
                kind="auth",
                status_code=401,
            )
        if device_id.startswith("fail-notfound"):
            return MDMError(
                f"Device {device_id} was not found in the MDM simulator: check the asset's MDM "
                "device ID.",
                kind="not_found",
                status_code=404,
            )
        if device_id.startswith("fail-retry"):
            return MDMError(
                "The MDM simulator answered HTTP 503 (a server error on its side).",
                kind="retryable",
                status_code=503,
                retry_after=30,
            )
        return MDMError(
            "The MDM simulator refused the request (HTTP 400): simulated failure.",
            kind="permanent",
            status_code=400,
        )
