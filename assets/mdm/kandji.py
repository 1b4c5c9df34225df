"""Kandji: an API token (Bearer) and the device action endpoints.

Verified against Kandji's API documentation (as published in the Kandji API SDK docs,
DeviceActionsApi "Lock Device", and Kandji's token permission list):
- Lock: POST {base}/api/v1/devices/{device_id}/action/lock with an optional JSON body
  {"Message": ..., "PhoneNumber": ...} → 200. "For macOS clients, an unlock PIN will be created,
  and returned in the response": {"PIN": "123456"}. The phone number is shown on Macs with Apple
  silicon only.
- Kandji generates the PIN itself; the lock request has no PIN field, so the PIN AssetSonar
  generated is not sent (pin_sent False) and the returned one replaces it. iPhones and iPads
  lock with their passcode and get no PIN.
- Kandji returns no command id for the lock.
- 400 "Command already running" means a lock is already pending on the device (for instance
  when an earlier attempt timed out after Kandji queued it). The unlock PIN of that pending lock
  is then read from GET /api/v1/devices/{device_id}/secrets/unlockpin (token permission "Device
  secrets"); the key of that answer is not documented in what we could check, so both "pin" and
  "PIN" are accepted.
- The unlock PIN exists for Macs only ("Get (Mac) Unlock PIN"): it is never read for an iPhone
  or iPad.
- Reconciliation: GET {base}/api/v1/devices/{device_id}/commands ("Get Device Commands", token
  permission "Device details"): the device's MDM commands, each with "uuid", "command_type"
  ("DeviceLock" for a lock), "status" (1 pending, 2 running, 3 completed, 4 failed, 5 NotNow)
  and "date_requested"; the list is paged ({"results": {"count", "next", "results": [...]}}, or a
  bare list in older tenants: both are read). A DeviceLock requested at or after the attempt and
  not failed is the earlier attempt's lock; its PIN is read back from the unlock PIN endpoint.
- Connection test: GET {base}/api/v1/devices?limit=1 ("Device list" permission).
"""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import quote

from assets.mdm.base import (
    Connector,
    FoundLock,
    HTTPResult,
    LockResult,
    MDMError,
    excerpt,
    parse_vendor_time,
)

# Kandji's command status numbers: 4 failed.
FAILED_STATUS = 4
COMPLETED_STATUS = 3


def _pin_from(result: HTTPResult) -> str | None:
    payload = result.json()
    if isinstance(payload, dict):
        value = payload.get("PIN") or payload.get("pin")
        if value:
            return str(value)
    return None


def _redacted(result: HTTPResult) -> str:
    """The response excerpt without the PIN (the excerpt is stored in plain text)."""
    payload = result.json()
    if isinstance(payload, dict):
        cleaned = {k: ("[redacted]" if k.lower() == "pin" else v) for k, v in payload.items()}
        return excerpt(json.dumps(cleaned))
    return excerpt(result.text)


class KandjiConnector(Connector):
    vendor = "Kandji"
    credential_name = "API token"
    credential_fix = "update the API token"
    permission_hint = (
        "allow the token the Device list, Lock device and Device secrets (unlock PIN) endpoints"
    )
    required_credentials = {"api_token": "API token"}

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials()['api_token']}"}

    def test_connection(self) -> str:
        result = self.http(
            "GET", f"{self.base_url}/api/v1/devices", headers=self._headers(), params={"limit": "1"}
        )
        if result.status_code != 200:
            raise self.error_for(result)
        return "Connected to Kandji; the token can list devices."

    def _lock(
        self, *, device_id: str, pin: str, message: str, phone: str, platform: str
    ) -> LockResult:
        device = quote(device_id, safe="")
        body = {}
        if message:
            body["Message"] = message
        if phone:
            body["PhoneNumber"] = phone
        result = self.http(
            "POST",
            f"{self.base_url}/api/v1/devices/{device}/action/lock",
            headers=self._headers(),
            json_body=body,
        )
        if result.status_code == 400 and "already running" in result.text.lower():
            return self._pending_lock(device, platform)
        if result.status_code != 200:
            raise self.error_for(result, device_id=device_id)
        return LockResult(
            command_id="", status="sent", pin=_pin_from(result), raw=_redacted(result)
        )

    def _pending_lock(self, device: str, platform: str) -> LockResult:
        if platform != "macos":
            return LockResult(
                command_id="",
                status="sent",
                raw="A lock command was already pending on the device (it takes no PIN).",
            )
        return LockResult(
            command_id="",
            status="sent",
            pin=self._unlock_pin(device),
            raw="A lock command was already pending on the device; its unlock PIN was read back.",
        )

    def _unlock_pin(self, device: str) -> str | None:
        secret = self.http(
            "GET",
            f"{self.base_url}/api/v1/devices/{device}/secrets/unlockpin",
            headers=self._headers(),
        )
        if secret.status_code != 200:
            raise self.error_for(secret, device_id=device)
        return _pin_from(secret)

    def _find_lock(self, *, device_id: str, platform: str, since: datetime) -> FoundLock | None:
        device = quote(device_id, safe="")
        result = self.http(
            "GET",
            f"{self.base_url}/api/v1/devices/{device}/commands",
            headers=self._headers(),
            params={"limit": "300"},
        )
        if result.status_code != 200:
            raise self.error_for(result, device_id=device_id)
        payload = result.json()
        if isinstance(payload, dict) and isinstance(payload.get("results"), dict):
            payload = payload["results"]
        commands = payload.get("results") if isinstance(payload, dict) else payload
        if not isinstance(commands, list):
            raise self.unreadable("the device's command list")
        for command in commands:
            if not isinstance(command, dict) or command.get("command_type") != "DeviceLock":
                continue
            requested = parse_vendor_time(command.get("date_requested"))
            if requested is None or requested < since or command.get("status") == FAILED_STATUS:
                continue
            pin = None
            if platform == "macos":
                try:
                    pin = self._unlock_pin(device)
                except MDMError as exc:
                    # The lock is there whatever its PIN; the PIN stays readable in Kandji.
                    raw = f"Kandji lists DeviceLock {command.get('uuid')}; its PIN: {exc.message}"
                    return FoundLock(str(command.get("uuid") or ""), "sent", requested, None, raw)
            return FoundLock(
                command_id=str(command.get("uuid") or "")[:200],
                status="acknowledged" if command.get("status") == COMPLETED_STATUS else "sent",
                sent_at=requested,
                pin=pin,
                raw=excerpt(f"Kandji lists DeviceLock {command.get('uuid')}."),
            )
        return None
