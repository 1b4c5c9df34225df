"""Django admin for automations. The builder side lives in admin_builder, the execution log in
admin_executions, authenticator apps in admin_otp; all register on import."""

from automations import admin_approvals, admin_builder, admin_executions, admin_otp  # noqa: F401
