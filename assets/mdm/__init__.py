"""MDM connectors: one API client per provider behind `get_connector(connection)`.

connector = get_connector(asset.mdm_connection)
connector.test_connection()  # -> message for the admin, raises MDMError
connector.lock_device(device_id=..., pin=..., message=..., phone=..., platform=...)
# -> LockResult, raises MDMError (kind: auth, not_found, retryable, permanent)
"""

from __future__ import annotations

from assets.mdm.base import Connector, LockResult, MDMError
from assets.mdm.intune import IntuneConnector
from assets.mdm.jamf import JamfConnector
from assets.mdm.kandji import KandjiConnector
from assets.mdm.simulator import SimulatorConnector

CONNECTORS: dict[str, type[Connector]] = {
    "jamf": JamfConnector,
    "intune": IntuneConnector,
    "kandji": KandjiConnector,
    "simulator": SimulatorConnector,
}


def get_connector(connection) -> Connector:
    """The connector for an MDMConnection's provider."""
    try:
        cls = CONNECTORS[connection.provider]
    except KeyError:
        raise MDMError(
            f"Connection “{connection.name}” has an unknown provider {connection.provider!r}.",
            kind="permanent",
        ) from None
    return cls(connection)


__all__ = ["CONNECTORS", "Connector", "LockResult", "MDMError", "get_connector"]
