"""Microsoft Intune through Microsoft Graph.

Verified against Microsoft's documentation:
- Token: POST https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token, form-encoded
  client_id, client_secret, scope=https://graph.microsoft.com/.default,
  grant_type=client_credentials (Microsoft identity platform, client credentials flow; the scope
  of a client-credentials request is the resource followed by "/.default").
- Lock: POST {graph}/v1.0/deviceManagement/managedDevices/{managedDeviceId}/remoteLock with no
  request body → 204 No Content; application permission
  DeviceManagementManagedDevices.PrivilegedOperations.All
  (https://learn.microsoft.com/en-us/graph/api/intune-devices-manageddevice-remotelock).
- remoteLock takes no PIN, message or phone number: the device locks with its own passcode, so
  the PIN AssetSonar generated is not used (LockResult.pin is None, pin_sent False). Graph returns
  no command id either; the `request-id` response header is kept as the reference Microsoft
  support asks for.
- Connection test: GET {graph}/v1.0/deviceManagement/managedDevices?$top=1&$select=id
  (needs DeviceManagementManagedDevices.Read.All).

- Reconciliation: GET {graph}/v1.0/deviceManagement/managedDevices/{id}?$select=id,
  deviceActionResults (DeviceManagementManagedDevices.Read.All) → deviceActionResults, a list of
  deviceActionResult {"actionName", "actionState" (none, pending, canceled, active, done, failed,
  notSupported), "startDateTime", "lastUpdatedDateTime"}
  (https://learn.microsoft.com/graph/api/resources/intune-devices-deviceactionresult). A
  remoteLock started at or after the attempt, and not failed, canceled or unsupported, is the
  earlier attempt's lock. Graph has no id for it: its start time is kept as the reference.

The sign-in host is settings.MDM_INTUNE_LOGIN_URL (default https://login.microsoftonline.com) so
national clouds and the tests can point elsewhere; the token scope follows the Graph base URL.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from django.conf import settings

from assets.mdm.base import (
    Connector,
    FoundLock,
    LockResult,
    OAuthClientCredentialsMixin,
    excerpt,
    parse_vendor_time,
)

GRAPH_URL = "https://graph.microsoft.com"
LOGIN_URL = "https://login.microsoftonline.com"


class IntuneConnector(OAuthClientCredentialsMixin, Connector):
    vendor = "Microsoft Intune"
    credential_name = "app registration's tenant ID, client ID or client secret"
    credential_fix = "update the tenant ID, client ID and client secret"
    permission_hint = (
        "grant the app registration the application permissions "
        "DeviceManagementManagedDevices.Read.All and "
        "DeviceManagementManagedDevices.PrivilegedOperations.All (with admin consent)"
    )
    required_credentials = {
        "tenant_id": "tenant ID",
        "client_id": "client ID",
        "client_secret": "client secret",
    }
    default_base_url = GRAPH_URL

    def token_url(self) -> str:
        login = getattr(settings, "MDM_INTUNE_LOGIN_URL", LOGIN_URL).rstrip("/")
        tenant = quote(self.credentials()["tenant_id"], safe="")
        return f"{login}/{tenant}/oauth2/v2.0/token"

    def token_form(self, credentials: dict[str, str]) -> dict[str, str]:
        return {
            "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"],
            "scope": f"{self.base_url}/.default",
            "grant_type": "client_credentials",
        }

    def test_connection(self) -> str:
        self.access_token(fresh=True)
        result = self.authorized(
            "GET",
            f"{self.base_url}/v1.0/deviceManagement/managedDevices",
            params={"$top": "1", "$select": "id"},
        )
        if result.status_code != 200:
            raise self.error_for(result)
        return "Connected to Microsoft Graph; the app can read Intune managed devices."

    def _lock(
        self, *, device_id: str, pin: str, message: str, phone: str, platform: str
    ) -> LockResult:
        url = (
            f"{self.base_url}/v1.0/deviceManagement/managedDevices/"
            f"{quote(device_id, safe='')}/remoteLock"
        )
        result = self.authorized("POST", url)
        if result.status_code not in (200, 202, 204):
            raise self.error_for(result, device_id=device_id)
        return LockResult(
            command_id=result.headers.get("request-id", ""),
            status="sent",
            pin=None,
            raw=excerpt(result.text) or f"HTTP {result.status_code}",
            pin_sent=False,
        )

    def _find_lock(self, *, device_id: str, platform: str, since: datetime) -> FoundLock | None:
        result = self.authorized(
            "GET",
            f"{self.base_url}/v1.0/deviceManagement/managedDevices/{quote(device_id, safe='')}",
            params={"$select": "id,deviceActionResults"},
        )
        if result.status_code != 200:
            raise self.error_for(result, device_id=device_id)
        payload = result.json()
        actions = payload.get("deviceActionResults") if isinstance(payload, dict) else None
        if actions is None and isinstance(payload, dict):
            actions = []  # Graph leaves the property out of a device no action ran on
        if not isinstance(actions, list):
            raise self.unreadable("the device's action results")
        for action in actions:
            if not isinstance(action, dict) or action.get("actionName", "").lower() != "remotelock":
                continue
            started = parse_vendor_time(action.get("startDateTime"))
            state = action.get("actionState")
            if (
                started is None
                or started < since
                or state in ("failed", "canceled", "notSupported")
            ):
                continue
            return FoundLock(
                command_id=f"remoteLock {action.get('startDateTime')}"[:200],
                status="acknowledged" if state == "done" else "sent",
                sent_at=started,
                raw=excerpt(
                    f"Intune lists remoteLock started {action.get('startDateTime')} ({state})."
                ),
            )
        return None
