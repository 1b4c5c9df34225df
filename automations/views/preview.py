"""What a deactivation would set off, for the bulk deactivate dialog: it knows the selection only
once it opens, so it asks here for the ticked members (`?ids=…`). The single-member dialog and
the pages without JavaScript render the same fragment in place ({% deactivation_preview %})."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from automations.selectors import automations_planned
from members.forms import MAX_BULK


@require_GET
@login_required
@permission_required("members.deactivate_member", raise_exception=True)
def deactivation_preview(request: HttpRequest) -> HttpResponse:
    ids = list(dict.fromkeys(int(v) for v in request.GET.getlist("ids") if v.isdigit()))
    ids = ids[:MAX_BULK]
    context = {
        "planned": automations_planned(member_ids=ids),
        "many": True,
        "count": len(ids),
    }
    return render(request, "automations/_deactivation_preview.html", context)
