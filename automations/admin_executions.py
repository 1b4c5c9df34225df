"""Admin for events, executions, action logs, webhook attempts and MDM commands (read-only)."""
