"""Admin for automations, conditions and actions (read-only MDM actions)."""
