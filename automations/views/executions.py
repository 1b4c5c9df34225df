"""The execution log: the listing page's Executions view, one execution's page with its retry
button, and the member detail's "Automated actions" panel (polled by htmx while work runs).

Every view checks the user's permission itself; templates only hide what the user can't use.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseLocation

from assetsonar.models import PortalSettings
from assetsonar.paging import AFTER_PARAM, paginate
from automations import otp
from automations import selectors_executions as selectors
from automations.actions import REGISTRY
from automations.engine.retry import execution_retry_failed
from automations.models import ActionLog, Event, Execution
from automations.templatetags.automation_tags import member_actions_context
from members.models import Member

PAGE_SIZE = 50
MDM_PERMISSION = "assets.execute_mdm_commands"
RETRY_PERMISSION = "automations.change_automation"


@require_GET
@login_required
@permission_required("automations.view_execution", raise_exception=True)
def execution_list(request: HttpRequest) -> HttpResponse:
    filterset = selectors.ExecutionFilter(request.GET or None, queryset=selectors.execution_list())
    page = paginate(
        filterset.qs,
        ordering=selectors.EXECUTION_ORDERING,
        per_page=PAGE_SIZE,
        number=request.GET.get("page"),
        after=request.GET.get(AFTER_PARAM),
    )
    selectors.execution_attach_counts(page.object_list)
    filtered_member = None
    if (
        filterset.is_bound
        and filterset.form.is_valid()
        and filterset.form.cleaned_data.get("member_id")
    ):
        filtered_member = Member.objects.filter(pk=filterset.form.cleaned_data["member_id"]).first()
    template = "automations/executions/list.html"
    if request.htmx and request.htmx.target == "execution-results":
        template += "#results"
    response = render(
        request,
        template,
        {"filter": filterset, "page_obj": page, "filtered_member": filtered_member},
    )
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def _retry_sends_mdm(execution: Execution, logs: list[ActionLog]) -> bool:
    """Would a retry send device locks? Yes if a lock failed; and if the event was dead-lettered
    halfway, devices never claimed are claimed by the retry, so then yes whenever the automation
    locks devices at all."""
    locking = [k.key for k in REGISTRY.values() if k.locks_devices]
    if any(log.status == ActionLog.Status.FAILED and log.action_kind in locking for log in logs):
        return True
    return (
        execution.event.status == Event.Status.DEAD
        and execution.automation_id is not None
        and execution.automation.actions.filter(kind__in=locking).exists()
    )


def _retry_state(user, execution: Execution, logs: list[ActionLog]) -> dict:
    """What the retry button needs: whether the execution can be retried by this user, and
    whether the retry would send MDM commands (then the MDM permission and a one-time password
    are required too)."""
    retryable = execution.status in selectors.RETRYABLE
    failed_mdm = retryable and _retry_sends_mdm(execution, logs)
    return {
        "retryable": retryable,
        "can_retry": retryable and user.has_perm(RETRY_PERMISSION),
        "retry_needs_otp": failed_mdm,
        "retry_mdm_allowed": user.has_perm(MDM_PERMISSION),
        "has_otp_device": bool(failed_mdm and otp.confirmed_device(user)),
    }


def _detail_context(
    request: HttpRequest, execution: Execution, logs: list[ActionLog] | None = None, **extra
) -> dict:
    if logs is None:
        logs = selectors.execution_logs(execution)
    context = {"execution": execution, "logs": logs}
    context.update(_retry_state(request.user, execution, logs))
    context.update(extra)
    return context


@require_GET
@login_required
@permission_required("automations.view_execution", raise_exception=True)
def execution_detail(request: HttpRequest, pk: int) -> HttpResponse:
    execution = selectors.execution_get(pk)
    template = "automations/executions/detail.html"
    if request.htmx and request.htmx.target == "execution-live":
        template += "#live"
    response = render(request, template, _detail_context(request, execution))
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


@require_POST
@login_required
@permission_required(RETRY_PERMISSION, raise_exception=True)
def execution_retry(request: HttpRequest, pk: int) -> HttpResponse:
    """Run the failed actions of a failed or partially failed execution again. Resending a device
    lock needs the MDM permission, the portal's MDM feature switched on (as the builder does) and
    a one-time password checked in this same request."""
    execution = selectors.execution_get(pk)
    logs = selectors.execution_logs(execution)
    state = _retry_state(request.user, execution, logs)
    url = execution.get_absolute_url()
    if not state["retryable"]:
        # Someone else's retry got there first, or the page was stale: say so on the page.
        messages.warning(
            request,
            f"This execution is {execution.get_status_display().lower()}: only failed or "
            "partially failed executions can be retried.",
        )
        return HttpResponseLocation(url) if request.htmx else redirect(url)
    error = ""
    reset = 0
    if state["retry_needs_otp"]:
        if not state["retry_mdm_allowed"]:
            raise PermissionDenied(
                "Retrying a device lock needs the MDM Operator role; ask an administrator."
            )
        # Checked before the code, so that a retry refused anyway does not use one up.
        if not PortalSettings.load().mdm_commands_enabled:
            error = (
                "Retrying a device lock needs the “MDM management commands” feature, which is "
                "switched off for this portal. An administrator can switch it on in "
                "Django admin › Portal settings."
            )
        elif not state["has_otp_device"]:
            error = (
                "Retrying a device lock needs a one-time password: set up an authenticator "
                "app first."
            )
        else:
            result = otp.verify(
                user=request.user,
                token=request.POST.get("otp_token", ""),
                purpose=f"retrying device locks of execution {execution.pk}",
                request=request,
            )
            error = result.message if not result.ok else ""
    if not error:
        try:
            reset = execution_retry_failed(execution=execution, actor=request.user)
        except ValidationError as refused:
            # Another retry got there first (the service re-checks under a row lock).
            error = " ".join(refused.messages)
    if error:
        context = _detail_context(request, execution, logs=logs, retry_error=error)
        template = "automations/executions/detail.html"
        if request.htmx:
            template += "#retry"
        return render(request, template, context)

    messages.success(
        request,
        f"{reset} failed action{'s are' if reset != 1 else ' is'} queued to run again.",
    )
    return HttpResponseLocation(url) if request.htmx else redirect(url)


@require_GET
@login_required
@permission_required(["members.view_member", "automations.view_execution"], raise_exception=True)
def member_actions_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The member detail's "Automated actions" panel alone, for htmx polling."""
    member = get_object_or_404(Member, pk=pk)
    context = member_actions_context(member, can_view=True)
    response = render(request, "automations/executions/_member_actions.html", context)
    if request.htmx and not context["in_progress"]:
        # Only a running panel polls, so this is the poll that saw the work finish: the member
        # page reloads the sections the automation changed (licenses, history, banner).
        response["HX-Trigger"] = "automations-finished"
    return response
