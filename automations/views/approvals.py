"""The Approvals inbox and one approval request's page (the "Require approval" action kind,
automations/actions/approval.py). Pages work without JavaScript (plain forms and redirects).

Who sees what: an approval's approvers see it (and decide it); holders of
`automations.decide_approval` see every request but decide only those they are an approver of.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseLocation

from automations import otp
from automations.actions.approval import (
    ApprovalRefused,
    approval_decide,
    held_actions,
    may_decide,
    mdm_problems,
)
from automations.models import Approval

SEE_ALL_PERMISSION = "automations.decide_approval"
INBOX_DECIDED = 50


def _visible(user) -> Q:
    if user.has_perm(SEE_ALL_PERMISSION):
        return Q()
    return Q(approvers=user)


@require_http_methods(["GET"])
@login_required
def approval_inbox(request: HttpRequest) -> HttpResponse:
    """Requests waiting for this user's decision, then recently decided ones they can see."""
    rows = Approval.objects.select_related("execution", "member", "action")
    waiting = list(
        rows.filter(status=Approval.Status.PENDING, approvers=request.user).order_by("expires_at")
    )
    decided = list(
        rows.filter(_visible(request.user))
        .exclude(pk__in=[a.pk for a in waiting])
        .distinct()
        .order_by("-requested_at", "-pk")[:INBOX_DECIDED]
    )
    if not waiting and not decided and not request.user.has_perm(SEE_ALL_PERMISSION):
        raise PermissionDenied("You are not an approver of any approval request.")
    return render(
        request,
        "automations/approvals/inbox.html",
        {"waiting": waiting, "decided": decided, "nav_section": "approvals"},
    )


@require_http_methods(["GET", "POST"])
@login_required
def approval_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the request (member, automation, the held actions and their targets). POST:
    approve or reject with a comment; approving a held device lock needs the MDM permission
    and a one-time password checked in this request."""
    approval = get_object_or_404(
        Approval.objects.select_related("execution", "member", "action", "decided_by"), pk=pk
    )
    decider = may_decide(approval, request.user)
    if not decider and not request.user.has_perm(SEE_ALL_PERMISSION):
        raise PermissionDenied("Only the approvers of this request may open it.")
    error = ""
    status = 200
    if request.method == "POST":
        if not decider:
            raise PermissionDenied("Only the approvers of this request may decide it.")
        decision = request.POST.get("decision", "")
        comment = request.POST.get("comment", "")
        approve = decision == "approve"
        otp_verified = False
        if decision not in ("approve", "reject"):
            error, status = "Choose Approve or Reject.", 400
        elif approve and approval.needs_mdm and approval.is_pending:
            problems = mdm_problems(request.user)
            if problems:
                raise PermissionDenied(
                    "Approving this step lets a device lock go out, which needs the MDM feature "
                    "and permission. " + " ".join(problems)
                )
            if otp.confirmed_device(request.user) is None:
                error, status = (
                    "Approving a device lock needs a one-time password: set up an "
                    "authenticator app first (link below), then come back to this page.",
                    400,
                )
            else:
                result = otp.verify(
                    user=request.user,
                    token=request.POST.get("otp_token", ""),
                    purpose=f"approving approval request {approval.pk}",
                    request=request,
                )
                otp_verified = result.ok
                if not result.ok:
                    error, status = result.message, 400
        if not error:
            try:
                approval = approval_decide(
                    approval=approval,
                    approve=approve,
                    comment=comment,
                    actor=request.user,
                    otp_verified=otp_verified,
                    request=request,
                )
            except ApprovalRefused as refused:
                error, status = " ".join(refused.messages), 409
        if not error:
            messages.success(
                request,
                "Approved: the held actions run now."
                if approve
                else "Rejected: the held actions will not run.",
            )
            url = approval.get_absolute_url()
            return HttpResponseLocation(url) if request.htmx else redirect(url)
        approval.refresh_from_db()
    context = {
        "approval": approval,
        "held": held_actions(approval),
        "may_decide": decider and approval.is_pending,
        "has_otp_device": otp.confirmed_device(request.user) is not None
        if approval.needs_mdm
        else True,
        "error": error,
        "comment": request.POST.get("comment", "") if request.method == "POST" else "",
        "nav_section": "approvals",
    }
    return render(request, "automations/approvals/detail.html", context, status=status)
