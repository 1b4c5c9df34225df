"""Django admin for automations. The builder side lives in admin_builder, the execution log in
admin_executions; both register on import."""

from automations import admin_builder, admin_executions  # noqa: F401
