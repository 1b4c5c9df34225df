"""Automations: what must happen when a member is deactivated (filled by the builder issue)."""
