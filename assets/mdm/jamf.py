"""Jamf Pro: OAuth client credentials, then the MDM commands API.

Verified against Jamf's developer documentation:
- Token: POST {base}/api/oauth/token, form-encoded grant_type=client_credentials, client_id,
  client_secret → {"access_token", "expires_in", ...} (Jamf Pro 10.49+, "Client Credentials",
  https://developer.jamf.com/jamf-pro/docs/client-credentials).
- Lock: POST {base}/api/v2/mdm/commands with {"clientData": [{"managementId": ...}],
  "commandData": {"commandType": "DEVICE_LOCK", "pin", "message", "phoneNumber"}} → 201
  [{"id", "href"}] ("Post a command for creation and queuing",
  https://developer.jamf.com/jamf-pro/reference/post_v2-mdm-commands). The device id is the
  computer's or mobile device's *management ID* (a UUID), not its inventory id.
- The PIN: Apple's DeviceLock command takes a six-character PIN on macOS only ("PIN ... iOS:
  n/a", apple/device-management mdm/commands/device.lock.yaml), so Macs get the PIN and
  iPhones/iPads are locked with their own passcode and no PIN is sent.
- Connection test: GET {base}/api/v1/jamf-pro-version → {"version": "11.x"}.
- Reconciliation (did an earlier, unrecorded attempt reach Jamf?): GET {base}/api/v2/mdm/commands
  with `filter` in RSQL, e.g. clientManagementId==<id>;command==DEVICE_LOCK;dateSent=ge=<ISO>
  ("All url must contain minimum one filter field"; date filters take gt/lt/ge/le), `sort`
  (default dateSent:asc), `page`, `page-size` → {"totalCount", "results": [{"uuid", "dateSent",
  "client": {"managementId", ...}, "commandState", "commandType", ...}]} (privilege "View MDM
  command information in Jamf Pro API"). The list carries no PIN: a lock found is one we sent
  with the PIN already stored (the only PIN AssetSonar ever sends a device is that one).
"""

from __future__ import annotations

from datetime import UTC, datetime

from assets.mdm.base import (
    Connector,
    FoundLock,
    LockResult,
    MDMError,
    OAuthClientCredentialsMixin,
    excerpt,
    parse_vendor_time,
)

PIN_PLATFORMS = frozenset({"macos"})


class JamfConnector(OAuthClientCredentialsMixin, Connector):
    vendor = "Jamf Pro"
    credential_name = "API client ID or secret"
    credential_fix = "update the client ID and client secret"
    permission_hint = (
        "give the API client's role the privileges to read inventory and send remote lock commands"
    )
    required_credentials = {"client_id": "API client ID", "client_secret": "API client secret"}
    pin_platforms = PIN_PLATFORMS

    def token_url(self) -> str:
        return f"{self.base_url}/api/oauth/token"

    def token_form(self, credentials: dict[str, str]) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"],
        }

    def test_connection(self) -> str:
        self.access_token(fresh=True)
        result = self.authorized("GET", f"{self.base_url}/api/v1/jamf-pro-version")
        if result.status_code != 200:
            raise self.error_for(result)
        payload = result.json()
        version = payload.get("version") if isinstance(payload, dict) else None
        return f"Connected to Jamf Pro{f' {version}' if version else ''}."

    def _lock(
        self, *, device_id: str, pin: str, message: str, phone: str, platform: str
    ) -> LockResult:
        command: dict[str, str] = {"commandType": "DEVICE_LOCK"}
        pin_sent = self.takes_pin(platform) and bool(pin)
        if pin_sent:
            command["pin"] = pin
        if message:
            command["message"] = message
        if phone:
            command["phoneNumber"] = phone
        body = {"clientData": [{"managementId": device_id}], "commandData": command}
        result = self.authorized("POST", f"{self.base_url}/api/v2/mdm/commands", json_body=body)
        if result.status_code not in (200, 201):
            raise self.error_for(result, device_id=device_id)
        payload = result.json()
        first = payload[0] if isinstance(payload, list) and payload else None
        command_id = str(first.get("id", "")) if isinstance(first, dict) else ""
        if not command_id:
            raise MDMError(
                "Jamf Pro accepted the lock command but returned no command id.",
                kind="permanent",
                status_code=result.status_code,
            )
        return LockResult(
            command_id=command_id, status="sent", raw=excerpt(result.text), pin_sent=pin_sent
        )

    def _find_lock(self, *, device_id: str, platform: str, since: datetime) -> FoundLock | None:
        after = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        result = self.authorized(
            "GET",
            f"{self.base_url}/api/v2/mdm/commands",
            params={
                "filter": (
                    f"clientManagementId=={device_id};command==DEVICE_LOCK;dateSent=ge={after}"
                ),
                "sort": "dateSent:desc",
                "page": "0",
                "page-size": "5",
            },
        )
        if result.status_code != 200:
            raise self.error_for(result)
        payload = result.json()
        results = payload.get("results") if isinstance(payload, dict) else None
        if not isinstance(results, list):
            raise self.unreadable("the MDM command list")
        for item in results:
            if not isinstance(item, dict) or item.get("commandState") == "ERROR":
                continue  # a lock the device refused is not on it
            state = item.get("commandState")
            return FoundLock(
                command_id=str(item.get("uuid") or ""),
                status="acknowledged" if state == "ACKNOWLEDGED" else "sent",
                sent_at=parse_vendor_time(item.get("dateSent")),
                raw=excerpt(f"Jamf Pro lists DEVICE_LOCK {item.get('uuid')} ({state})."),
            )
        return None
