"""The execution log: the listing page's Executions view, one execution's page with its retry
button, and the member detail's "Automated actions" panel (polled by htmx while work runs).

Every view checks the user's permission itself; templates only hide what the user can't use.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseLocation

from assetsonar.models import PortalSettings
from assetsonar.paging import AFTER_PARAM, paginate
from automations import otp
from automations import selectors_executions as selectors
from automations.actions import REGISTRY
from automations.engine import scheduled
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


def _scheduled_state(user, logs: list[ActionLog]) -> dict:
    """What the "Run now" and "Cancel" buttons of scheduled actions need: who may use them
    (the retry permission), and for a device lock whether the MDM permission and an
    authenticator app are there (then a one-time password is asked for)."""
    scheduled = [log for log in logs if log.status == ActionLog.Status.SCHEDULED]
    locking = {k.key for k in REGISTRY.values() if k.locks_devices}
    for log in scheduled:
        log.needs_otp = log.action_kind in locking
    has_lock = any(log.needs_otp for log in scheduled)
    return {
        "can_control_scheduled": bool(scheduled) and user.has_perm(RETRY_PERMISSION),
        "scheduled_mdm_allowed": user.has_perm(MDM_PERMISSION),
        "scheduled_has_otp_device": bool(has_lock and otp.confirmed_device(user)),
    }


def _detail_context(
    request: HttpRequest, execution: Execution, logs: list[ActionLog] | None = None, **extra
) -> dict:
    if logs is None:
        logs = selectors.execution_logs(execution)
    context = {"execution": execution, "logs": logs}
    context.update(_retry_state(request.user, execution, logs))
    context.update(_scheduled_state(request.user, logs))
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


def _mdm_gate(request: HttpRequest, *, doing: str, purpose: str) -> str:
    """The gate of whatever sends (or stops) a device lock from the execution page ("Retry
    failed actions", a scheduled lock's "Run now" and "Cancel"): the MDM permission (403 without
    it), the portal's MDM feature and a one-time password checked in this request. Returns why
    not, or "" when the code was right."""
    if not request.user.has_perm(MDM_PERMISSION):
        raise PermissionDenied(
            f"{doing} a device lock needs the MDM Operator role; ask an administrator."
        )
    # Checked before the code, so that a request refused anyway does not use one up.
    if not PortalSettings.load().mdm_commands_enabled:
        return (
            f"{doing} a device lock needs the “MDM management commands” feature, which is "
            "switched off for this portal. An administrator can switch it on in "
            "Django admin › Portal settings."
        )
    if not otp.confirmed_device(request.user):
        return (
            f"{doing} a device lock needs a one-time password: set up an authenticator app first."
        )
    result = otp.verify(
        user=request.user,
        token=request.POST.get("otp_token", ""),
        purpose=purpose,
        request=request,
    )
    return "" if result.ok else result.message


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
        error = _mdm_gate(
            request, doing="Retrying", purpose=f"retrying device locks of execution {execution.pk}"
        )
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


SCHEDULED_VERBS = {
    # verb → (service, what the gate says, what the message says)
    "run": (scheduled.scheduled_run_now, "Running", "queued to run now"),
    "cancel": (scheduled.scheduled_cancel, "Cancelling", "cancelled"),
}


@require_POST
@login_required
@permission_required(RETRY_PERMISSION, raise_exception=True)
def execution_scheduled(request: HttpRequest, pk: int, log_id: int, verb: str) -> HttpResponse:
    """ "Run now" or "Cancel" on one scheduled action of an execution (the retry permission;
    a device lock also needs the MDM permission, the MDM feature and a one-time password, as
    "Retry failed actions" does). Audited by the service with who did it."""
    if verb not in SCHEDULED_VERBS:
        raise Http404("No such operation.")
    service, doing, done = SCHEDULED_VERBS[verb]
    execution = selectors.execution_get(pk)
    log = get_object_or_404(
        ActionLog, pk=log_id, execution=execution, target_type=ActionLog.TargetType.SCHEDULE
    )
    url = execution.get_absolute_url()
    kind = REGISTRY.get(log.action_kind)
    error = ""
    otp_verified = False
    if log.status != ActionLog.Status.SCHEDULED:
        error = (
            f"This action is {log.get_status_display().lower()} already: it is no longer scheduled."
        )
    elif kind is not None and kind.locks_devices:
        error = _mdm_gate(
            request,
            doing=doing,
            purpose=f"{doing.lower()} a scheduled device lock of execution {execution.pk}",
        )
        otp_verified = not error
    if not error:
        try:
            service(log=log, actor=request.user, otp_verified=otp_verified, request=request)
        except scheduled.ScheduledRefused as refused:
            error = " ".join(refused.messages)
    if error:
        logs = selectors.execution_logs(execution)
        context = _detail_context(
            request, execution, logs=logs, scheduled_error={"log": log.pk, "message": error}
        )
        status = 409 if log.status != ActionLog.Status.SCHEDULED else 200
        return render(request, "automations/executions/detail.html", context, status=status)
    messages.success(request, f"“{log.get_action_kind_display()}” {done}.")
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
