"""Workflows & Automations: the list, the builder (create and edit), the automation page, and
the htmx partials the builder re-renders (trigger actions, condition rows, live summary).

Every view checks the user's permission itself. Whatever changes whom or when an automation
locks devices (the lock itself, its trigger, match or conditions, switching it on, duplicating
it with the lock; see services.lock_change) needs the MDM feature and permission (else a 403 and
nothing saved) and a one-time password checked in the same request (a dialog or a confirmation
page asks for it; without an authenticator the user enrols one first and comes back).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from assetsonar import crypto
from assetsonar.audit import audit_record
from assetsonar.http import done, safe_next
from assetsonar.models import AuditEvent
from assetsonar.paging import AFTER_PARAM, paginate
from automations import otp, selectors, selectors_preview, services, triggers
from automations.actions import get_kind
from automations.forms import (
    DEFAULT_FIELD,
    AutomationDetailsForm,
    AutomationFilterForm,
    BuilderForms,
    ConditionFormSet,
    action_delay_form,
    action_op,
    condition_row_form,
    kind_menu,
    trigger_options_form,
)
from automations.models import Automation, Execution
from automations.services import MAX_ACTIONS, MAX_CONDITIONS

PAGE_SIZE = 25
SECRET_SESSION_KEY = "automations:new_secret:{pk}"  # noqa: S105 - a session key name, not a secret
FORM_TEMPLATE = "automations/form.html"


def _require_any(request: HttpRequest, *perms: str) -> None:
    if not any(request.user.has_perm(p) for p in perms):
        raise PermissionDenied("Only IT managers may build automations.")


def _remember_secret(request: HttpRequest, pk: int, secret: str) -> None:
    """Keep a new signing secret for the next page only (encrypted in the session)."""
    request.session[SECRET_SESSION_KEY.format(pk=pk)] = crypto.encrypt(secret)


def _pop_secret(request: HttpRequest, pk: int) -> str:
    token = request.session.pop(SECRET_SESSION_KEY.format(pk=pk), "")
    try:
        return crypto.decrypt(token) if token else ""
    except ValueError:
        return ""


# --- List --------------------------------------------------------------------------------------


@require_GET
@login_required
@permission_required("automations.view_automation", raise_exception=True)
def automation_list(request: HttpRequest) -> HttpResponse:
    form = AutomationFilterForm(request.GET or None)
    qs = selectors.automation_list_qs(**form.filters())
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    for automation in page.object_list:
        automation.summary = selectors.summary_of(automation)
        automation.who = selectors.who_phrase(
            [(c.field, c.operator, c.value) for c in automation.conditions.all()],
            automation.match,
        )
        automation.trigger_label = selectors.trigger_label(
            automation.trigger_module, automation.trigger_event
        )
        automation.action_chips = [
            (a.kind, kind.chip if (kind := get_kind(a.kind)) else a.kind)
            for a in automation.actions.all()
        ]
        if automation.last_run_status:
            automation.last_run_label = Execution.Status(automation.last_run_status).label
    template = "automations/list.html"
    if request.htmx and request.htmx.target == "automation-results":
        template += "#results"
    response = render(
        request,
        template,
        {
            "filter_form": form,
            "page_obj": page,
            "filtered": any(request.GET.get(k) for k in ("q", "trigger", "enabled")),
        },
    )
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


# --- Automation page ---------------------------------------------------------------------------


@require_GET
@login_required
@permission_required("automations.view_automation", raise_exception=True)
def automation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    automation = get_object_or_404(selectors.automation_detail_qs(), pk=pk)
    actions = []
    for action in automation.actions.all():
        kind = get_kind(action.kind)
        actions.append(
            {
                "action": action,
                "kind": kind,
                "settings": kind.read(action) if kind else {},
                "template": kind.detail_template if kind else "automations/actions/_detail.html",
            }
        )
    executions = selectors.automation_recent_executions(automation)
    new_secret = _pop_secret(request, automation.pk)
    audience = selectors_preview.automation_audience(automation)
    conditions = [
        selectors.condition_phrase(c.field, c.operator, c.value)
        for c in automation.conditions.all()
    ]
    event = triggers.get_event(automation.trigger_module, automation.trigger_event)
    response = render(
        request,
        "automations/detail.html",
        {
            "automation": automation,
            "summary": selectors.summary_of(automation),
            "trigger_label": selectors.trigger_label(
                automation.trigger_module, automation.trigger_event
            ),
            # The trigger's own settings, and when it runs, in words (from the registry).
            "when_it_fires": event.options.text(automation.trigger_options)
            if event and event.options
            else "",
            "runs_when": event.runs(automation.trigger_options, conditions=bool(conditions))
            if event
            else "when its trigger happens",
            "conditions": conditions,
            "actions": actions,
            "signs": any(a["kind"] and a["kind"].signs_requests for a in actions),
            "secret_grace_hours": settings.WEBHOOK_SECRET_GRACE_HOURS,
            "new_secret": new_secret,
            "changes": selectors.automation_changes(automation),
            "executions": executions,
            "audience": audience,
            "audience_page": _audience_page(audience, per_page=AUDIENCE_PREVIEW, number=1),
        },
    )
    if new_secret:
        # The page with the secret must not be kept by the browser or a proxy.
        add_never_cache_headers(response)
    return response


# Members named on the automation page; the rest are on its "Who it would run for" page.
AUDIENCE_PREVIEW = 10
AUDIENCE_PAGE_SIZE = 50


def _audience_page(audience, *, per_page: int, number, after: str | None = None):
    """The page of members: from the database (count capped, keyset pages past the counted
    ones), or of those found matching by the bounded check one by one."""
    if audience.in_database:
        return paginate(
            audience.queryset,
            ordering=selectors_preview.AUDIENCE_ORDERING,
            per_page=per_page,
            number=number,
            after=after,
        )
    return Paginator(audience.matched, per_page).get_page(number)


@require_GET
@login_required
@permission_required("automations.view_automation", raise_exception=True)
def automation_audience(request: HttpRequest, pk: int) -> HttpResponse:
    """Who the automation would run for now, every page (see selectors_preview.Audience)."""
    automation = get_object_or_404(selectors.automation_detail_qs(), pk=pk)
    audience = selectors_preview.automation_audience(automation)
    page = _audience_page(
        audience,
        per_page=AUDIENCE_PAGE_SIZE,
        number=request.GET.get("page"),
        after=request.GET.get(AFTER_PARAM),
    )
    return render(
        request,
        "automations/audience.html",
        {"automation": automation, "audience": audience, "audience_page": page},
    )


# --- Builder -----------------------------------------------------------------------------------


def _render_builder(
    request: HttpRequest,
    forms: BuilderForms,
    *,
    automation: Automation | None,
    availability: selectors.MDMAvailability,
    status: int = 200,
    otp_dialog: dict[str, str] | None = None,
    refused: list[str] | None = None,
    refused_change: str = "",
) -> HttpResponse:
    if otp_dialog is not None:
        otp_dialog["what"] = services.LOCK_CHANGE_PHRASES.get(otp_dialog["change"], "")
    return render(
        request,
        FORM_TEMPLATE,
        {
            "forms": forms,
            "automation": automation,
            "mdm": availability,
            "rows": forms.rows(),
            "kind_menu": kind_menu(request.user),
            "max_actions": MAX_ACTIONS,
            "suggestions": selectors.condition_suggestions(),
            "preview": forms.preview(),
            "otp_dialog": otp_dialog,
            "refused": refused,
            "refused_what": services.LOCK_CHANGE_PHRASES.get(refused_change, ""),
            "max_conditions": MAX_CONDITIONS,
            "default_field": DEFAULT_FIELD,
        },
        status=status,
    )


def _refuse_mdm(request: HttpRequest, availability: selectors.MDMAvailability, what: str) -> None:
    audit_record(
        action=AuditEvent.Action.PERMISSION_DENIED,
        actor=request.user,
        message=f"{request.method} {request.path}: MDM lock action refused ({what}). "
        + " ".join(availability.problems),
        request=request,
    )


def _submit(
    request: HttpRequest,
    data: QueryDict,
    *,
    automation: Automation | None,
    availability: selectors.MDMAvailability,
    save: bool,
) -> HttpResponse:
    """Validate the builder; ask for the MDM gate and a one-time password where needed; save
    only when `save` (a POST) and everything passed."""
    forms = BuilderForms(data, automation=automation, user=request.user)
    page = {"automation": automation, "availability": availability}
    stored_locks = forms.stored.locks if forms.stored else ()
    # The gate looks at what was posted, before any validation: a hand-crafted POST that adds,
    # changes or removes a device lock is refused outright.
    early_change = services.mdm_change(stored_locks, forms.submitted_locks())
    if early_change and not availability.available:
        _refuse_mdm(request, availability, early_change)
        return _render_builder(
            request,
            forms,
            **page,
            refused=availability.problems,
            refused_change=early_change,
            status=403,
        )
    if not forms.is_valid():
        return _render_builder(request, forms, **page)
    spec = forms.spec()
    # Whom or when it locks: the lock itself, and also its trigger, match, conditions and
    # switching it on (an automation keeping its lock can be retargeted to other members).
    change = services.lock_change(forms.stored, spec)
    if change and not availability.available:
        _refuse_mdm(request, availability, change)
        return _render_builder(
            request, forms, **page, refused=availability.problems, refused_change=change, status=403
        )
    otp_verified = False
    if change and change != "removed":
        if otp.confirmed_device(request.user) is None:
            otp.stash_form(request, data, path=request.path)
            messages.info(
                request,
                "Saving a device lock needs a one-time password. Set up an authenticator app "
                "first; what you entered in the automation is kept.",
            )
            next_url = f"{request.path}?restore=1"
            return redirect(f"{reverse('automations:otp_enroll')}?{urlencode({'next': next_url})}")
        dialog = {"change": change, "error": ""}
        token = data.get("otp_token", "")
        if not save or not token.strip():
            return _render_builder(request, forms, **page, otp_dialog=dialog)
        result = otp.verify(
            user=request.user,
            token=token,
            purpose=f"saving automation “{spec.name}”",
            request=request,
        )
        if not result.ok:
            dialog["error"] = result.message
            return _render_builder(request, forms, **page, otp_dialog=dialog)
        otp_verified = True
    if not save:
        return _render_builder(request, forms, **page)
    try:
        if automation is None:
            result = services.automation_create(
                actor=request.user, spec=spec, otp_verified=otp_verified, request=request
            )
        else:
            result = services.automation_update(
                automation=automation,
                actor=request.user,
                spec=spec,
                otp_verified=otp_verified,
                request=request,
            )
    except services.MDMNotAllowed:
        _refuse_mdm(request, availability, change or "changed")
        return _render_builder(
            request,
            forms,
            **page,
            refused=availability.problems,
            refused_change=change or "changed",
            status=403,
        )
    except services.OTPRequired:
        return _render_builder(
            request, forms, **page, otp_dialog={"change": change or "changed", "error": ""}
        )
    except ValidationError as exc:
        forms.add_service_errors(exc)
        return _render_builder(request, forms, **page)
    saved = result.automation
    if result.new_secret:
        _remember_secret(request, saved.pk, result.new_secret)
    if automation is None:
        messages.success(request, f"Automation “{saved.name}” created.")
    elif result.change is None:
        messages.info(request, "Nothing changed, so nothing was saved.")
    else:
        messages.success(request, f"Changes to “{saved.name}” saved.")
    return redirect(saved.get_absolute_url())


def _builder(request: HttpRequest, automation: Automation | None) -> HttpResponse:
    availability = selectors.mdm_availability(request.user)
    page = {"automation": automation, "availability": availability}
    if request.method == "POST":
        if request.POST.get("action_op"):
            # Without JavaScript, the Actions section's buttons (add, remove, move up or down)
            # post the form: show it again with the change, nothing saved.
            data, fresh = action_op(request.POST, request.POST["action_op"])
            forms = BuilderForms(data, automation=automation, fresh=fresh, user=request.user)
            return _render_builder(request, forms, **page)
        if "add_condition" in request.POST:
            # Without JavaScript, "Add condition" posts the form: show it again with a new row.
            data = request.POST.copy()
            total = int(data.get("conditions-TOTAL_FORMS") or 0)
            if total < MAX_CONDITIONS:
                data["conditions-TOTAL_FORMS"] = str(total + 1)
                data[f"conditions-{total}-field"] = DEFAULT_FIELD
            return _render_builder(
                request, BuilderForms(data, automation=automation, user=request.user), **page
            )
        return _submit(request, request.POST, **page, save=True)
    if request.GET.get("restore"):
        stashed = otp.pop_stash(request, path=request.path)
        if stashed is not None:
            return _submit(request, stashed, **page, save=False)
    return _render_builder(request, BuilderForms(automation=automation, user=request.user), **page)


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("automations.add_automation", raise_exception=True)
def automation_create(request: HttpRequest) -> HttpResponse:
    return _builder(request, None)


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("automations.change_automation", raise_exception=True)
def automation_edit(request: HttpRequest, pk: int) -> HttpResponse:
    automation = get_object_or_404(selectors.automation_detail_qs(), pk=pk)
    return _builder(request, automation)


# --- Lock confirmation: switching on, or duplicating with, an automation that locks devices -----

CONFIRM_TEMPLATE = "automations/confirm_lock.html"


def _confirm_lock(
    request: HttpRequest,
    automation: Automation,
    *,
    what: str,
    action_url: str,
    fields: dict[str, str],
    error: str = "",
    without_lock: bool = False,
) -> HttpResponse:
    """The page that asks for a one-time password before `what` happens. Answered with 403
    when it stands for a refused POST (nothing was changed), 200 when asked for by GET."""
    context = {
        "automation": automation,
        "what": what,
        "action_url": action_url,
        "fields": fields,
        "error": error,
        "without_lock": without_lock,
        "enrolled": otp.confirmed_device(request.user) is not None,
        # Back here after enrolling: the switch-on page, or the automation to duplicate again.
        "enrol_url": f"{reverse('automations:otp_enroll')}?"
        + urlencode(
            {
                "next": automation.get_absolute_url()
                if without_lock
                else reverse("automations:switch_on", args=[automation.pk])
            }
        ),
    }
    response = render(
        request, CONFIRM_TEMPLATE, context, status=200 if request.method == "GET" else 403
    )
    add_never_cache_headers(response)
    return response


def _verified(request: HttpRequest, *, purpose: str) -> tuple[bool, str]:
    """(True, "") when this POST carries a valid one-time password, else (False, the error)."""
    token = request.POST.get("otp_token", "")
    if not token.strip():
        return False, ""
    result = otp.verify(user=request.user, token=token, purpose=purpose, request=request)
    return result.ok, result.message


def _may_lock_or_refuse(automation: Automation, request: HttpRequest, what: str) -> None:
    availability = selectors.mdm_availability(request.user)
    if not availability.available:
        raise PermissionDenied(
            f"“{automation.name}” locks devices through MDM, so {what} needs the MDM feature "
            "and permission. " + " ".join(availability.problems)
        )


@require_GET
@login_required
@permission_required("automations.change_automation", raise_exception=True)
def automation_switch_on(request: HttpRequest, pk: int) -> HttpResponse:
    """Asks for the one-time password that switching on a lock automation needs (the toggle
    sends htmx requests here; a plain POST of the toggle gets the same page)."""
    automation = get_object_or_404(Automation, pk=pk)
    if automation.enabled or not selectors.locks_devices(automation):
        return redirect(automation.get_absolute_url())
    _may_lock_or_refuse(automation, request, "switching it on")
    return _confirm_lock(
        request,
        automation,
        what="switch_on",
        action_url=reverse("automations:toggle", args=[automation.pk]),
        fields={"enabled": "1", "next": safe_next(request, request.GET.get("next"), "")},
    )


# --- Row actions (list and automation page) -----------------------------------------------------


@require_POST
@login_required
@permission_required("automations.change_automation", raise_exception=True)
def automation_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    automation = get_object_or_404(Automation, pk=pk)
    wanted = request.POST.get("enabled", "") in ("1", "true", "on", "yes")
    next_url = safe_next(request, request.POST.get("next"), automation.get_absolute_url())
    otp_verified, error = False, ""
    locks = wanted and not automation.enabled
    locks = locks and selectors.locks_devices(automation)
    if locks:
        # Refused with 403 without the MDM permission, and without a one-time password (the
        # page asks for it); htmx is sent to the same page, as it does not show a 403.
        confirm_url = reverse("automations:switch_on", args=[automation.pk])
        if request.htmx:
            confirm_url += "?" + urlencode({"next": request.htmx.current_url_abs_path or ""})
        availability = selectors.mdm_availability(request.user)
        if not availability.available and not request.htmx:
            _may_lock_or_refuse(automation, request, "switching it on")
        if availability.available:
            otp_verified, error = _verified(
                request, purpose=f"switching on automation “{automation.name}”"
            )
        if not otp_verified:
            if request.htmx:
                if not availability.available:
                    _refuse_mdm(request, availability, "switched on")
                response = HttpResponse(status=403)
                response["HX-Redirect"] = confirm_url
                return response
            return _confirm_lock(
                request,
                automation,
                what="switch_on",
                action_url=reverse("automations:toggle", args=[automation.pk]),
                fields={"enabled": "1", "next": next_url},
                error=error,
            )
    try:
        change = services.automation_set_enabled(
            automation=automation,
            enabled=wanted,
            actor=request.user,
            otp_verified=otp_verified,
            request=request,
        )
    except services.MDMNotAllowed as exc:
        # The feature was switched off between the check above and the write.
        raise PermissionDenied(str(exc)) from None
    automation.refresh_from_db(fields=["enabled"])
    if change is not None:
        messages.success(
            request,
            f"“{automation.name}” is now {'enabled' if automation.enabled else 'disabled'}.",
        )
    if not request.htmx:
        return redirect(next_url)
    return render(
        request,
        "automations/list.html#toggle",
        {"automation": automation, "oob": True, "next_url": request.htmx.current_url_abs_path},
    )


@require_POST
@login_required
@permission_required("automations.add_automation", raise_exception=True)
def automation_duplicate(request: HttpRequest, pk: int) -> HttpResponse:
    """A copy with the MDM lock is a new lock automation: it needs the MDM permission and a
    one-time password (the page asks for it, or copies without the lock); without the
    permission the copy leaves the lock out."""
    automation = get_object_or_404(selectors.automation_detail_qs(), pk=pk)
    has_lock = selectors.locks_devices(automation)
    with_mdm = request.POST.get("without_mdm", "") != "1"
    otp_verified, error = False, ""
    if has_lock and with_mdm and selectors.mdm_availability(request.user).available:
        otp_verified, error = _verified(
            request, purpose=f"duplicating automation “{automation.name}” with its device lock"
        )
        if not otp_verified:
            return _confirm_lock(
                request,
                automation,
                what="duplicate",
                action_url=reverse("automations:duplicate", args=[automation.pk]),
                fields={},
                error=error,
                without_lock=True,
            )
    try:
        result = services.automation_duplicate(
            automation=automation,
            actor=request.user,
            with_mdm=with_mdm,
            otp_verified=otp_verified,
            request=request,
        )
    except services.MDMNotAllowed as exc:
        raise PermissionDenied(str(exc)) from None
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return done(request, automation.get_absolute_url())
    if result.new_secret:
        _remember_secret(request, result.automation.pk, result.new_secret)
    text = (
        f"Duplicated as “{result.automation.name}”. The copy is switched off; "
        "review it, then switch it on."
    )
    if result.dropped_mdm:
        text += (
            " The MDM lock action was not copied."
            if not with_mdm
            else " The MDM lock action was not copied: you may not use MDM commands."
        )
    messages.success(request, text)
    return done(request, result.automation.get_absolute_url())


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("automations.delete_automation", raise_exception=True)
def automation_delete(request: HttpRequest, pk: int) -> HttpResponse:
    automation = get_object_or_404(Automation, pk=pk)
    if request.method == "POST":
        name = automation.name
        services.automation_delete(automation=automation, actor=request.user, request=request)
        messages.success(request, f"Automation “{name}” deleted. Its past runs stay in Executions.")
        return done(request, reverse("automations:list"))
    template = "automations/confirm_delete.html"
    if request.htmx:
        template += "#dialog"
    return render(request, template, {"automation": automation})


@require_POST
@login_required
@permission_required("automations.change_automation", raise_exception=True)
def automation_rotate_secret(request: HttpRequest, pk: int) -> HttpResponse:
    automation = get_object_or_404(Automation, pk=pk)
    try:
        raw = request.POST.get("action", "")
        secret = services.automation_rotate_secret(
            automation=automation,
            actor=request.user,
            action_id=int(raw) if raw.isdigit() else None,
            request=request,
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        _remember_secret(request, automation.pk, secret)
        hours = settings.WEBHOOK_SECRET_GRACE_HOURS
        messages.success(
            request,
            f"New signing secret generated. The old one keeps signing beside it for {hours} h, "
            "then only the new one signs."
            if hours
            else "New signing secret generated. The old one no longer signs.",
        )
    return done(request, automation.get_absolute_url())


# --- htmx partials -------------------------------------------------------------------------------


def _builder_perms(request: HttpRequest) -> None:
    _require_any(request, "automations.add_automation", "automations.change_automation")


@require_GET
@login_required
def builder_trigger_events(request: HttpRequest) -> HttpResponse:
    """The trigger action select for the chosen trigger module, with the chosen trigger
    action's own settings (the last working day's offset and time) at their defaults."""
    _builder_perms(request)
    module = request.GET.get("trigger_module", "")
    form = AutomationDetailsForm(initial={"trigger_module": module})
    choices = [key for key, _ in form.fields["trigger_event"].choices]
    event = request.GET.get("trigger_event", "")
    form.initial["trigger_event"] = event if event in choices else (choices[0] if choices else "")
    context = {"forms": {"details": form, "trigger": trigger_options_form(form, None, None)}}
    return render(request, f"{FORM_TEMPLATE}#trigger_events", context)


@require_GET
@login_required
def builder_condition_row(request: HttpRequest) -> HttpResponse:
    """A condition row: a new one (index = the formset's TOTAL_FORMS, which the response moves
    on by one, out of band) or an existing one re-rendered after its field or operator changed."""
    _builder_perms(request)
    prefix = request.GET.get("prefix", "")
    context: dict[str, Any] = {"suggestions": selectors.condition_suggestions()}
    if prefix:
        head, _, index = prefix.partition("-")
        if head != "conditions" or not index.isdigit() or int(index) >= MAX_CONDITIONS + 10:
            return HttpResponse("Unknown condition row.", status=400)
        index = int(index)
        row = condition_row_form(prefix, request.GET)
    else:
        raw = request.GET.get("conditions-TOTAL_FORMS", "0")
        index = int(raw) if raw.isdigit() else 0
        if index >= MAX_CONDITIONS:
            response = HttpResponse(status=204)
            response["HX-Trigger"] = "conditions-full"
            return response
        row = condition_row_form(f"conditions-{index}", QueryDict())
        context["total_forms"] = index + 1
    ConditionFormSet(prefix="conditions").add_fields(row, index)
    context["row"] = row
    return render(request, f"{FORM_TEMPLATE}#condition_row", context)


@require_GET
@login_required
def builder_action_delay(request: HttpRequest) -> HttpResponse:
    """An action row's "When it runs" block, re-rendered after its unit changed (htmx): the
    amount input is for a delay, the help says what the row will do."""
    _builder_perms(request)
    prefix = request.GET.get("prefix", "")
    head, _, index = prefix.partition("-")
    if head != "actions" or not index.isdigit() or int(index) >= MAX_ACTIONS + 10:
        return HttpResponse("Unknown action row.", status=400)
    row = action_delay_form(prefix, request.GET)
    return render(request, f"{FORM_TEMPLATE}#delay_field", {"row": row})


@require_http_methods(["POST"])
@login_required
def builder_preview(request: HttpRequest) -> HttpResponse:
    """The live plain-language summary (and the webhook payload, out of band). POST, so header
    values typed into the form never end up in a URL or an access log."""
    _builder_perms(request)
    raw_pk = request.GET.get("automation", "")
    forms = BuilderForms(request.POST, check_network=False)
    preview = forms.preview(automation_id=int(raw_pk) if raw_pk.isdigit() else None)
    return render(request, f"{FORM_TEMPLATE}#preview", {"preview": preview, "oob": True})


@require_POST
@login_required
def builder_actions(request: HttpRequest) -> HttpResponse:
    """The Actions section again after one of its buttons (htmx): "add:<kind>", "remove:<i>",
    "up:<i>" or "down:<i>" in `action_op`, applied to the posted form (nothing is saved; the
    same buttons without JavaScript post the whole builder, which does the same)."""
    _builder_perms(request)
    raw_pk = request.GET.get("automation", "")
    automation = (
        get_object_or_404(selectors.automation_detail_qs(), pk=int(raw_pk))
        if raw_pk.isdigit()
        else None
    )
    op = request.POST.get("action_op", "")
    kind = get_kind(op.partition(":")[2]) if op.startswith("add:") else None
    if kind is not None and not kind.available(request.user)[0]:
        return HttpResponse("You may not add this action.", status=403)
    data, fresh = action_op(request.POST, op)
    forms = BuilderForms(
        data, automation=automation, check_network=False, fresh=fresh, user=request.user
    )
    preview = forms.preview(automation_id=automation.pk if automation else None)
    return render(
        request,
        f"{FORM_TEMPLATE}#actions",
        {
            "forms": forms,
            "automation": automation,
            "rows": forms.rows(),
            "kind_menu": kind_menu(request.user),
            "max_actions": MAX_ACTIONS,
            "mdm": selectors.mdm_availability(request.user),
            "preview": preview,
            "quiet": True,
        },
    )
