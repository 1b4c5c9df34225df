"""Members pages: list, detail, create/edit, deactivate/reactivate, delete, bulk deactivate.

Every view checks sign-in and its permission itself; templates only hide what a role cannot use.
htmx requests get a template partial; the same URLs serve full pages without JavaScript.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from assets.models import Asset
from assets.selectors_returns import returns_open_for_member
from assetsonar.csvsafe import SafeWriter
from assetsonar.forms import add_service_errors
from assetsonar.http import done, safe_next
from assetsonar.paging import AFTER_PARAM, paginate
from members import selectors, services
from members.filters import MemberFilter
from members.forms import BulkDeactivateForm, DeactivateForm, MemberForm, UpcomingFilterForm
from members.models import Member

PAGE_SIZE = 50


def _partial_request(request: HttpRequest) -> bool:
    """An htmx request that swaps a fragment (a history restore needs the whole page)."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def _get_member(pk: int) -> Member:
    try:
        return selectors.member_detail(pk)
    except Member.DoesNotExist:
        raise Http404("No such member.") from None


@require_http_methods(["GET"])
@login_required
@permission_required("members.view_member", raise_exception=True)
@vary_on_headers("HX-Request")
def member_list(request: HttpRequest) -> HttpResponse:
    filterset = MemberFilter(request.GET, queryset=selectors.member_list_queryset())
    sort = request.GET.get("sort", "")
    if sort not in selectors.member_sort_keys():
        sort = selectors.DEFAULT_SORT
    # A search is counted only as far as its first page ("50+ members", then "Next" goes on
    # by keyset): a broad term ("patel", one member in 40) matches 25,000 members of a million,
    # and counting 10,000 of them re-checks each row's name (~17 ms), where the page itself is
    # a walk of the name index that stops at its 50th match.
    searching = bool(filterset.form.is_valid() and filterset.form.cleaned_data.get("q"))
    page = paginate(
        filterset.qs,
        ordering=selectors.member_ordering(sort),
        per_page=PAGE_SIZE,
        number=request.GET.get("page"),
        after=request.GET.get(AFTER_PARAM),
        limit=PAGE_SIZE if searching else None,
    )
    context = {
        "filterset": filterset,
        "page_obj": page,
        "sort": sort,
        "sort_columns": _sort_columns(sort),
        "bulk_form": BulkDeactivateForm(),
        "filtered": any(request.GET.get(name) for name in filterset.filters),
    }
    template = "members/member_list.html"
    if _partial_request(request):
        template += "#results"
    return render(request, template, context)


def _sort_columns(current: str) -> dict[str, dict[str, str]]:
    """For each sortable column: the ?sort= its header link asks for, and its aria-sort state."""
    columns = {}
    for name in selectors.SORTS:
        if current == name:
            columns[name] = {"next": f"-{name}", "aria": "ascending", "arrow": "▲"}
        elif current == f"-{name}":
            columns[name] = {"next": name, "aria": "descending", "arrow": "▼"}
        else:
            columns[name] = {"next": name, "aria": "none", "arrow": ""}
    return columns


@require_http_methods(["GET"])
@login_required
@permission_required("members.view_member", raise_exception=True)
def member_detail(request: HttpRequest, pk: int) -> HttpResponse:
    member = _get_member(pk)
    company = selectors.company_time_zone()
    assets = list(selectors.member_assets_in_custody(member))
    context = {
        "member": member,
        "offboarding": selectors.member_offboarding(
            member, company_zone=company, today=selectors.company_today(company)
        ),
        "assets": assets,
        # Read only when one of their devices is on its way back (its status says so).
        "open_returns": returns_open_for_member(member)
        if any(a.status == Asset.Status.RETURN_REQUESTED for a in assets)
        else [],
        "entitlements": list(selectors.member_live_entitlements(member)),
        "custody_history": selectors.member_custody_history(member),
        "revoked_entitlements": selectors.member_revoked_entitlements(member),
        "audit_trail": selectors.member_audit_trail(member),
        "history_limit": selectors.HISTORY_LIMIT,
        "deactivate_form": DeactivateForm(),
        # The Offboarding timeline's tag (automation_tags.offboarding_timeline) reads times in it.
        "company_zone": company,
    }
    return render(request, "members/member_detail.html", context)


def _form_page(request: HttpRequest, form: MemberForm, member: Member | None) -> HttpResponse:
    context = {"form": form, "member": member}
    if _partial_request(request):
        return render(request, "members/member_form.html#member-form", context)
    # The suggestions sit outside the form fragment, so an htmx re-render skips these queries.
    context["departments"] = selectors.member_departments()
    context["locations"] = selectors.member_locations()
    return render(request, "members/member_form.html", context)


def _save_errors(form: MemberForm, error: Exception) -> None:
    if isinstance(error, ValidationError):
        add_service_errors(form, error)
    else:
        # Another request saved the same email or employee ID between our check and our write.
        form.add_error(
            None, "Another member was just saved with this email address or employee ID."
        )


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("members.add_member", raise_exception=True)
def member_create(request: HttpRequest) -> HttpResponse:
    form = MemberForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            member = services.member_create(
                actor=request.user, request=request, **form.service_fields()
            )
        except (ValidationError, IntegrityError) as error:
            _save_errors(form, error)
        else:
            messages.success(request, f"{member} was added.")
            return done(request, member.get_absolute_url())
    return _form_page(request, form, None)


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("members.change_member", raise_exception=True)
def member_edit(request: HttpRequest, pk: int) -> HttpResponse:
    member = _get_member(pk)
    if request.method == "GET":
        return _form_page(request, MemberForm(instance=member), member)
    # A ModelForm writes the submitted values onto its instance while validating, so it gets a
    # copy: `member` stays the stored row that the service compares against to audit the changes.
    form = MemberForm(request.POST, instance=_get_member(pk))
    if form.is_valid():
        try:
            member = services.member_update(
                member=member, actor=request.user, request=request, **form.service_fields()
            )
        except (ValidationError, IntegrityError) as error:
            _save_errors(form, error)
        else:
            messages.success(request, f"{member} was saved.")
            return done(request, member.get_absolute_url())
    return _form_page(request, form, member)


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("members.deactivate_member", raise_exception=True)
def member_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the confirmation page (the dialog's fallback without JavaScript). POST: deactivate."""
    member = _get_member(pk)
    form = DeactivateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            member, changed = services.member_deactivate(
                member=member,
                actor=request.user,
                reason=form.cleaned_data["reason"],
                request=request,
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            if changed:
                messages.success(request, f"{member} was deactivated.")
            else:
                messages.info(request, f"{member} was already deactivated; nothing changed.")
            return done(request, member.get_absolute_url())
    # The dialog's preview of what deactivating sets off, rendered in place here.
    context = {
        "member": member,
        "deactivate_form": form,
        "action": "deactivate",
        "show_preview": True,
    }
    if _partial_request(request):
        return render(request, "members/member_detail.html#deactivate-form", context)
    return render(request, "members/member_confirm.html", context)


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("members.deactivate_member", raise_exception=True)
def member_reactivate(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the confirmation page (the dialog's fallback without JavaScript). POST: reactivate."""
    member = _get_member(pk)
    if request.method == "POST":
        member, changed = services.member_reactivate(
            member=member, actor=request.user, request=request
        )
        if changed:
            messages.success(request, f"{member} was reactivated.")
        else:
            messages.info(request, f"{member} was already active; nothing changed.")
        return done(request, member.get_absolute_url())
    return render(
        request, "members/member_confirm.html", {"member": member, "action": "reactivate"}
    )


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("members.delete_member", raise_exception=True)
def member_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the confirmation page (the dialog's fallback without JavaScript). POST: delete."""
    member = _get_member(pk)
    context = {"member": member, "action": "delete"}
    if request.method == "POST":
        try:
            services.member_delete(member=member, actor=request.user, request=request)
        except ValidationError as error:
            context["delete_error"] = " ".join(error.messages)
            if _partial_request(request):
                return render(request, "members/member_detail.html#delete-form", context)
            messages.error(request, context["delete_error"])
            return redirect(member.get_absolute_url())
        messages.success(request, f"{member} was deleted.")
        return done(request, reverse("members:list"))
    return render(request, "members/member_confirm.html", context)


@require_http_methods(["POST"])
@login_required
@permission_required("members.deactivate_member", raise_exception=True)
def member_bulk_deactivate(request: HttpRequest) -> HttpResponse:
    """Deactivate the members ticked on the list. Without a reason (the no-JavaScript path, where
    the dialog cannot open) the confirmation page asks for one, keeping the selection.
    """
    form = BulkDeactivateForm(request.POST)
    back = safe_next(request, request.POST.get("next"), reverse("members:list"))
    if form.is_valid():
        selected = form.cleaned_data["ids"]
        try:
            changed = services.member_bulk_deactivate(
                member_ids=[member.pk for member in selected],
                actor=request.user,
                reason=form.cleaned_data["reason"],
                request=request,
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            unchanged = len(selected) - changed
            text = f"{changed} member{'s' if changed != 1 else ''} deactivated."
            if unchanged:
                text += f" {unchanged} {'was' if unchanged == 1 else 'were'} already deactivated."
            messages.success(request, text)
            return done(request, back)
    selected = form.cleaned_data.get("ids")
    context = {"bulk_form": form, "selected": selected, "back": back, "action": "bulk"}
    if _partial_request(request):
        return render(request, "members/member_list.html#bulk-form", context)
    return render(request, "members/member_confirm.html", context)


# Rows in one CSV export of upcoming offboardings; a wider range is cut there and says so.
UPCOMING_EXPORT_LIMIT = 5000
UPCOMING_EXPORT_BATCH = 500


def _upcoming_filters(request: HttpRequest):
    company = selectors.company_time_zone()
    today = selectors.company_today(company)
    form = UpcomingFilterForm(
        request.GET or None,
        departments=selectors.member_departments(),
        locations=selectors.member_locations(),
    )
    start, end, department, location = form.window(today)
    queryset = selectors.upcoming_offboardings_queryset(
        start=start, end=end, department=department, location=location
    )
    return form, queryset, company, today, start, end


@require_http_methods(["GET"])
@login_required
@permission_required("members.view_member", raise_exception=True)
def upcoming_offboardings(request: HttpRequest) -> HttpResponse:
    """Active members whose last working day is ahead: when it ends in their time zone, whether
    they are deactivated then, and what will run for them and when, and what already ran."""
    form, queryset, company, today, start, end = _upcoming_filters(request)
    page = paginate(
        queryset,
        ordering=selectors.UPCOMING_ORDERING,
        per_page=PAGE_SIZE,
        number=request.GET.get("page"),
        after=request.GET.get(AFTER_PARAM),
    )
    context = {
        "form": form,
        "page_obj": page,
        "rows": selectors.upcoming_rows(page.object_list, company_zone=company, today=today),
        "company_zone": company,
        "start": start,
        "end": end,
        "today": today,
    }
    return render(request, "members/upcoming.html", context)


@require_http_methods(["GET"])
@login_required
@permission_required("members.view_member", raise_exception=True)
def upcoming_offboardings_export(request: HttpRequest) -> HttpResponse:
    """The same rows as the page (same filters), as CSV, cells neutralised (csvsafe)."""
    _form, queryset, company, today, start, end = _upcoming_filters(request)
    members = list(queryset.order_by(*selectors.UPCOMING_ORDERING)[: UPCOMING_EXPORT_LIMIT + 1])
    cut = len(members) > UPCOMING_EXPORT_LIMIT
    members = members[:UPCOMING_EXPORT_LIMIT]
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = slugify(f"upcoming-offboardings-{start}-{end}")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    writer = SafeWriter(response)
    writer.writerow(
        [
            "full_name",
            "email",
            "department",
            "location",
            "last_working_day",
            "time_zone",
            "day_ends_local",
            "day_ends_company",
            "deactivates_automatically",
            "automations",
            "steps",
        ]
    )
    for offset in range(0, len(members), UPCOMING_EXPORT_BATCH):
        batch = members[offset : offset + UPCOMING_EXPORT_BATCH]
        for row in selectors.upcoming_rows(batch, company_zone=company, today=today):
            writer.writerow(
                [
                    row.member.full_name,
                    row.member.email,
                    row.member.department,
                    row.member.location,
                    row.member.last_working_day.isoformat(),
                    row.time_zone,
                    f"{row.last_minute:%Y-%m-%d %H:%M} {row.time_zone}",
                    f"{row.company_last_minute:%Y-%m-%d %H:%M} {company}",
                    "yes" if row.automatic else "no",
                    "; ".join(automation.name for automation in row.automations),
                    # One cell: the steps in time order, with their local times and states
                    # (" | " between them: one line per member for the tools that split lines).
                    " | ".join(step.text for step in row.steps),
                ]
            )
    if cut:
        writer.writerow([f"Only the first {UPCOMING_EXPORT_LIMIT:,} rows; narrow the dates."])
    return response
