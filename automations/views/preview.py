"""What a deactivation would set off, for the deactivate dialogs, which load it when they open:
`?member=<pk>` for one member (every automation, each action's targets and what would be
skipped), `?ids=…` for the members ticked on the list (totals). The pages without JavaScript
render the same fragments in place (the tags member_deactivation_preview and
deactivation_preview)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from automations.templatetags.automation_tags import member_preview_context, selection_context
from members.forms import MAX_BULK
from members.models import Member


@require_GET
@login_required
@permission_required("members.deactivate_member", raise_exception=True)
def deactivation_preview(request: HttpRequest) -> HttpResponse:
    raw = request.GET.get("member", "")
    if raw:
        member = Member.objects.filter(pk=int(raw) if raw.isdigit() else None).first()
        if member is None:
            raise Http404("No such member.")
        return render(request, "automations/_member_preview.html", member_preview_context(member))
    ids = list(dict.fromkeys(int(v) for v in request.GET.getlist("ids") if v.isdigit()))
    return render(
        request, "automations/_deactivation_preview.html", selection_context(ids[:MAX_BULK])
    )
