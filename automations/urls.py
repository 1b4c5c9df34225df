from django.urls import path

from automations.views import approvals, builder, executions, mdm, otp, preview

app_name = "automations"

urlpatterns = [
    # Builder (Workflows & Automations)
    path("", builder.automation_list, name="list"),
    path("new/", builder.automation_create, name="create"),
    path("<int:pk>/", builder.automation_detail, name="detail"),
    path("<int:pk>/edit/", builder.automation_edit, name="edit"),
    path("<int:pk>/audience/", builder.automation_audience, name="audience"),
    path("<int:pk>/toggle/", builder.automation_toggle, name="toggle"),
    path("<int:pk>/switch-on/", builder.automation_switch_on, name="switch_on"),
    path("<int:pk>/duplicate/", builder.automation_duplicate, name="duplicate"),
    path("<int:pk>/delete/", builder.automation_delete, name="delete"),
    path("<int:pk>/rotate-secret/", builder.automation_rotate_secret, name="rotate_secret"),
    path("builder/trigger-events/", builder.builder_trigger_events, name="builder_trigger_events"),
    path("builder/condition-row/", builder.builder_condition_row, name="builder_condition_row"),
    path("builder/preview/", builder.builder_preview, name="builder_preview"),
    path("builder/actions/", builder.builder_actions, name="builder_actions"),
    path("builder/action-delay/", builder.builder_action_delay, name="builder_action_delay"),
    # One-time password enrolment
    path("otp/enroll/", otp.otp_enroll, name="otp_enroll"),
    # Executions
    path("executions/", executions.execution_list, name="executions"),
    path("executions/<int:pk>/", executions.execution_detail, name="execution_detail"),
    path("executions/<int:pk>/retry/", executions.execution_retry, name="execution_retry"),
    path(
        "executions/<int:pk>/scheduled/<int:log_id>/<str:verb>/",
        executions.execution_scheduled,
        name="execution_scheduled",
    ),
    path("members/<int:pk>/actions/", executions.member_actions_panel, name="member_actions_panel"),
    # What deactivating the members ticked on the members list would run
    path("deactivation-preview/", preview.deactivation_preview, name="deactivation_preview"),
    # Approvals (the "Require approval" action kind)
    path("approvals/", approvals.approval_inbox, name="approvals"),
    path("approvals/<int:pk>/", approvals.approval_detail, name="approval_detail"),
    # MDM
    path("mdm-commands/<int:pk>/pin/", mdm.mdm_command_pin, name="mdm_command_pin"),
]
